"""Pure domain rules: resolution presets, pricing, fingerprints, the payload converter, status moves."""

from __future__ import annotations

import pytest
from temporalio.api.common.v1 import Payload

from sorapi.adapters.converter import DATA_CONVERTER
from sorapi.contracts import status
from sorapi.contracts.messages import RenderProgress, StoredObject, VideoTaskInput
from sorapi.contracts.schemas import GenerateRequest
from sorapi.domain.catalog import get_catalog
from sorapi.domain.planning import fingerprint, render_spec
from sorapi.domain.resolutions import ResolutionError, resolve


@pytest.mark.parametrize(
    ("resolution", "aspect", "expected"),
    [
        (None, None, (1280, 720, "hd")),
        ("hd", "vertical", (720, 1280, "hd")),
        ("720p", "square", (720, 720, "hd")),
        ("1920x1080", None, (1920, 1080, "fhd")),
        ("1920x1080", "16:9", (1920, 1080, "fhd")),
        (None, "portrait", (720, 1280, "hd")),
        ("854x480", None, (854, 480, "sd")),
        ("FHD", "Vertical", (1080, 1920, "fhd")),
        ("1920x1080", "vertical", (1080, 1920, "fhd")),  # the size names the tier, aspect_ratio turns it
        ("480x854", "square", (480, 480, "sd")),
    ],
)
def test_resolution_resolves_to_a_preset(resolution: str | None, aspect: str | None, expected: tuple) -> None:
    assert resolve(resolution, aspect) == expected


@pytest.mark.parametrize(
    ("resolution", "aspect", "field"),
    [
        ("1000x1000", None, "resolution"),
        ("4k", None, "resolution"),
        (None, "diagonal", "aspect_ratio"),
    ],
)
def test_bad_resolution_names_the_field(resolution: str | None, aspect: str | None, field: str) -> None:
    with pytest.raises(ResolutionError) as caught:
        resolve(resolution, aspect)
    assert caught.value.field == field


def test_longer_and_higher_resolution_cost_more() -> None:
    catalog = get_catalog()
    assert catalog.price("sora-2-latest", 8, "hd") == 16
    assert catalog.price("sora-2-latest", 12, "hd") > catalog.price("sora-2-latest", 8, "hd")
    assert (
        catalog.price("sora-2-latest", 8, "fhd")
        > catalog.price("sora-2-latest", 8, "hd")
        > catalog.price("sora-2-latest", 8, "sd")
    )


def test_fingerprint_ignores_the_key_and_header_order_but_not_the_body() -> None:
    a = GenerateRequest(prompt="x", idempotency_key="k1", callback_headers={"A": "1", "B": "2"})
    b = GenerateRequest(prompt="x", idempotency_key="k2", callback_headers={"B": "2", "A": "1"})
    assert fingerprint(a) == fingerprint(b)
    assert fingerprint(a) != fingerprint(GenerateRequest(prompt="y", idempotency_key="k1"))
    assert fingerprint(GenerateRequest(prompt="x")) == fingerprint(GenerateRequest(prompt="x", duration=8))


class _NextRelease(GenerateRequest, kw_only=True):
    """The request body of a later release, with one more optional field."""

    future_option: str | None = None


def test_a_new_optional_field_leaves_the_fingerprints_of_requests_without_it() -> None:
    """A create retried across a release (same key, same body) is not refused as `idempotency_key_reused`.

    Not even when the body's struct gained a field the client does not send.
    """
    sent = {"prompt": "x", "metadata": {"order": "1"}, "seed": 7}
    assert fingerprint(_NextRelease(**sent)) == fingerprint(GenerateRequest(**sent))  # type: ignore[arg-type]
    assert fingerprint(_NextRelease(**sent, future_option="on")) != fingerprint(GenerateRequest(**sent))  # type: ignore[arg-type]


def test_structs_cross_temporal_as_plain_json() -> None:
    value = StoredObject(format="mp4", key="tasks/t/video.mp4", content_type="video/mp4", size_bytes=3)
    (payload,) = DATA_CONVERTER.payload_converter.to_payloads([value])
    assert payload.metadata["encoding"] == b"json/plain"
    assert payload.data == b'{"format":"mp4","key":"tasks/t/video.mp4","content_type":"video/mp4","size_bytes":3}'
    assert DATA_CONVERTER.payload_converter.from_payloads([payload], [StoredObject]) == [value]
    assert DATA_CONVERTER.payload_converter.from_payloads([payload], None) == [
        {"format": "mp4", "key": "tasks/t/video.mp4", "content_type": "video/mp4", "size_bytes": 3}
    ]


def test_older_payloads_still_decode_when_structs_grow() -> None:
    """New fields have defaults, so histories recorded before they existed replay."""
    old = Payload(metadata={"encoding": b"json/plain"}, data=b'{"phase":"loading"}')
    assert DATA_CONVERTER.payload_converter.from_payloads([old], [RenderProgress]) == [
        RenderProgress(phase="loading", step=0, total=0)
    ]


def test_render_spec_is_deterministic_from_the_recorded_request() -> None:
    from sorapi.domain.planning import plan

    catalog = get_catalog()
    planned = plan(GenerateRequest(prompt="x", seed=7, aspect_ratio="vertical"), catalog)
    assert not isinstance(planned, list)
    spec = render_spec("sora2t", planned.request, catalog)
    assert (spec.width, spec.height, spec.seed, spec.duration_s) == (720, 1280, 7, 8)
    assert spec == render_spec("sora2t", planned.request, catalog)
    arg = VideoTaskInput(task_id="sora2t", account_id="a", price=planned.price, render=spec)
    (payload,) = DATA_CONVERTER.payload_converter.to_payloads([arg])
    assert len(payload.data) < 4096, "workflow inputs stay small"


def test_status_machine() -> None:
    assert status.can_move(status.QUEUED, status.RUNNING)
    assert status.can_move(status.RUNNING, status.SUCCEEDED)
    assert status.can_move(status.SUCCEEDED, status.EXPIRED)
    assert not status.can_move(status.FAILED, status.RUNNING)
    assert not status.can_move(status.SUCCEEDED, status.FAILED)
    assert not status.can_move(status.EXPIRED, status.SUCCEEDED)
