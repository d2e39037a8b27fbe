"""`limit`/`cursor` pagination of every list the API answers (documents, versions, sessions, a
session's messages, API keys).

A page holds at most `limit` items (default DEFAULT_LIMIT, at most MAX_LIMIT) and `next_cursor`:
pass it back as `cursor` for the next page; null on the last one. A cursor is opaque to clients:
it holds the sort position of the last item sent, so a page continues after that position even
when items were added or deleted in between (keyset pagination, nothing skipped or repeated twice
for items that stay put).
"""
from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from common.errors import ValidationFailed

DEFAULT_LIMIT = 100
MAX_LIMIT = 500
Item = TypeVar("Item")
SortKey = tuple[Any, ...]  # numbers and strings, compared in the list's order


class PageQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")  # a route's other query parameters are its own

    limit: int = Field(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT,
                       description=f"Items per page (default {DEFAULT_LIMIT}, at most {MAX_LIMIT})")
    cursor: str | None = Field(default=None, max_length=512,
                               description="The `next_cursor` of the previous page; leave out for the first")


class NumberedPageQuery(BaseModel):
    """`page` and `per_page`, for the admin lists API.md pages by number (with a `total`)."""

    model_config = ConfigDict(extra="forbid")

    page: int = Field(default=1, ge=1, le=1_000_000)
    per_page: int = Field(default=50, ge=1, le=200, description="Items per page (default 50, at most 200)")

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page


@dataclass(frozen=True)
class Page(Generic[Item]):
    items: list[Item]
    next_cursor: str | None


def paginate(items: Sequence[Item], sort_key: Callable[[Item], SortKey], query: PageQuery,
             descending: bool = False) -> Page[Item]:
    """One page of `items`, which are sorted by `sort_key` (descending: largest first)."""
    after = _decode(query.cursor)
    items = sorted(items, key=sort_key, reverse=descending)
    if after is not None:
        try:
            items = [item for item in items if (sort_key(item) < after if descending else sort_key(item) > after)]
        except TypeError as exc:  # a cursor of another list's shape
            raise _bad_cursor() from exc
    page = items[:query.limit]
    more = len(items) > query.limit
    return Page(page, _encode(sort_key(page[-1])) if more and page else None)


def _encode(key: SortKey) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key), separators=(",", ":")).encode()).decode().rstrip("=")


def _decode(cursor: str | None) -> SortKey | None:
    if cursor is None:
        return None
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error, RecursionError) as exc:
        raise _bad_cursor() from exc
    if not isinstance(key, list) or not key or not all(isinstance(part, (int, float, str)) for part in key):
        raise _bad_cursor()
    return tuple(key)


def _bad_cursor() -> ValidationFailed:
    return ValidationFailed("The cursor is not one this server gave out; start again without it",
                            {"fields": [{"field": "cursor", "message": "unknown cursor", "type": "value_error"}]})
