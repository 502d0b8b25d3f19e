"""Alert routes: list with the read token, lifecycle changes with the admin token, each audited.

  GET  /api/v1/alerts?status=open&rule=...&entity=...&livemode=true&limit=50&cursor=...
  GET  /api/v1/alerts/{alert_id}                 the alert and its audit trail
  POST /api/v1/alerts/{alert_id}/acknowledge     body (optional): {"actor": "alice", "note": "..."}
  POST /api/v1/alerts/{alert_id}/resolve
  POST /api/v1/alerts/{alert_id}/dismiss

A change and its alert_events row commit in one transaction. Asking for the state an alert is
already in is a no-op (200, changed: false, nothing audited); a move the lifecycle does not allow
(from resolved or dismissed) is 409. Writes need REVSTREAM_ADMIN_TOKEN; unset, writes are off (403).
"""

import base64
import hmac
import json
import logging
from datetime import datetime
from typing import Any

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from revstream.settings import Settings
from schemas.alerts import TRANSITIONS, AlertStatus

log = logging.getLogger("revstream.api.alerts")

ACTIONS = {
    "acknowledge": AlertStatus.ACKNOWLEDGED,
    "resolve": AlertStatus.RESOLVED,
    "dismiss": AlertStatus.DISMISSED,
}
MAX_LIMIT = 500
_COLUMNS = (
    "alert_id, rule, severity, entity, currency, livemode, window_start, window_end, title, observed, "
    "expected, unit, details, status, detected_at, status_changed_at"
)


class ChangeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    actor: str = Field(default="admin", min_length=1, max_length=200, description="Who made the change.")
    note: str | None = Field(default=None, max_length=2000)


def _error(status: int, error: str, message: str) -> JSONResponse:
    return JSONResponse({"error": error, "message": message}, status_code=status)


def _bearer_ok(request: Request, token: str) -> bool:
    scheme, _, supplied = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(supplied.encode(), token.encode())


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()}


def _cursor_encode(detected_at: datetime, alert_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([detected_at.isoformat(), alert_id]).encode()).decode()


def _cursor_decode(value: str) -> tuple[datetime, str] | None:
    try:
        stamp, alert_id = json.loads(base64.urlsafe_b64decode(value.encode()))
        return datetime.fromisoformat(stamp), str(alert_id)
    except (ValueError, TypeError):
        return None


class AlertsApi:
    """The routes plus the PostgreSQL pool they use (opened and closed by the app's lifespan)."""

    def __init__(self, settings: Settings, database_url: str) -> None:
        self._read = settings.api_token.get_secret_value() if settings.api_token else None
        self._admin = settings.admin_token.get_secret_value() if settings.admin_token else None
        self._pool = AsyncConnectionPool(database_url, min_size=1, max_size=4, open=False)
        self.routes = [
            Route("/api/v1/alerts", self.list_alerts, methods=["GET"]),
            Route("/api/v1/alerts/{alert_id}", self.get_alert, methods=["GET"]),
            Route("/api/v1/alerts/{alert_id}/{action}", self.change, methods=["POST"]),
        ]

    async def start(self) -> None:
        await self._pool.open(wait=False)

    async def stop(self) -> None:
        await self._pool.close()

    def _can_read(self, request: Request) -> bool:
        return self._read is None or _bearer_ok(request, self._read)

    async def list_alerts(self, request: Request) -> JSONResponse:
        if not self._can_read(request):
            return _error(401, "unauthorized", "send Authorization: Bearer <REVSTREAM_API_TOKEN>")
        params = request.query_params
        where: list[str] = []
        args: list[Any] = []
        if status := params.get("status"):
            if status not in AlertStatus.__members__.values():
                return _error(400, "bad_request", "status must be open, acknowledged, resolved or dismissed")
            where.append("status = %s")
            args.append(status)
        for name in ("rule", "entity"):
            if value := params.get(name):
                where.append(f"{name} = %s")
                args.append(value)
        if (livemode := params.get("livemode")) is not None:
            flag = {"true": True, "false": False}.get(livemode.lower())
            if flag is None:
                return _error(400, "bad_request", "livemode must be true or false")
            where.append("livemode = %s")
            args.append(flag)
        try:
            limit = int(params.get("limit", "50"))
        except ValueError:
            limit = 0
        if not 1 <= limit <= MAX_LIMIT:
            return _error(400, "bad_request", f"limit must be an integer from 1 to {MAX_LIMIT}")
        if cursor := params.get("cursor"):
            position = _cursor_decode(cursor)
            if position is None:
                return _error(400, "bad_request", "cursor is not one this API returned")
            where.append("(detected_at, alert_id) < (%s, %s)")
            args += list(position)
        sql = f"SELECT {_COLUMNS} FROM alerts"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY detected_at DESC, alert_id DESC LIMIT %s"
        async with self._pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(sql, [*args, limit + 1])
            rows = await cur.fetchall()
        page = rows[:limit]
        following = (
            _cursor_encode(page[-1]["detected_at"], page[-1]["alert_id"]) if len(rows) > limit else None
        )
        return JSONResponse({"alerts": [_jsonable(r) for r in page], "next_cursor": following})

    async def get_alert(self, request: Request) -> JSONResponse:
        if not self._can_read(request):
            return _error(401, "unauthorized", "send Authorization: Bearer <REVSTREAM_API_TOKEN>")
        alert_id = request.path_params["alert_id"]
        async with self._pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(f"SELECT {_COLUMNS} FROM alerts WHERE alert_id = %s", (alert_id,))
            row = await cur.fetchone()
            if row is None:
                return _error(404, "not_found", "no alert with this id")
            await cur.execute(
                "SELECT actor, from_status, to_status, note, changed_at FROM alert_events "
                "WHERE alert_id = %s ORDER BY id",
                (alert_id,),
            )
            events = await cur.fetchall()
        return JSONResponse({**_jsonable(row), "events": [_jsonable(e) for e in events]})

    async def change(self, request: Request) -> JSONResponse:
        if self._admin is None:
            return _error(403, "writes_disabled", "set REVSTREAM_ADMIN_TOKEN to allow alert changes")
        if not _bearer_ok(request, self._admin):
            return _error(401, "unauthorized", "send Authorization: Bearer <REVSTREAM_ADMIN_TOKEN>")
        target = ACTIONS.get(request.path_params["action"])
        if target is None:
            return _error(404, "not_found", "action must be acknowledge, resolve or dismiss")
        body = await request.body()
        try:
            change = ChangeRequest.model_validate_json(body) if body.strip() else ChangeRequest()
        except ValidationError as exc:
            err = exc.errors(include_input=False, include_url=False)[0]
            where = ".".join(str(p) for p in err["loc"]) or "body"
            return _error(400, "bad_request", f"{where}: {err['msg']}")
        alert_id = request.path_params["alert_id"]
        async with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            await cur.execute("SELECT status FROM alerts WHERE alert_id = %s FOR UPDATE", (alert_id,))
            row = await cur.fetchone()
            if row is None:
                return _error(404, "not_found", "no alert with this id")
            current = AlertStatus(row[0])
            if current is target:
                return JSONResponse({"alert_id": alert_id, "status": current.value, "changed": False})
            if target not in TRANSITIONS[current]:
                return _error(
                    409, "conflict", f"the alert is {current.value}; it cannot become {target.value}"
                )
            await cur.execute(
                "UPDATE alerts SET status = %s, status_changed_at = now() WHERE alert_id = %s",
                (target.value, alert_id),
            )
            await cur.execute(
                "INSERT INTO alert_events (alert_id, actor, from_status, to_status, note) VALUES (%s, %s, %s, %s, %s)",
                (alert_id, change.actor, current.value, target.value, change.note),
            )
        log.info("alert %s: %s -> %s by %s", alert_id, current.value, target.value, change.actor)
        return JSONResponse(
            {"alert_id": alert_id, "status": target.value, "changed": True, "from": current.value}
        )
