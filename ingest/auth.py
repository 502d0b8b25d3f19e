"""Bearer-token checks for the operator endpoints (manual entries, replays)."""

import hmac

from starlette.requests import Request


def bearer_matches(request: Request, token: str) -> bool:
    """True when the request carries `Authorization: Bearer <token>` (compared in constant time)."""
    scheme, _, supplied = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(supplied.strip().encode(), token.encode())
