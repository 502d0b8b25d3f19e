"""Ingest forwarding what it does not serve to the analytics process (`revstream up` runs the two
behind one port). The analytics side here is a real uvicorn server on a free port."""

import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from revstream.localservices import free_port
from revstream.upstream import Upstream


async def _echo(request: Request) -> JSONResponse:
    return JSONResponse(
        {
            "method": request.method,
            "path": request.url.path,
            "query": request.url.query,
            "body": (await request.body()).decode(),
            "authorization": request.headers.get("authorization"),
            "forwarded_for": request.headers.get("x-forwarded-for"),
        },
        status_code=201 if request.method == "POST" else 200,
        headers={"X-Analytics": "yes"},
    )


async def _export(_: Request) -> StreamingResponse:
    async def rows() -> object:
        for i in range(1000):
            yield f"{i},row\n".encode()

    return StreamingResponse(rows(), media_type="text/csv")  # chunked: no Content-Length


async def _missing(_: Request) -> Response:
    return JSONResponse({"error": "not_found"}, status_code=404)


ANALYTICS = Starlette(
    routes=[
        Route("/api/v1/echo", _echo, methods=["GET", "POST"]),
        Route("/api/v1/export", _export),
        Route("/api/v1/missing", _missing),
    ]
)


@pytest.fixture(scope="module")
def analytics_url() -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(ANALYTICS, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the analytics stand-in did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


async def _own(_: Request) -> JSONResponse:
    return JSONResponse({"served_by": "ingest"})


def ingest_app(upstream_url: str) -> Starlette:
    return Starlette(routes=[Route("/health", _own), Mount("/", app=Upstream(upstream_url))])


def test_requests_ingest_does_not_serve_reach_analytics_unchanged(analytics_url: str) -> None:
    with TestClient(ingest_app(analytics_url)) as client:  # one event loop, as under uvicorn
        _check_forwarding(client)


def _check_forwarding(client: TestClient) -> None:
    assert client.get("/health").json() == {"served_by": "ingest"}

    got = client.get("/api/v1/echo?livemode=false&group_by=product", headers={"Authorization": "Bearer t"})
    assert got.status_code == 200 and got.headers["x-analytics"] == "yes"
    assert got.json()["query"] == "livemode=false&group_by=product"
    assert got.json()["authorization"] == "Bearer t"
    assert got.json()["forwarded_for"]  # the analytics side can still log who asked

    posted = client.post(
        "/api/v1/echo", content=b'{"rate": "1.08"}', headers={"Content-Type": "application/json"}
    )
    assert posted.status_code == 201 and posted.json()["body"] == '{"rate": "1.08"}'

    assert client.get("/api/v1/missing").status_code == 404


def test_a_streamed_export_is_relayed_whole(analytics_url: str) -> None:
    got = TestClient(ingest_app(analytics_url)).get("/api/v1/export")
    assert got.status_code == 200 and got.headers["content-type"].startswith("text/csv")
    assert got.text == "".join(f"{i},row\n" for i in range(1000))


def test_analytics_down_is_503_with_retry_after_and_no_trace() -> None:
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    got = TestClient(ingest_app(down), raise_server_exceptions=False).get("/api/v1/revenue/totals")
    assert got.status_code == 503 and got.headers["retry-after"]
    assert got.json()["error"] == "unavailable" and "Traceback" not in got.text
