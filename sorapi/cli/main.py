"""The `sorapi` command: dev stack, API, workers, migrations and administration."""

from __future__ import annotations

import argparse
import asyncio
import sys

from sorapi.adapters import secret_policy
from sorapi.adapters.logs import configure_logging
from sorapi.adapters.settings import get_settings
from sorapi.cli.admin import register_admin
from sorapi.cli.client import add_client_commands
from sorapi.cli.temporal import register_temporal


def _api(args: argparse.Namespace) -> int:
    import uvicorn

    from sorapi.api.app import create_app

    settings = get_settings()
    uvicorn.run(
        create_app(settings),
        host=args.host or settings.api_host,
        port=args.port or settings.api_port,
        log_config=None,
        access_log=False,
    )
    return 0


def _codec_server(args: argparse.Namespace) -> int:
    import ipaddress

    import uvicorn

    from sorapi.api.codec_server import create_codec_app

    settings = get_settings()
    host = args.host or settings.codec_host
    if not settings.codec_token and not (host == "localhost" or ipaddress.ip_address(host).is_loopback):
        print(
            f"sorapi codec-server: {host} is not loopback and SORAPI_CODEC_TOKEN is not set: "
            "anyone reaching it could read every prompt; refusing to start",
            file=sys.stderr,
        )
        return secret_policy.EXIT_CONFIG
    uvicorn.run(create_codec_app(settings), host=host, port=args.port or settings.codec_port, log_config=None)
    return 0


def _worker(args: argparse.Namespace) -> int:
    settings = get_settings()
    if args.kind == "orchestrator":
        from sorapi.workers.orchestrator import main
    else:
        import msgspec

        from sorapi.workers.render import main

        if args.device:
            settings = msgspec.structs.replace(settings, render_device=args.device)
    asyncio.run(main(settings))
    return 0


def _migrate(_: argparse.Namespace) -> int:
    from sorapi.store.migrate import upgrade

    upgrade(get_settings().resolved_database_url)
    return 0


def _dev(_: argparse.Namespace) -> int:
    from sorapi.cli.dev import run_dev

    return run_dev()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sorapi", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("dev", help="run the embedded stack (Temporal, S3, workers, API)").set_defaults(func=_dev)
    api = sub.add_parser("api", help="serve the HTTP API")
    api.add_argument("--host")
    api.add_argument("--port", type=int)
    api.set_defaults(func=_api)
    codec = sub.add_parser("codec-server", help="decrypt Temporal payloads for the Temporal UI and CLI")
    codec.add_argument("--host")
    codec.add_argument("--port", type=int)
    codec.set_defaults(func=_codec_server)
    worker = sub.add_parser("worker", help="run a Temporal worker")
    worker.add_argument("kind", choices=["orchestrator", "render"])
    worker.add_argument("--device", help="render device, e.g. cuda:0 or cpu")
    worker.set_defaults(func=_worker)
    sub.add_parser("migrate", help="apply database migrations").set_defaults(func=_migrate)
    register_admin(sub)
    register_temporal(sub)
    add_client_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = get_settings()
    process = f"{args.command} {args.kind}" if args.command == "worker" else args.command
    if args.command in ("api", "worker", "codec-server"):
        refused = secret_policy.refusal(settings, process)
        if refused:
            print(f"sorapi {process}: {refused}", file=sys.stderr)
            return secret_policy.EXIT_CONFIG
    configure_logging(settings.log_level, settings.log_json, process=process)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
