"""The docs stay true to the code: every setting, endpoint and command is documented."""

from __future__ import annotations

import re
from pathlib import Path

from sorapi.adapters.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_every_setting_is_documented_in_the_readme() -> None:
    missing = [
        ENV_PREFIX + name.upper() for name in Settings.__struct_fields__ if ENV_PREFIX + name.upper() not in README
    ]
    assert not missing, f"README.md does not document {missing}"


def test_every_documented_setting_exists() -> None:
    known = {ENV_PREFIX + name.upper() for name in Settings.__struct_fields__} | {
        "SORAPI_CATALOG_PATH",
        "SORAPI_BASE_URL",
    }
    documented = set(re.findall(r"SORAPI_[A-Z0-9_]+[A-Z0-9]", README))
    assert documented <= known, f"README.md names settings that do not exist: {documented - known}"


def test_the_two_commands_are_the_readmes() -> None:
    assert "make dev" in README and "make test" in README
    assert (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1] == "make test"


def test_architecture_doc_names_real_modules() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text()
    for path in set(re.findall(r"`((?:api|workflows|activities|workers|sorapi|tests)/[\w/]+\.py)", text)):
        assert (ROOT / path).exists(), f"docs/architecture.md names {path}, which does not exist"
