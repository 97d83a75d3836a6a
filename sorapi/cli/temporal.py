"""`sorapi temporal setup`: prepare a Temporal namespace for SorAPI (the operator console's search attributes).

Idempotent: it adds only what is missing, through the operator service, so running it on every
deploy is safe. `sorapi dev` and the test servers need no setup (they register the attributes at
start). On Temporal Cloud the operator service refuses: add the attributes with
`tcld namespace search-attributes add` or in the Cloud UI (docs/operations.md).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any

from temporalio.service import RPCError, RPCStatusCode

from sorapi.adapters import search_attributes
from sorapi.adapters.settings import get_settings
from sorapi.adapters.temporal import connect

CLOUD_HINT = (
    "on Temporal Cloud, add them with `tcld namespace search-attributes add --namespace <ns> "
    "--search-attribute Name=Type ...` or in the Cloud UI (docs/operations.md)"
)


async def setup() -> int:
    settings = get_settings()
    client = await connect(settings, wait_s=30)
    try:
        added = await search_attributes.register(client)
    except search_attributes.AttributeConflict as exc:
        print(f"sorapi temporal setup: {exc}", file=sys.stderr)
        return 1
    except RPCError as exc:
        hint = CLOUD_HINT if exc.status in (RPCStatusCode.PERMISSION_DENIED, RPCStatusCode.UNIMPLEMENTED) else ""
        print(f"sorapi temporal setup: the server refused ({exc.message}); {hint}".rstrip("; "), file=sys.stderr)
        return 1
    for key in search_attributes.KEYS:
        state = "added" if key.name in added else "already registered"
        print(f"{key.name:<22} {key.indexed_value_type.name.title():<8} {state}")
    print(f"namespace {settings.temporal_namespace} on {settings.temporal_address} is ready")
    return 0


def _setup(_: argparse.Namespace) -> int:
    code = asyncio.run(setup())
    # Leave without the interpreter's finalization: the Temporal client's Rust threads may still call
    # into Python while it tears down, which aborts the process (SIGABRT, once in CI) after the work is
    # done and reported. Everything this command does is finished and flushed by now.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def register_temporal(sub: Any) -> None:
    """Add `sorapi temporal ...` to the command line."""
    temporal = sub.add_parser("temporal", help="prepare a Temporal namespace for SorAPI")
    commands = temporal.add_subparsers(dest="temporal_command", required=True)
    commands.add_parser(
        "setup", help="register the search attributes the workflows upsert (idempotent)", description=__doc__
    ).set_defaults(func=_setup)
