"""`GET /healthz` (the process is up) and `GET /readyz` (its database, Temporal and S3 answer), for operators."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from litestar import Controller, Response, get
from sqlalchemy import text

from sorapi.api.state import Resources


class HealthController(Controller):
    path = "/"
    tags = ["operations"]
    include_in_schema = False

    @get("/healthz")
    async def healthz(self) -> dict[str, str]:
        """The API process is up."""
        return {"status": "ok"}

    @get("/readyz")
    async def readyz(self, resources: Resources) -> Response[dict[str, str]]:
        """Ready only when the database, Temporal and S3 all answer."""
        checks = await asyncio.gather(
            _check_db(resources), _check_temporal(resources), _check_s3(resources), return_exceptions=True
        )
        report = {
            name: "ok" if result is True else f"error: {result!r}"
            for name, result in zip(("database", "temporal", "s3"), checks, strict=True)
        }
        ok = all(result is True for result in checks)
        return Response({"status": "ok" if ok else "unavailable", **report}, status_code=200 if ok else 503)


async def _check_db(res: Resources) -> bool:
    async with res.engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
    return True


async def _check_temporal(res: Resources) -> bool:
    return await res.temporal.service_client.check_health(timeout=timedelta(seconds=3))


async def _check_s3(res: Resources) -> bool:
    return await asyncio.to_thread(res.s3.bucket_exists, res.settings.s3_bucket)
