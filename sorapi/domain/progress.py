"""A render's progress as a percentage: one formula for `/api/status`, event streams and webhooks."""

from __future__ import annotations

from sorapi.contracts.messages import RenderProgress


def progress_percent(beat: RenderProgress) -> int:
    """Loading is the first 5%, denoising runs to 90%, encoding to 95%, upload to 99%."""
    if beat.phase == "denoising" and beat.total:
        return 5 + int(85 * beat.step / beat.total)
    return {"loading": 5, "encoding": 92}.get(beat.phase, 5)
