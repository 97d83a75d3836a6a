"""Opaque cursors: clients pass back what we gave them; a tampered or stale one is a clear 422."""

from __future__ import annotations

import base64
from datetime import datetime

import msgspec

from sorapi import errors


def encode(*parts: str | int) -> str:
    raw = msgspec.json.encode(list(parts))
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(cursor: str, field: str) -> list[str | int]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        parts = msgspec.json.decode(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(parts, list) or not parts:
            raise ValueError("not a cursor")
        return parts
    except (ValueError, msgspec.DecodeError) as exc:
        raise errors.ValidationFailed("invalid cursor", details=[
            {"field": field, "message": "pass back a next_cursor value exactly as returned"}]) from exc


def event_cursor(event_id: int) -> str:
    return encode("e", event_id)


def decode_event_cursor(cursor: str | None, field: str = "events_cursor") -> int | None:
    if cursor is None:
        return None
    parts = decode(cursor, field)
    if len(parts) != 2 or parts[0] != "e" or not isinstance(parts[1], int):
        raise errors.ValidationFailed("invalid cursor", details=[{"field": field, "message": "not an events cursor"}])
    return parts[1]


def task_cursor(created_at: datetime, task_id: str) -> str:
    return encode("t", created_at.isoformat(), task_id)


def decode_task_cursor(cursor: str | None, field: str = "cursor") -> tuple[datetime, str] | None:
    if cursor is None:
        return None
    parts = decode(cursor, field)
    try:
        if len(parts) != 3 or parts[0] != "t":
            raise ValueError("not a task cursor")
        return datetime.fromisoformat(str(parts[1])), str(parts[2])
    except ValueError as exc:
        raise errors.ValidationFailed("invalid cursor", details=[
            {"field": field, "message": "not a task list cursor"}]) from exc
