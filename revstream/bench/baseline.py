"""The baseline: the same HTTP stack as ingest (uvicorn with the same options, and the same ASGI
front, FastPaths, that hands Stripe webhook paths to a bare ASGI app before Starlette) answering
200 with no work but reading the body. Ingest's rate divided by this one's is the share of the
server stack's ceiling that verification, enveloping and the Kafka round trip leave.

Run as `python -m revstream.bench.baseline PORT`.
"""

import sys

import uvicorn
from starlette.applications import Starlette
from starlette.types import Receive, Scope, Send

from ingest.http import FastPaths, StripeWebhooks

ANSWER = b'{"received":true}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(ANSWER)).encode())]


class NoWork:
    """Reads the whole body like ingest does, then answers 200: no verification, no Kafka."""

    endpoint_name = staticmethod(StripeWebhooks.endpoint_name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        more = True
        while more:
            message = await receive()
            more = message.get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
        await send({"type": "http.response.body", "body": ANSWER})


app = FastPaths(Starlette(), NoWork())


def main() -> None:
    port = int(sys.argv[1])
    # The same options as revstream.runner.run_service uses for ingest.
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
