"""The baseline: the same HTTP stack as ingest (uvicorn + starlette, same uvicorn options) answering
200 with no work but reading the body. Ingest's rate divided by this one's is the share of the
server stack's ceiling that verification, enveloping and the Kafka round trip leave.

Run as `python -m revstream.bench.baseline PORT`.
"""

import sys

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def receive(request: Request) -> JSONResponse:
    await request.body()
    return JSONResponse({"received": True})


app = Starlette(routes=[Route("/webhooks/stripe", receive, methods=["POST"])])


def main() -> None:
    port = int(sys.argv[1])
    # The same options as revstream.runner.run_service uses for ingest.
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
