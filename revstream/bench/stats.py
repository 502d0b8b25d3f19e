"""Summary statistics for the bench report."""

import math


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile of unsorted values (None when empty)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = math.ceil(q / 100 * len(ordered))  # nearest rank: the smallest value with >= q % at or below it
    return ordered[min(len(ordered) - 1, max(0, rank - 1))]


def ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 1)
