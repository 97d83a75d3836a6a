"""The whole real path: HTTP → Temporal workflow → render worker → S3 → status → playable MP4."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import av
import httpx

from sorapi.cli import servers
from tests.stack import Api, Stack, start_stack

# The seed's quickstart payload, byte for byte.
QUICKSTART = {
    "prompt": "A neon-lit city skyline at dusk with flying cars and dynamic lighting",
    "aspect_ratio": "vertical",
}


async def _quickstart_renders(api: Api, tmp: Path) -> dict:
    created = await api.generate(QUICKSTART)
    assert created.status_code == 200, created.text
    body = created.json()
    assert body["status"] == "queued"
    assert body["task_id"].startswith("sora2")
    assert body["credits_reserved"] == 16  # 8 s × 2 credits/s at the hd tier

    done = await api.wait(body["task_id"])
    assert done["status"] == "succeeded", done
    assert done["_seen"][-1] == "succeeded"
    assert set(done["_seen"]) <= {"queued", "running", "succeeded"}
    assert done["progress"] == 100
    assert done["request"]["prompt"] == QUICKSTART["prompt"]
    assert done["request"]["aspect_ratio"] == "vertical"
    assert done["request"]["resolution"] == "720x1280"
    assert done["request"]["duration"] == 8
    assert done["error_message"] is None
    assert done["started_at"] and done["finished_at"]
    assert [o["format"] for o in done["outputs"]] == ["mp4", "webm", "jpg", "json"]
    assert done["response"] == [o["url"] for o in done["outputs"]], "response lists the URLs, the MP4 first"

    render = done["render"]
    assert render["requested_width"] == 720 and render["requested_height"] == 1280
    assert render["width"] < render["height"], "vertical stays vertical when scaled for the dev model"

    video = tmp / "video.mp4"
    async with httpx.AsyncClient() as plain:  # the presigned URL needs no API key
        download = await plain.get(done["response"][0])
    assert download.status_code == 200
    video.write_bytes(download.content)
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        frames = list(container.decode(video=0))
    assert len(frames) == render["num_frames"] == 65  # 8 s at the dev model's 8 fps, rounded to 4k+1
    assert (frames[0].width, frames[0].height) == (render["width"], render["height"])
    return done


async def test_quickstart_on_postgres(api: Api, stack: Stack, tmp: Path) -> None:
    done = await _quickstart_renders(api, tmp)
    processes = {rec.get("process") for rec in json_lines(stack.logs()) if rec.get("task_id") == done["task_id"]}
    assert {"api", "worker orchestrator", "worker render"} <= processes, processes


def json_lines(text: str) -> list[dict[str, object]]:
    """The log's JSON records.

    The stack's processes share one log file, and two of them writing at once can run two records into one line (seen
    once in CI): such a line is skipped, not fatal.
    """
    records = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return records


def test_free_ports_are_never_handed_out_twice() -> None:
    """A stack picks its servers' ports before they listen: a repeat would make two of them collide."""
    reserved = servers.free_port()
    servers.reserve_ports(reserved + 1)
    picked = [servers.free_port() for _ in range(300)]
    assert len(set(picked)) == len(picked)
    assert reserved not in picked and reserved + 1 not in picked


def _port_closed(address: str) -> bool:
    host, _, port = address.rpartition(":")
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, int(port))) != 0


async def test_embedded_stack_renders_stops_cleanly_and_restarts_on_its_data(tmp: Path) -> None:
    """`sorapi dev` on its own PostgreSQL and Valkey, here with two render workers.

    Render, SIGTERM stops every child, a second run reuses the data.
    """
    first = start_stack(tmp, SORAPI_DEV_RENDER_WORKERS="2")
    try:
        api = Api(first.base_url, first.api_key)
        try:
            done = await _quickstart_renders(api, tmp)
        except httpx.TransportError as exc:
            raise AssertionError(f"the dev stack stopped answering:\n{first.logs()[-6000:]}") from exc
        await api.close()
        assert (first.data_dir / "pg" / "PG_VERSION").exists()
        assert "redis://" in first.logs(), "the dev stack should run its own Valkey for rate limits"
        ready = [r for r in json_lines(first.logs()) if r.get("event") == "render host ready"]
        assert len(ready) == 2, f"{len(ready)} render workers ready, expected 2"
        assert "Render       2 workers" in first.logs() and "metrics: render-2" in first.logs()
    finally:
        first.stop()
    assert first.proc.returncode == 0
    servers_of_the_stack = (
        first.base_url.removeprefix("http://"),
        first.temporal_address,
        first.s3_endpoint,
        f"127.0.0.1:{first.env['SORAPI_DEV_POSTGRES_PORT']}",
        f"127.0.0.1:{first.env['SORAPI_DEV_VALKEY_PORT']}",
    )
    for address in servers_of_the_stack:
        assert _port_closed(address), f"{address} still open after SIGTERM"

    second = start_stack(tmp, SORAPI_DEV_API_KEY=first.api_key)
    try:
        api = Api(second.base_url, first.api_key)
        again = (await api.status(done["task_id"])).json()
        assert again["status"] == "succeeded" and again["request"] == done["request"]
        async with httpx.AsyncClient() as plain:
            assert (await plain.get(again["response"][0])).status_code == 200
        await api.close()
    finally:
        second.stop()


async def test_health_and_readiness(api: Api) -> None:
    assert (await api.http.get("/healthz")).json() == {"status": "ok"}
    ready = await api.http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ok", "database": "ok", "temporal": "ok", "s3": "ok"}
