"""Poisson tail probabilities (pure, no SciPy): how surprising a count is given its expectation."""

import math


def _log_pmf(k: int, lam: float) -> float:
    return -lam + k * math.log(lam) - math.lgamma(k + 1)


def poisson_cdf(k: int, lam: float) -> float:
    """P(X <= k) for X ~ Poisson(lam)."""
    if k < 0:
        return 0.0
    if lam <= 0:
        return 1.0
    return min(1.0, sum(math.exp(_log_pmf(i, lam)) for i in range(k + 1)))


def poisson_sf(k: int, lam: float) -> float:
    """P(X >= k) for X ~ Poisson(lam), summed from k upward (exact for tiny tails)."""
    if k <= 0:
        return 1.0
    if lam <= 0:
        return 0.0
    upper = int(max(k, lam) + 30 * math.sqrt(lam + 1) + 50)
    return min(1.0, sum(math.exp(_log_pmf(i, lam)) for i in range(k, upper)))
