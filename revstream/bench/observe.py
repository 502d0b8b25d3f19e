"""What the pipeline has made visible, sampled while the benchmark runs, and process memory.

- ClickHouse through the totals API: the `xts` test-mode gross divided by the fixed amount is
  the number of distinct bench payments visible to readers.
- PostgreSQL: the bench's ledger rows (exact ids, for the lost / double-counted check).
- Kafka: each consumer group's committed offsets (throughput per stage, and "drained" = lag 0).
- /proc/<pid>/status VmHWM: the peak resident set of each service process.
- /proc/<pid>/stat: CPU time of each service's process tree, so each phase reports microseconds
  of CPU per event per service. Unlike rates, that figure barely moves when the machine is shared.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
from aiokafka.errors import KafkaError

from revstream.bench.events import AMOUNT_MINOR, CURRENCY
from revstream.consumer_lag import OffsetReader
from revstream.localservices import process_cmdline
from revstream.runner import SERVICES


class TotalsProbe:
    """Reads the bench currency's test-mode gross from GET /api/v1/revenue/totals."""

    def __init__(self, base_url: str, token: str | None = None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=base_url, timeout=10, headers=headers)

    def gross(self) -> int:
        response = self._http.get("/api/v1/revenue/totals", params={"livemode": "false"})
        response.raise_for_status()
        return int(response.json()["currencies"].get(CURRENCY, {}).get("gross", 0))

    def close(self) -> None:
        self._http.close()


def ledger_payments(database_url: str, runs: list[str]) -> dict[str, int]:
    """payment_key -> counted amount of the ledger's bench payments of these runs."""
    found: dict[str, int] = {}
    with psycopg.connect(database_url, connect_timeout=10) as conn:
        for run in runs:
            rows = conn.execute(
                "SELECT payment_key, CASE WHEN counted THEN amount_minor ELSE 0 END FROM revenue_ledger "
                "WHERE kind = 'payment' AND currency = %s AND payment_key LIKE %s",
                (CURRENCY, f"pi_bench{run}x%"),
            ).fetchall()
            found.update({key: int(amount) for key, amount in rows})
    return found


def ledger_count(database_url: str, runs: list[str]) -> int:
    with psycopg.connect(database_url, connect_timeout=10) as conn:
        total = 0
        for run in runs:
            row = conn.execute(
                "SELECT count(*) FROM revenue_ledger WHERE kind = 'payment' AND currency = %s "
                "AND payment_key LIKE %s",
                (CURRENCY, f"pi_bench{run}x%"),
            ).fetchone()
            total += int(row[0]) if row else 0
        return total


@dataclass
class Samples:
    """Time series (time.monotonic) of what was visible and committed."""

    visible: list[tuple[float, int]] = field(default_factory=list)  # bench payments in ClickHouse
    probe_s: list[float] = field(default_factory=list)  # how long each totals API call took
    consumed: dict[str, list[tuple[float, int, int]]] = field(
        default_factory=dict
    )  # group -> (t, consumed, lag)


class Sampler(threading.Thread):
    """Polls the consumer groups' offsets every `interval_s` and the totals API every
    `probe_every`-th time in the background. The totals query reads every fact, so polling it is
    load on the process being measured: freshness needs it often, a backlog drain does not."""

    def __init__(
        self,
        probe: TotalsProbe,
        gross_before: int,
        bootstrap: str | None,
        groups: dict[str, tuple[str, ...]],
        interval_s: float = 0.2,
        probe_every: int = 1,
    ) -> None:
        super().__init__(daemon=True, name="bench-sampler")
        self.probe = probe
        self.gross_before = gross_before
        self.bootstrap = bootstrap
        self.groups = groups
        self.interval_s = interval_s
        self.probe_every = probe_every
        self.samples = Samples(consumed={g: [] for g in groups})
        self._halt = threading.Event()
        self.errors = 0

    def visible_now(self) -> int:
        return self.samples.visible[-1][1] if self.samples.visible else 0

    def lag_now(self) -> dict[str, int]:
        return {g: s[-1][2] for g, s in self.samples.consumed.items() if s}

    def run(self) -> None:
        asyncio.run(self._loop())

    async def _loop(self) -> None:
        reader = OffsetReader(self.bootstrap) if self.bootstrap else None
        if reader is not None:
            await reader.start()
        try:
            rounds = 0
            while not self._halt.is_set():
                rounds += 1
                if rounds % self.probe_every == 1 or self.probe_every == 1:
                    try:
                        asked = time.monotonic()
                        gross = await asyncio.to_thread(self.probe.gross)
                        self.samples.probe_s.append(time.monotonic() - asked)
                        self.samples.visible.append(
                            (time.monotonic(), (gross - self.gross_before) // AMOUNT_MINOR)
                        )
                    except httpx.HTTPError:
                        self.errors += 1
                if reader is not None:
                    for group, topics in self.groups.items():
                        try:
                            lags = await reader.group_lag(group, topics)
                        except KafkaError:  # e.g. the offsets topic of a fresh broker is being created
                            self.errors += 1
                            continue
                        consumed = sum(p.consumed for p in lags)
                        self.samples.consumed[group].append(
                            (time.monotonic(), consumed, sum(p.lag for p in lags))
                        )
                await asyncio.sleep(self.interval_s)
        finally:
            if reader is not None:
                await reader.stop()

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=30)


def peak_rss_mb(pid: int) -> float | None:
    """The process's peak resident set (VmHWM) in MiB, None when it is gone or unreadable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except (OSError, ValueError):
        return None
    return None


def _parent_pids() -> dict[int, int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                # field 4 (ppid) follows the parenthesised command name, which may contain spaces
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    return parents


def _cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds used so far by each named process and its descendants (PostgreSQL's backends
    are children of the postmaster; the Kafka JVM's threads are counted in its own figure)."""
    parents = _parent_pids()
    children: dict[int, list[int]] = {}
    for child, parent in parents.items():
        children.setdefault(parent, []).append(child)
    used = {}
    for name, root in pids.items():
        tree, total = [root], 0.0
        while tree:
            pid = tree.pop()
            total += _cpu_s(pid)
            tree.extend(children.get(pid, ()))
        used[name] = total
    return used


def cpu_us_per_event(before: dict[str, float], after: dict[str, float], events: int) -> dict[str, float]:
    """Microseconds of CPU per event for each process between two cpu_seconds() readings."""
    per_event = {
        name: round((after[name] - before.get(name, 0.0)) / max(1, events) * 1e6, 1) for name in sorted(after)
    }
    per_event["total"] = round(sum(per_event.values()), 1)
    return per_event


def find_service_pids(services: tuple[str, ...] = SERVICES) -> dict[str, int]:
    """PIDs of `revstream run <service>` processes on this machine (for --url runs)."""
    found: dict[str, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        argv = process_cmdline(int(entry.name)).split(b"\0")
        for i in range(len(argv) - 1):
            if (
                argv[i] == b"run"
                and argv[i + 1].decode(errors="replace") in services
                and any(b"revstream" in part for part in argv[:i])
            ):
                found.setdefault(argv[i + 1].decode(), int(entry.name))
    return found
