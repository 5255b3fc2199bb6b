"""User search by part of the id, the names or an e-mail: a substring filter over each
user's row, in userName order with a keyset cursor. It reads every row of the tenant; an
index for it is migration 0016's."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

from sqlalchemy import ColumnElement, and_, cast, func, or_, tuple_
from sqlalchemy import Text as TextType

from storage.tables import users


def _haystack() -> Any:
    return func.lower(
        func.concat_ws(
            " ",
            users.c.user_name,
            users.c.display_name,
            users.c.data["name"]["formatted"].astext,
            users.c.data["name"]["givenName"].astext,
            users.c.data["name"]["familyName"].astext,
            cast(users.c.data["emails"], TextType),
        )
    )


def matching(q: str, tenant_id: uuid.UUID) -> ColumnElement[bool]:
    needle = q.lower()
    return or_(
        func.strpos(_haystack(), needle) > 0,
        func.starts_with(cast(users.c.id, TextType), needle),
    )


def ordering() -> list[Any]:
    return [func.lower(users.c.user_name), users.c.id]


def cursor_of(user_name: str, user_id: uuid.UUID) -> str:
    raw = json.dumps([user_name.lower(), str(user_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def after_cursor(cursor: str) -> ColumnElement[bool]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        name, user_id = json.loads(raw)
        key = (str(name), uuid.UUID(user_id))
    except (ValueError, TypeError) as exc:
        raise ValueError("not a cursor") from exc
    return and_(tuple_(func.lower(users.c.user_name), users.c.id) > tuple_(*key))
