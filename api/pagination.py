"""Cursors: clients pass back the `next_cursor` we gave them.

Each list publishes its cursor's pattern, and every value matching it names a position (its page
may be empty), so whatever the schema accepts the API accepts; anything else is a 422 naming the
parameter. An empty cursor (`?cursor=`) is no cursor at all: the first page, on every list.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from litestar.params import Parameter

from sorapi.api.query import EMPTY_MEANS_ABSENT
from sorapi.contracts import errors

_ID = "[0-9]{1,9}"
"""A row id (fits PostgreSQL's integer)."""
_TASK_POSITION = "t([0-9]{1,17})\\.([0-9a-z]{1,64})"
"""Creation time (microseconds since the Unix epoch: up to year 5138) and id of the last task shown."""
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def cursor_pattern(tag: str) -> str:
    """The published pattern of a row-id cursor (`l123`), or of nothing at all."""
    return f"^(?:{re.escape(tag)}{_ID})?$"


def cursor_parameter(tag: str) -> Any:
    """The `cursor` query parameter of a list paginated by row id."""
    return Parameter(
        query="cursor",
        default=None,
        schema_extra={"pattern": cursor_pattern(tag)},
        description="`next_cursor` of the previous page." + EMPTY_MEANS_ABSENT,
    )


TASK_CURSOR_PATTERN = f"^(?:{_TASK_POSITION})?$"


def _invalid(field: str, what: str) -> errors.ValidationFailed:
    return errors.ValidationFailed(
        "invalid cursor",
        details=[{"field": field, "message": f"not {what}: pass back a next_cursor value exactly as returned"}],
    )


def id_cursor(tag: str, row_id: int) -> str:
    return f"{tag}{row_id}"


def decode_id_cursor(cursor: str | None, tag: str, field: str = "cursor") -> int | None:
    """The row id a cursor of this list names; None for no cursor."""
    if not cursor:
        return None
    matched = re.fullmatch(f"{re.escape(tag)}({_ID})", cursor)
    if matched is None:
        raise _invalid(field, "a cursor of this list")
    return int(matched.group(1))


def event_cursor(event_id: int) -> str:
    return id_cursor("e", event_id)


EVENT_CURSOR_PATTERN = cursor_pattern("e")


def decode_event_cursor(cursor: str | None, field: str = "events_cursor") -> int | None:
    return decode_id_cursor(cursor, "e", field)


def task_cursor(created_at: datetime, task_id: str) -> str:
    micros = (created_at - _EPOCH) // timedelta(microseconds=1)
    return f"t{micros}.{task_id}"


def decode_task_cursor(cursor: str | None, field: str = "cursor") -> tuple[datetime, str] | None:
    """(created_at, task id) of the last task of the previous page; None for no cursor."""
    if not cursor:
        return None
    matched = re.fullmatch(_TASK_POSITION, cursor)
    if matched is None:
        raise _invalid(field, "a task list cursor")
    return _EPOCH + timedelta(microseconds=int(matched.group(1))), matched.group(2)
