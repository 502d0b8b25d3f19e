"""`revstream events list|show|replay`: inspect webhook event records and replay one."""

import json

from revstream.operator_client import OperatorError, call, client
from revstream.settings import Settings

COLUMNS = ("received_at", "source", "provider_event_id", "event_type", "state", "attempts", "error")


def list_events(
    settings: Settings, url: str | None, state: str | None, source: str | None, limit: int
) -> int:
    params = {k: v for k, v in {"state": state, "source": source}.items() if v is not None}
    remaining = limit
    rows: list[dict[str, object]] = []
    with client(settings, url, admin=False) as http:
        cursor = None
        while remaining > 0:
            page_params = {**params, "limit": str(min(remaining, 500))}
            if cursor:
                page_params["cursor"] = cursor
            response = call(http, "GET", "/api/v1/webhook-events", params=page_params)
            if response.status_code != 200:
                raise OperatorError(
                    f"{response.status_code}: {response.json().get('message', response.text)}"
                )
            page = response.json()
            rows += page["events"]
            remaining -= len(page["events"])
            cursor = page["next_cursor"]
            if not cursor:
                break
    cells = [[str(r.get(c) if r.get(c) is not None else "") for c in COLUMNS] for r in rows]
    widths = [max([len(c), *(len(row[i][:60]) for row in cells)]) for i, c in enumerate(COLUMNS)]
    print("  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True)))
    for row in cells:
        print("  ".join(v[:60].ljust(w) for v, w in zip(row, widths, strict=True)))
    print(f"({len(rows)} events)")
    return 0


def show_event(settings: Settings, url: str | None, source: str, event_id: str) -> int:
    with client(settings, url, admin=False) as http:
        response = call(http, "GET", f"/api/v1/webhook-events/{source}/{event_id}")
    if response.status_code == 404:
        raise OperatorError(f"no webhook event {source}/{event_id}: check `revstream events list`")
    print(json.dumps(response.json(), indent=2))
    return 0


def replay_event(settings: Settings, url: str | None, source: str, event_id: str) -> int:
    with client(settings, url, admin=True) as http:
        response = call(http, "POST", f"/api/v1/webhook-events/{source}/{event_id}/replay")
    body = response.json()
    if response.status_code != 200:
        raise OperatorError(f"{response.status_code}: {body.get('message', body)}")
    print(f"replayed {source}/{event_id} (attempt {body['attempt']}): the processor derives it again")
    return 0
