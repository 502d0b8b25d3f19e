"""Why a request was refused. Each reason is a metric label and a client-safe message."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Rejected(Exception):
    """A request we refuse: `status` goes to the client, `reason` to metrics, `message` to both.

    The message never contains secrets, signatures or card data: it says what was wrong.
    """

    status: int
    reason: str
    message: str

    def __str__(self) -> str:
        return f"{self.status} {self.reason}: {self.message}"
