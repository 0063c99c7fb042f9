"""Keyset pagination cursors: opaque to clients, a (timestamp, id) position to us.

Keyset, not offset: a page costs the same however deep it is, and rows added meanwhile do not
shift what the next page returns.
"""

import base64
import json
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from app.core.errors import BadRequest

Position = tuple[datetime, uuid.UUID]
T = TypeVar("T")


class InvalidCursor(BadRequest):
    problem = "invalid-cursor"
    title = "Invalid cursor"


def encode_cursor(position: Position) -> str:
    raw = json.dumps([position[0].isoformat(), str(position[1])]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> Position | None:
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        timestamp, identifier = json.loads(raw)
        return datetime.fromisoformat(timestamp), uuid.UUID(identifier)
    except (ValueError, TypeError) as exc:
        raise InvalidCursor("The cursor is not one this service gave out.") from exc


def page_of(
    rows: list[T], limit: int, position: Callable[[T], Position]
) -> tuple[list[T], str | None]:
    """Split `limit + 1` fetched rows into the page and the cursor of the next one."""
    page = rows[:limit]
    next_cursor = encode_cursor(position(page[-1])) if len(rows) > limit else None
    return page, next_cursor
