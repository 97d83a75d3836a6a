"""docker-compose.yml describes the production shape, and every command it runs exists here."""

from __future__ import annotations

from pathlib import Path

import yaml

from sorapi.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_has_the_production_shape() -> None:
    services = _compose()["services"]
    assert {"postgres", "temporal", "temporal-ui", "minio", "api", "orchestrator", "render", "migrate"} <= set(services)
    gpu = services["render"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["driver"] == "nvidia" and "gpu" in gpu["capabilities"]
    assert services["render"]["environment"]["SORAPI_DATABASE_URL"] == "", "GPU hosts hold no DB credentials"
    for name in ("api", "orchestrator", "migrate"):
        assert services[name]["environment"]["SORAPI_DATABASE_URL"].startswith("postgresql://")


def test_every_sorapi_command_in_compose_exists() -> None:
    parser = build_parser()
    commands = [svc["command"] for svc in _compose()["services"].values()
                if isinstance(svc.get("command"), list) and svc["command"][0] == "sorapi"]
    assert len(commands) >= 4
    for command in commands:
        args = parser.parse_args(command[1:])
        assert callable(args.func), command


def test_compose_env_names_are_real_settings() -> None:
    from sorapi.settings import ENV_PREFIX, Settings

    known = {ENV_PREFIX + name.upper() for name in Settings.__struct_fields__}
    for svc in _compose()["services"].values():
        env = svc.get("environment") or {}
        for name in env:
            if name.startswith(ENV_PREFIX):
                assert name in known, f"{name} is not a SorAPI setting"


def test_dockerfile_copies_every_package() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    for package in ("sorapi", "api", "workflows", "activities", "workers"):
        assert f"COPY {package} ./{package}" in dockerfile
