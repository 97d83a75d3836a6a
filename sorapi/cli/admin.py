"""`sorapi admin ...`: the operator actions of the `/admin` API, straight against the database.

The database is SORAPI_DATABASE_URL; this is for when there is a shell but no admin token. Every change is audited with
the actor `cli:<os user>`.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from sorapi.adapters.settings import get_settings
from sorapi.contracts.credit_schemas import SCOPES
from sorapi.contracts.errors import ApiError
from sorapi.domain.catalog import get_catalog
from sorapi.store import administration, audit, credits
from sorapi.store.engine import make_async_engine, make_sessionmaker


def _actor() -> str:
    try:
        return "cli:" + getpass.getuser()
    except Exception:  # no user name in some containers
        return "cli"


def _run(work: Callable[[AsyncSession], Awaitable[Any]]) -> Any:
    """Run one transaction against the configured database."""

    async def go() -> Any:
        engine = make_async_engine(get_settings().resolved_database_url)
        try:
            async with make_sessionmaker(engine).begin() as session:
                return await work(session)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def _print_json(value: Any) -> None:
    print(msgspec.json.format(msgspec.json.encode(value).decode(), indent=2))


def _scopes(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


def _create_account(args: argparse.Namespace) -> Any:
    created = _run(
        lambda s: administration.create_account(
            s,
            get_catalog(),
            name=args.name,
            plan=args.plan,
            credits_=args.credits,
            scopes=_scopes(args.scopes),
            key_name=args.key_name,
            actor=_actor(),
        )
    )
    print(f"account_id={created.account_id}\nkey_id={created.key.key_id}\napi_key={created.key.api_key}")


def _issue_key(args: argparse.Namespace) -> Any:
    issued = _run(
        lambda s: administration.issue_key(
            s, get_catalog(), args.account_id, scopes=_scopes(args.scopes), name=args.name, actor=_actor()
        )
    )
    print(f"key_id={issued.key_id}\napi_key={issued.api_key}")


def _list_keys(args: argparse.Namespace) -> Any:
    _print_json(_run(lambda s: administration.list_keys(s, args.account_id)))


def _revoke_key(args: argparse.Namespace) -> Any:
    _print_json(_run(lambda s: administration.revoke_key(s, args.account_id, args.key_id, actor=_actor())))


def _credits(adjust: bool) -> Callable[[argparse.Namespace], Any]:
    def run(args: argparse.Namespace) -> Any:
        _print_json(
            _run(
                lambda s: administration.change_credits(
                    s, args.account_id, args.amount, reason=args.reason, actor=_actor(), adjust=adjust
                )
            )
        )

    return run


def _change_plan(args: argparse.Namespace) -> Any:
    _print_json(
        _run(lambda s: administration.change_plan(s, get_catalog(), args.account_id, args.plan, actor=_actor()))
    )


def _spend_limit(text: str) -> int | None:
    """A monthly credit limit on the command line: a whole number of credits, or `none` to clear it."""
    if text.strip().lower() in ("none", "null", "off"):
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("a whole number of credits, or none") from None


def _set_spend_limit(args: argparse.Namespace) -> Any:
    _print_json(
        _run(lambda s: administration.set_spend_limit(s, args.account_id, args.limit, key_id=args.key, actor=_actor()))
    )


def _show(args: argparse.Namespace) -> Any:
    _print_json(_run(lambda s: administration.account_view(s, get_catalog(), args.account_id)))


def _ledger(args: argparse.Namespace) -> Any:
    rows, _ = _run(lambda s: credits.ledger_page(s, args.account_id, before_id=None, limit=args.limit))
    _print_json(rows)


def _audit_log(args: argparse.Namespace) -> Any:
    rows, _ = _run(lambda s: audit.page(s, args.account_id, before_id=None, limit=args.limit))
    _print_json([credits.audit_view(e) for e in rows])


def _reseal_secrets(_: argparse.Namespace) -> Any:
    from sorapi.adapters.secretbox import make_secret_box
    from sorapi.store.reseal import reseal_secrets

    box = make_secret_box(get_settings())
    _print_json({"resealed_accounts": _run(lambda s: reseal_secrets(s, box))})


def _handled(func: Callable[[argparse.Namespace], Any]) -> Callable[[argparse.Namespace], int]:
    """Exit 0 on success; on a domain error print its code and message and exit 1."""

    def run(args: argparse.Namespace) -> int:
        try:
            func(args)
        except ApiError as exc:
            details = "".join(f"\n  {d['field']}: {d['message']}" for d in exc.details if isinstance(d, dict))
            print(f"error: {exc.code}: {exc.message}{details}")
            return 1
        return 0

    return run


def register_admin(sub: Any) -> None:
    """Add `sorapi admin <command>` to the top-level subparsers."""
    admin = sub.add_parser("admin", help="administration: accounts, keys, credits, plans (direct DB)")
    cmds = admin.add_subparsers(dest="admin_command", required=True)
    plans = list(get_catalog().plans)

    def command(name: str, func: Callable[[argparse.Namespace], Any], help_: str) -> argparse.ArgumentParser:
        parser = cmds.add_parser(name, help=help_)
        parser.set_defaults(func=_handled(func))
        return parser

    p = command("create-account", _create_account, "create an account and print its first API key (shown once)")
    p.add_argument("--name", required=True)
    p.add_argument("--plan", default="free", choices=plans)
    p.add_argument("--credits", type=int, help="initial credits (default: the plan's starter credits)")
    p.add_argument("--scopes", default="generate,read", help=f"comma-separated: {','.join(SCOPES)}")
    p.add_argument("--key-name", default="", help="label of the first key's seat")

    p = command("issue-key", _issue_key, "issue another API key (a seat); printed once")
    p.add_argument("account_id")
    p.add_argument("--scopes", default="generate,read", help=f"comma-separated: {','.join(SCOPES)}")
    p.add_argument("--name", default="", help="who holds the seat")

    command("list-keys", _list_keys, "list an account's keys (never the secrets)").add_argument("account_id")

    p = command("revoke-key", _revoke_key, "revoke an API key")
    p.add_argument("account_id")
    p.add_argument("key_id")

    for name, adjust, help_ in (
        ("grant", False, "grant credits (positive)"),
        ("adjust", True, "adjust credits by a signed amount (never below available)"),
    ):
        p = command(name, _credits(adjust), help_)
        p.add_argument("account_id")
        p.add_argument("amount", type=int)
        p.add_argument("--reason", required=True)

    p = command("change-plan", _change_plan, "move an account to another plan")
    p.add_argument("account_id")
    p.add_argument("plan", choices=plans)

    p = command(
        "set-spend-limit",
        _set_spend_limit,
        "set or clear (none) the monthly credit limit of an account, or of one of its keys with --key",
    )
    p.add_argument("account_id")
    p.add_argument("limit", type=_spend_limit, help="credits per UTC calendar month (held + captured), or none")
    p.add_argument("--key", help="an active key id of the account: its limit instead of the account's")

    command("show", _show, "an account and its credits").add_argument("account_id")

    p = command("ledger", _ledger, "an account's latest ledger entries")
    p.add_argument("account_id")
    p.add_argument("--limit", type=int, default=50)

    command(
        "reseal-secrets",
        _reseal_secrets,
        "after a SORAPI_SECRET_KEY rotation: re-seal stored secrets under the new key (old one in _PREVIOUS)",
    )

    p = command("audit-log", _audit_log, "latest audit events (of one account with --account)")
    p.add_argument("--account", dest="account_id")
    p.add_argument("--limit", type=int, default=50)
