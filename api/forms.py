"""Form bodies (multipart/form-data, x-www-form-urlencoded) read field by field.

A malformed one is a 4xx naming the field (or the body), never a 500 from a decoder deep inside the framework.

Text fields come back as `str`; file parts as their raw `bytes` (callers only look at their names).
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import unquote_to_bytes

from multipart import (
    MultipartSegment,
    ParserError,
    ParserLimitReached,
    PushMultipartParser,
)

from sorapi.contracts import errors

MAX_PARTS = 64
"""More parts than any of our forms has fields: a body with more is refused, not parsed."""

FormFields = dict[str, str | bytes]


def _malformed(message: str) -> errors.ApiError:
    return errors.ApiError(
        f"the form body is malformed: {message}",
        code=errors.INVALID_FORM,
        details=[{"field": "body", "message": message}],
    )


def _text(name: str, raw: bytes, charset: str | None) -> str:
    """A field's text; bytes that are not in its charset (UTF-8 unless the part says) are a 422 naming it."""
    try:
        return raw.decode(charset or "utf-8")
    except (UnicodeDecodeError, LookupError):
        raise errors.ValidationFailed(
            "the request is invalid", details=[{"field": name, "message": f"not valid {charset or 'UTF-8'} text"}]
        ) from None


def multipart_fields(body: bytes, boundary: str | None) -> FormFields:
    """The fields of a multipart/form-data body (the last one wins when a name repeats)."""
    if not boundary:
        raise _malformed("multipart/form-data without a boundary in Content-Type")
    fields: FormFields = {}
    try:
        for segment, payload in _parts(body, boundary.encode("latin-1")):
            name = segment.name or ""
            fields[name] = payload if segment.filename is not None else _text(name, payload, segment.charset)
    except (ParserError, ParserLimitReached, UnicodeDecodeError) as exc:
        raise _malformed(str(exc.args[0]) if exc.args else type(exc).__name__) from None
    return fields


def multipart_parts(body: bytes, boundary: str | None) -> list[tuple[str, str | bytes, bool]]:
    """Every part of a multipart/form-data body in order, repeats kept.

    Each as (name, text or file bytes, whether it is a file part).
    """
    if not boundary:
        raise _malformed("multipart/form-data without a boundary in Content-Type")
    parts: list[tuple[str, str | bytes, bool]] = []
    try:
        for segment, payload in _parts(body, boundary.encode("latin-1")):
            name = segment.name or ""
            is_file = segment.filename is not None
            parts.append((name, payload if is_file else _text(name, payload, segment.charset), is_file))
    except (ParserError, ParserLimitReached, UnicodeDecodeError) as exc:
        raise _malformed(str(exc.args[0]) if exc.args else type(exc).__name__) from None
    return parts


def _parts(body: bytes, boundary: bytes) -> Iterator[tuple[MultipartSegment, bytes]]:
    """Each part's headers and payload, in order."""
    with PushMultipartParser(boundary, max_segment_count=MAX_PARTS, strict=True) as parser:
        segment, data = None, bytearray()
        for chunk in (body, b""):  # the empty chunk tells the parser that the body ended
            if parser.closed:
                break
            for part in parser.parse(chunk):
                if isinstance(part, MultipartSegment):
                    segment, data = part, bytearray()
                elif part is not None:
                    data.extend(part)
                elif segment is not None:  # the end of the current part
                    yield segment, bytes(data)


def urlencoded_fields(body: bytes) -> FormFields:
    """The fields of an application/x-www-form-urlencoded body, each name and value UTF-8."""
    fields: FormFields = {}
    for pair in body.split(b"&"):
        if not pair:
            continue
        raw_name, _, raw_value = pair.partition(b"=")
        name = _text("body", _unquote(raw_name), None)
        fields[name] = _text(name, _unquote(raw_value), None)
    return fields


def _unquote(raw: bytes) -> bytes:
    return unquote_to_bytes(raw.replace(b"+", b" "))
