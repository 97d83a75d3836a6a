"""Query parameters whose published schema and parsing must agree exactly (the fuzzer holds us to it).

A comma-separated list of a closed set (`expand=events,webhooks`, `status=queued,running`) is
published as a `pattern` and parsed by the same rule; an empty value means "none given".
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta, timezone

from sorapi.contracts import errors
from sorapi.contracts.schemas import MAX_METADATA_KEY_CHARS, MAX_METADATA_KEYS, MAX_METADATA_VALUE_CHARS

EMPTY_MEANS_ABSENT = " An empty value is the same as leaving it out."
"""Appended to the description of every optional parameter that treats `?name=` as absent."""


def comma_list_pattern(allowed: Iterable[str]) -> str:
    """The regular expression of a comma list of `allowed` values (or of nothing at all)."""
    choice = "(?:" + "|".join(re.escape(value) for value in allowed) + ")"
    return f"^(?:{choice}(?:,{choice})*)?$"


def comma_list(raw: str | None, allowed: Iterable[str], field: str) -> list[str]:
    """The values of a comma list, in order; anything but exact members separated by commas is a 422."""
    choices = list(allowed)
    if not raw:
        return []
    parts = raw.split(",")
    unknown = [part for part in parts if part not in choices]
    if unknown:
        raise errors.ValidationFailed(
            f"unknown {field} value",
            details=[
                {
                    "field": field,
                    "message": f"{', '.join(repr(p) for p in unknown)} is not one of {', '.join(choices)} "
                    "(comma-separated, no spaces)",
                }
            ],
        )
    return parts


_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?"
    r"(?:[Zz]|([+-])([0-9]{2}):([0-9]{2}))"
)
DATE_TIME = {"format": "date-time"}
"""`schema_extra` of a date-time parameter that `timestamp` reads."""


def timestamp(raw: str | None, field: str) -> datetime | None:
    """An RFC 3339 date-time exactly as JSON Schema's `format: date-time` has it, in UTC (None: not sent).

    What is past the range Python can hold (year 0, offsets across year 9999) is clamped to the
    nearest representable instant: these are filter bounds, and the order is all that matters.
    """
    if raw is None:
        return None
    matched = _RFC3339.fullmatch(raw)
    if matched is None or not _valid_fields(*matched.groups()):
        raise errors.ValidationFailed(
            "invalid date-time",
            details=[
                {"field": field, "message": "must be an RFC 3339 date-time with an offset, e.g. 2026-12-01T10:00:00Z"}
            ],
        )
    year, month, day, hour, minute, second = (int(part) for part in matched.groups()[:6])
    fraction, sign, offset_h, offset_m = matched.groups()[6:]
    offset = timedelta(hours=int(offset_h or 0), minutes=int(offset_m or 0)) * (-1 if sign == "-" else 1)
    micros = int((fraction or "0")[:6].ljust(6, "0"))
    earliest, latest = datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC)
    if year == 0:
        return earliest
    try:  # a leap second reads as the last instant before it
        local = datetime(year, month, day, hour, minute, min(second, 59), micros, timezone(offset))
        return local.astimezone(UTC)
    except OverflowError:
        return latest if year > 1 else earliest


def _valid_fields(
    year: str,
    month: str,
    day: str,
    hour: str,
    minute: str,
    second: str,
    _fraction: str | None,
    sign: str | None,
    offset_h: str | None,
    offset_m: str | None,
) -> bool:
    """RFC 3339's ranges: real calendar days, and a leap second (:60) only at 23:59 UTC."""
    if not 1 <= int(month) <= 12 or int(hour) > 23 or int(minute) > 59 or int(second) > 60:
        return False
    if int(offset_h or 0) > 23 or int(offset_m or 0) > 59:
        return False
    leap = calendar.isleap(int(year))
    if not 1 <= int(day) <= [31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][int(month) - 1]:
        return False
    offset = (int(offset_h or 0) * 60 + int(offset_m or 0)) * (-1 if sign == "-" else 1)
    return int(second) < 60 or (int(hour) * 60 + int(minute) - offset) % 1440 == 23 * 60 + 59


METADATA_PARAM = re.compile(r"^metadata\[(.*)\]$")


def metadata_filter(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    """`metadata[KEY]=VALUE` query parameters (OpenAPI deepObject) as a dict.

    Held to the limits of `metadata` itself (sorapi.contracts.schemas.ClientMetadata): a label that no task can have is
    a 422.
    """
    found: dict[str, str] = {}
    for name, value in items:
        match = METADATA_PARAM.match(name)
        if match is None:
            continue
        key = match.group(1)
        problem = _metadata_problem(key, value)
        if problem:
            raise errors.ValidationFailed(
                "invalid metadata filter",
                details=[{"field": f"metadata[{key[:MAX_METADATA_KEY_CHARS]}]", "message": problem}],
            )
        found[key] = value
    if len(found) > MAX_METADATA_KEYS:
        raise errors.ValidationFailed(
            "invalid metadata filter",
            details=[{"field": "metadata", "message": f"at most {MAX_METADATA_KEYS} labels, as a task has"}],
        )
    return found


def _metadata_problem(key: str, value: str) -> str | None:
    if not 1 <= len(key) <= MAX_METADATA_KEY_CHARS or "\x00" in key:
        return f"a label name has 1 to {MAX_METADATA_KEY_CHARS} characters and no NUL"
    if len(value) > MAX_METADATA_VALUE_CHARS or "\x00" in value:
        return f"a label value has at most {MAX_METADATA_VALUE_CHARS} characters and no NUL"
    return None
