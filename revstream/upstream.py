"""Forwarding to the analytics process: one public port in front of two processes.

The embedded default runs ingest in its own process (webhook acknowledgements never wait behind
ClickHouse inserts or analyst queries) and the query API with the ClickHouse sink in another (the
only process that may open the chdb directory). Ingest serves webhooks, manual entries and the
operator endpoints itself and forwards every other request to the analytics process unchanged:
method, path, query, body and headers in; status, headers and a streamed body out (CSV exports
are streamed, never buffered). Hop-by-hop headers are dropped both ways (RFC 9110 section 7.6.1).

If the analytics process is down or restarting, the answer is 503 + Retry-After with a JSON
reason, never a stack trace: webhooks keep working meanwhile.
"""

import logging

import httpx
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.types import Receive, Scope, Send

log = logging.getLogger("revstream.upstream")

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
    }
)
# The server in front writes its own; relaying the analytics server's would send them twice.
SERVER_WRITTEN = frozenset({"date", "server"})
RETRY_AFTER_S = 2


def _forwardable(
    pairs: list[tuple[bytes, bytes]], drop: frozenset[str] = HOP_BY_HOP
) -> list[tuple[bytes, bytes]]:
    return [(k, v) for k, v in pairs if k.decode("latin-1").lower() not in drop]


class Upstream:
    """An ASGI app that relays requests to `base_url` (http://127.0.0.1:PORT of the analytics process)."""

    def __init__(self, base_url: str, connect_timeout_s: float = 2.0) -> None:
        self._base_url = base_url.rstrip("/")
        # No read timeout: an analyst's export may stream for minutes; the API bounds its own queries.
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(None, connect=connect_timeout_s), follow_redirects=False
        )

    async def close(self) -> None:
        await self._client.aclose()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        target = self._base_url + scope.get("raw_path", scope["path"].encode()).decode("latin-1")
        if scope.get("query_string"):
            target += "?" + scope["query_string"].decode("latin-1")
        client = scope.get("client")
        headers = _forwardable(scope["headers"])
        if client:
            headers.append((b"x-forwarded-for", client[0].encode()))
        has_body = any(k in (b"content-length", b"transfer-encoding") for k, _ in scope["headers"])
        outgoing = self._client.build_request(
            scope["method"], target, headers=headers, content=request.stream() if has_body else None
        )
        try:
            answer = await self._client.send(outgoing, stream=True)
        except httpx.HTTPError as exc:
            log.warning("analytics process did not answer %s %s: %s", scope["method"], scope["path"], exc)
            response = JSONResponse(
                {
                    "error": "unavailable",
                    "message": "the analytics process (query API) is not answering; it restarts by itself, "
                    "see logs/analytics.log",
                },
                status_code=503,
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )
            await response(scope, receive, send)
            return
        relayed = StreamingResponse(
            answer.aiter_raw(), status_code=answer.status_code, background=BackgroundTask(answer.aclose)
        )
        relayed.raw_headers = _forwardable(answer.headers.raw, HOP_BY_HOP | SERVER_WRITTEN)
        await relayed(scope, receive, send)
