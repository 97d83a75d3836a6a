"""Models as configuration: the `[models.*]` registry and the checks a request passes against it."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from sorapi.contracts.schemas import GenerateRequest
from sorapi.domain.catalog import DEFAULT_CATALOG_PATH, load_catalog
from sorapi.domain.families import FAMILIES, canonical_dtype, frames_for
from sorapi.domain.planning import Planned, plan, render_spec
from sorapi.domain.resolutions import SIZE_NAMES

CATALOG = load_catalog(DEFAULT_CATALOG_PATH)


def test_registry_maps_channels_and_concrete_ids_to_local_weights() -> None:
    assert GenerateRequest(prompt="x").model_version == "sora-2-latest"
    assert {"sora-2-latest", "sora-2-preview", "wan2.1-t2v-1.3b", "ltx-video-0.9"} <= set(CATALOG.models)
    assert {m.family for m in CATALOG.models.values()} == set(FAMILIES) == {"wan", "ltx", "ltx2"}
    for name, model in CATALOG.models.items():
        assert not Path(model.weights).is_absolute() and "/" not in model.weights, f"{name}: a local directory name"
        assert model.frames_for(model.max_duration_s) > 0 and model.default_steps > 0
    assert CATALOG.canonical_model("sora-2") == "sora-2-latest"
    assert CATALOG.canonical_model("ltx-video") == "ltx-video-0.9"
    assert CATALOG.models["sora-2-latest"].resolutions == [], "the default channel renders every preset"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("family", "sora", "family must be one of wan, ltx"),
        ("dtype", "float8", "dtype must be one of"),
        ("resolutions", ["1000x1000"], "resolutions must be presets"),
        ("fps", 0, "must be positive"),
    ],
)
def test_a_bad_model_entry_is_rejected_when_the_catalog_loads(
    tmp_path: Path, field: str, value: object, message: str
) -> None:
    entry = {"family": "wan", "weights": "w", "fps": 16, "max_duration_s": 5, "default_steps": 30, field: value}
    body = "\n".join(f"{k} = {msgspec.json.encode(v).decode()}" for k, v in entry.items())
    path = tmp_path / "catalog.toml"
    path.write_text(DEFAULT_CATALOG_PATH.read_text() + f"\n[models.bad]\n{body}\n")
    with pytest.raises(msgspec.ValidationError, match=message):
        load_catalog(path)


def errors_of(**fields: object) -> dict[str, str]:
    planned = plan(GenerateRequest(prompt="a quiet harbour at dawn", **fields), CATALOG)  # type: ignore[arg-type]
    assert isinstance(planned, list), planned
    return {e.field: e.message for e in planned}


def test_requests_are_checked_against_the_chosen_model() -> None:
    assert errors_of(model_version="wan2.1-t2v-1.3b", duration=5, resolution="1280x720") == {
        "resolution": "wan2.1-t2v-1.3b does not render 1280x720; it renders 854x480, 480x854, 480x480"
    }
    assert errors_of(model_version="wan2.1-t2v-1.3b", duration=6, resolution="sd") == {
        "duration": "wan2.1-t2v-1.3b renders at most 81 frames; 6 s at 16 fps needs 97 (the longest clip is 5 s)"
    }
    assert errors_of(model_version="sora-2-preview", duration=13) == {
        "duration": "sora-2-preview renders at most 12 seconds"
    }
    both = errors_of(model_version="ltx-video-0.9", duration=11, resolution="fhd")
    assert set(both) == {"duration", "resolution"}
    assert "unknown-model" not in CATALOG.model_names()
    assert set(errors_of(model_version="unknown-model")) == {"model_version"}


@pytest.mark.parametrize(
    ("model", "duration", "frames"),
    [
        ("sora-2-latest", 8, 129),  # 128 frames at 16 fps → 4k+1
        ("sora-2-preview", 5, 121),  # 120 at 24 fps → 4k+1
        ("wan2.1-t2v-1.3b", 5, 81),  # the checkpoint's native length
        ("ltx-video-0.9", 10, 241),  # 240 at 24 fps → 8k+1
        ("ltx-video-0.9", 1, 25),  # 24 → 8k+1, ties round up
    ],
)
def test_duration_becomes_frames_at_the_models_fps(model: str, duration: int, frames: int) -> None:
    resolution = "854x480"
    planned = plan(
        GenerateRequest(prompt="p", model_version=model, duration=duration, resolution=resolution, seed=3), CATALOG
    )
    assert isinstance(planned, Planned)
    spec = render_spec("sora2x", planned.request, CATALOG)
    assert (spec.num_frames, spec.fps, spec.steps, spec.dtype) == (
        frames,
        CATALOG.models[model].fps,
        CATALOG.models[model].default_steps,
        "bfloat16",
    )
    assert spec.num_frames == frames_for(spec.family, duration, spec.fps)


def test_seed_names_resolve_to_presets_the_model_renders() -> None:
    planned = plan(GenerateRequest(prompt="p", resolution="hd", aspect_ratio="vertical"), CATALOG)
    assert isinstance(planned, Planned) and planned.request.resolution == "720x1280"
    for size in SIZE_NAMES:
        assert CATALOG.models["sora-2-latest"].renders(size)


def test_dtype_names() -> None:
    assert [canonical_dtype(n) for n in ("bf16", "FP16", "fp32", "bfloat16")] == [
        "bfloat16",
        "float16",
        "float32",
        "bfloat16",
    ]
    with pytest.raises(ValueError, match="unknown dtype"):
        canonical_dtype("int8")
