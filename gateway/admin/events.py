"""`GET /api/v1/events`: a tenant's events in order, for a product that reconciles by pulling
instead of (or besides) receiving webhooks, like WorkOS's Events API.

Authenticated by an API key of the tenant with the `events:read` scope
(`Authorization: Bearer idgk_...`; `idgate api-key create SLUG --scope events:read`).
`after` is the `sequence` of the last event the caller has (0, or absent, for the start);
`limit` at most 1,000 (default 100); `types` a comma-separated list of event types. The
answer is `{"data": [...], "next_after": N, "has_more": bool}`: call again with
`after=next_after`. Numbers have no gaps in commit order, so nothing is ever skipped.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from gateway.admin.api import Api, Call, Need
from gateway.admin.callers import EVENTS_SCOPE
from gateway.keys import EVENTS
from gateway.webhooks import event_json

api = Api()


class EventsQuery(BaseModel):
    after: int = Field(0, ge=0, le=2**62, description="The last `sequence` you have.")
    limit: int = Field(100, ge=1, le=1000)
    types: str = Field("", max_length=500, description="Comma-separated event types.")


class EventPage(BaseModel):
    data: list[dict[str, Any]]
    next_after: int = Field(description="Pass as `after` for the next page.")
    has_more: bool


@api.route(
    "GET", "/events", "The organisation's events in order", Need.SIGNED_IN, "Events",
    query=EventsQuery, response=EventPage, scope=EVENTS_SCOPE,
)  # fmt: skip
async def list_events(call: Call) -> EventPage:
    query: EventsQuery = call.query
    caller = call.caller
    types = [t for t in query.types.split(",") if t]
    found = await call.request.config_dict[EVENTS].after(
        caller.tenant_id, query.after, query.limit + 1, types
    )
    page = found[: query.limit]
    return EventPage(
        data=[event_json(e, caller.tenant_slug) for e in page],
        next_after=page[-1].seq if page else query.after,
        has_more=len(found) > query.limit,
    )
