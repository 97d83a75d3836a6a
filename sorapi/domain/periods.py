"""Billing periods: calendar months in UTC, named "YYYY-MM"."""

from __future__ import annotations

from datetime import UTC, datetime


def period_of(moment: datetime) -> str:
    """The period a moment falls in ("2026-12"); naive datetimes are taken as UTC."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return f"{moment.year:04d}-{moment.month:02d}"


def period_bounds(period: str) -> tuple[datetime, datetime]:
    """[start, end) of a period, as aware UTC datetimes."""
    year, month = (int(part) for part in period.split("-"))
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
    return start, end
