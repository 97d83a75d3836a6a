"""Refuse to serve with secrets anyone could guess: unset where required, placeholders, too short.

`sorapi api` and `sorapi worker ...` check their settings before they start and exit with one
line naming the variable, so a deployment copied from an example fails at once instead of
running with a published admin token. `sorapi dev` makes its own secrets (and runs SeaweedFS with
the built-in S3 credentials), so it and the processes it starts (`SORAPI_DEV_STACK`) are exempt.
"""

from __future__ import annotations

from dataclasses import dataclass

from sorapi.adapters.settings import ENV_PREFIX, Settings

API, ORCHESTRATOR, RENDER, CODEC = "api", "worker orchestrator", "worker render", "codec-server"
PLACEHOLDERS = ("change-me", "changeme", "change_me", "replace-me", "sorapi-dev")
"""Substrings of example values (compose files, docs, the built-in dev S3 secret), never of real secrets."""
EXIT_CONFIG = 78
"""EX_CONFIG (sysexits.h): a supervisor can tell a configuration error from a crash."""


@dataclass(frozen=True)
class Secret:
    field: str
    min_chars: int
    required_by: frozenset[str]
    """Processes that cannot work without it; for the others it may be empty, but never weak."""


SECRETS = (
    Secret("admin_token", 32, frozenset()),  # empty disables the admin API: allowed
    Secret("metrics_token", 32, frozenset()),  # empty: /metrics takes the admin token (api/metrics.py)
    Secret("secret_key", 32, frozenset({API, ORCHESTRATOR})),  # empty means a dev key file in data_dir
    # Provider-issued S3 secrets are 31 (Backblaze B2) to 64 characters; 20 refuses hand-typed passwords.
    Secret("s3_secret_key", 20, frozenset({API, ORCHESTRATOR, RENDER})),
    Secret("payload_key", 32, frozenset({API, ORCHESTRATOR, RENDER, CODEC})),  # empty means a dev key file
)
OPERATOR_ONLY = frozenset({"admin_token", "metrics_token", "dev_api_key", "redis_url"})
"""The API's own credentials and state: no worker holds them."""
WITHHELD: dict[str, frozenset[str]] = {
    API: frozenset(),
    ORCHESTRATOR: OPERATOR_ONLY,
    RENDER: OPERATOR_ONLY | {"secret_key", "secret_key_previous", "database_url"},
    CODEC: OPERATOR_ONLY | {"secret_key", "secret_key_previous", "database_url"},
}
"""Settings a process never holds (least privilege): a render host, the most exposed machine, and
the codec server reach neither the database, nor the operator API, nor the account secrets."""
REFUSES_WITHHELD = (RENDER, CODEC)


def problem(secret: Secret, value: str, process: str) -> str | None:
    """Why `value` will not do for `process`, without quoting it (it may be the real secret)."""
    name = variable(secret.field)
    built_in = value == getattr(Settings(), secret.field)
    if not value or (built_in and process not in secret.required_by):
        return f"{name} is not set" if process in secret.required_by else None
    if built_in:
        return f"{name} is not set (its built-in value is for `sorapi dev` only)"
    if any(marker in value.lower() for marker in PLACEHOLDERS):
        return f"{name} is a placeholder"
    if len(value) < secret.min_chars:
        return f"{name} is shorter than {secret.min_chars} characters"
    return None


def scoped_env(env: dict[str, str], process: str) -> dict[str, str]:
    """`env` without the settings `process` must not hold."""
    return {name: value for name, value in env.items() if name not in {variable(f) for f in WITHHELD[process]}}


def variable(field: str) -> str:
    return ENV_PREFIX + field.upper()


def refusal(settings: Settings, process: str) -> str | None:
    """The one-line reason `process` must not start with these settings, or None."""
    held = next((field for field in sorted(WITHHELD.get(process, ())) if getattr(settings, field)), None)
    if held and process in REFUSES_WITHHELD:
        return f"{variable(held)} is set, but a render host must not hold it: remove it; refusing to start"
    if settings.dev_stack:
        return None
    for secret in SECRETS:
        found = problem(secret, getattr(settings, secret.field), process)
        if found:
            return (
                f"{found}: set it to at least {secret.min_chars} random characters "
                f"(e.g. `openssl rand -hex 32`); refusing to start"
            )
    return None
