"""`sorapi generate/status/list/cancel` against the live stack, as a user runs them from a shell."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from sorapi.cli.client import describe
from tests.stack import Api


async def _sorapi(
    account: Api, *args: str, env: dict[str, str] | None = None, timeout_s: float = 180
) -> tuple[int, str, str]:
    environment = {
        "SORA2_API_KEY": account.api_key,
        "SORAPI_BASE_URL": account.base_url,
        "PATH": "/usr/bin:/bin",
        **(env or {}),
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sorapi", *args, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_generate_waits_with_progress_and_downloads(account: Api, tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    code, out, err = await _sorapi(
        account,
        "generate",
        "A paper lantern rising over a lake",
        "--duration",
        "2",
        "--resolution",
        "480x480",
        "--seed",
        "42",
        "--wait",
        "--out",
        str(clip),
    )
    assert code == 0, err
    done = json.loads(out)
    assert done["status"] == "succeeded" and done["request"]["seed"] == 42 and done["request"]["duration"] == 2
    assert clip.read_bytes()[4:8] == b"ftyp"
    lines = err.splitlines()
    assert lines[0].startswith(f"task {done['task_id']} queued")
    bars = [line for line in lines if line.startswith("[")]
    assert bars and bars[-1].startswith("[" + "#" * 24 + "] 100%"), err
    assert f"saved video to {clip}" in err

    code, out, _ = await _sorapi(account, "status", done["task_id"], "--events")
    assert code == 0 and json.loads(out)["events"]["data"][0]["kind"] == "queued"
    code, out, _ = await _sorapi(account, "list")
    assert code == 0 and done["task_id"] in out.splitlines()[0]
    code, out, _ = await _sorapi(
        account,
        "list",
        "--json",
        "--base-url",
        account.base_url,
        "--api-key",
        account.api_key,
        env={"SORA2_API_KEY": "sk_not_this_one"},
    )
    assert code == 0 and json.loads(out)["data"][0]["task_id"] == done["task_id"]


async def test_failed_task_exits_non_zero_with_its_error(account: Api, tmp_path: Path) -> None:
    environment = {"SORA2_API_KEY": account.api_key, "SORAPI_BASE_URL": account.base_url, "PATH": "/usr/bin:/bin"}
    waiting = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sorapi",
        "generate",
        "A long tracking shot through a forest",
        "--duration",
        "12",
        "--resolution",
        "1280x720",
        "--out",
        str(tmp_path / "never.mp4"),
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert waiting.stderr is not None
    first = (await asyncio.wait_for(waiting.stderr.readline(), 60)).decode()
    task_id = first.split()[1]
    # Cancelled over HTTP at once: a second CLI process takes a second or two to start, and a fast box
    # may finish the render meanwhile.
    cancelled = await account.http.post(f"/api/tasks/{task_id}/cancel", headers=account.auth())
    assert cancelled.status_code == 202, cancelled.text
    _out_b, err_b = await asyncio.wait_for(waiting.communicate(), 120)
    assert waiting.returncode == 1
    assert f"error: task {task_id} cancelled: cancelled" in err_b.decode()
    assert not (tmp_path / "never.mp4").exists()
    code, _out, err = await _sorapi(account, "cancel", task_id)  # `sorapi cancel` on a finished task: exit 2
    assert code == 2 and "task_not_cancellable" in err, err


async def test_api_errors_exit_2_with_the_code(account: Api) -> None:
    code, _, err = await _sorapi(account, "generate", "x", "--resolution", "1000x1000")
    assert code == 2 and "error: validation_error" in err
    code, _, err = await _sorapi(account, "status", "sora2doesnotexist")
    assert code == 2 and "error: not_found" in err
    code, _, err = await _sorapi(account, "list", env={"SORA2_API_KEY": ""})
    assert code == 2 and "no API key" in err


def test_progress_line_shows_queue_then_steps() -> None:
    base: dict[str, Any] = {"status": "queued", "progress": 0, "queue_position": 2, "live": {"phase": "queued"}}
    assert describe(base).endswith("queued: position 2 for one of your plan's slots")
    waiting = {"status": "running", "progress": 0, "live": {"phase": "waiting", "render_queue_position": 3}}
    assert describe(waiting).endswith("waiting for a render worker: 3 task(s) ahead")
    denoising = {"status": "running", "progress": 47, "live": {"phase": "denoising", "step": 12, "total_steps": 24}}
    assert describe(denoising) == "[###########-------------]  47% denoising step 12/24"


def test_the_client_never_imports_torch() -> None:
    probe = "import sys, sorapi.cli.main; sorapi.cli.main.build_parser(); print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True).stdout.strip() == "False"
