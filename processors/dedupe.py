"""First dedupe layer: a bounded memory of recently processed event ids.

It only saves work. Correctness does not depend on it: after a restart it is empty, and the
duplicates that get through are absorbed by the sinks' idempotent upserts (the durable layer).
"""

from collections import OrderedDict


class RecentIds:
    def __init__(self, capacity: int = 100_000) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._capacity = capacity

    def seen(self, key: str) -> bool:
        return key in self._ids

    def remember(self, key: str) -> None:
        """Call only after the derived records were published (never claim before success)."""
        self._ids[key] = None
        self._ids.move_to_end(key)
        while len(self._ids) > self._capacity:
            self._ids.popitem(last=False)
