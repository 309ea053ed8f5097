"""``make bench``: the gateway's figures, each against a baseline measured in the same run.

Starts everything it needs: the database (``DATABASE_URL``'s server, else an
embedded one), the gateway as a real process, a fast local webhook receiver, and
the load generator (``wrk`` when installed, else an asyncio client; the results
say which). Webhook latency is the gateway's against the floor's (bench/floor.py),
in alternating slices, each party in its own process (bench/slices.py). Writes
``bench/results.md`` and ``bench/results.json``.

    python -m bench.run                 # one run
    python -m bench.run --repeat 3      # three runs, medians of the ratios
    python -m bench.run --quick         # shorter phases, for a smoke test
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from aiohttp.test_utils import unused_port
from tests.support import database
from tests.support.backend import Backend
from tests.support.database import with_database

from bench import slices
from bench.processes import Process, gateway, peak_rss_mb, wait_http
from qiwi_gw import migrations

HERE = Path(__file__).resolve().parent
CONNECTIONS = 32
PAY_PATH = "/payment?command=pay&txn_date=20261129120000&account=42&sum=10.00&txn_id="
CHECK_PATH = "/payment?command=check&txn_id=1&account=42&sum=10.00"


# --- infrastructure --------------------------------------------------------


def postgres_server() -> AbstractContextManager[str]:
    """The bench's server: ``DATABASE_URL``'s, else an embedded one."""
    return database.postgres_server("DATABASE_URL", prefix="qiwi-gw-bench-")


class Databases:
    """Fresh migrated databases on one server, cloned from a template."""

    def __init__(self, server_dsn: str) -> None:
        self.server_dsn = server_dsn
        self.template = f"qiwi_gw_bench_tpl_{os.getpid()}"
        self.created: list[str] = []

    async def _admin(self, sql: str) -> None:
        connection = await asyncpg.connect(self.server_dsn)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    async def setup(self) -> None:
        await self._admin(f'DROP DATABASE IF EXISTS "{self.template}"')
        await self._admin(f'CREATE DATABASE "{self.template}"')
        await asyncio.to_thread(
            migrations.apply, with_database(self.server_dsn, self.template), "public"
        )

    async def fresh(self, label: str) -> str:
        name = f"qiwi_gw_bench_{label}_{os.getpid()}"
        await self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await self._admin(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        self.created.append(name)
        return with_database(self.server_dsn, name)

    async def cleanup(self) -> None:
        for name in [*self.created, self.template]:
            await self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


HELLO_APP = textwrap.dedent(
    """
    import sys
    import uvloop
    from aiohttp import web

    BODY = '<?xml version="1.0" encoding="UTF-8"?>\\n<response>\\n  <result>0</result>\\n</response>\\n'

    async def hello(request):
        return web.Response(text=BODY, content_type="text/xml")

    app = web.Application()
    app.router.add_get("/payment", hello)
    app.router.add_get("/readyz", hello)
    # uvloop, as the gateway's serve: the check/s ratio compares like with like.
    web.run_app(
        app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None,
        loop=uvloop.new_event_loop(),
    )
    """
)


@asynccontextmanager
async def hello_world() -> AsyncIterator[Process]:
    port = unused_port()
    process = await asyncio.create_subprocess_exec(sys.executable, "-c", HELLO_APP, str(port))
    base = f"http://127.0.0.1:{port}"
    try:
        await wait_http(f"{base}/readyz", process)
        yield Process(base, process.pid)
    finally:
        process.terminate()
        await process.wait()


# --- load generators -------------------------------------------------------

WRK_PAY_SCRIPT = """
local counter = 0
local thread_number = 0
local next_thread = 0
function setup(thread)
  thread:set("thread_number", next_thread)
  next_thread = next_thread + 1
end
function request()
  counter = counter + 1
  local txn = BASE + thread_number * 100000000 + counter
  return wrk.format("GET", PATH .. string.format("%d", txn))
end
"""


class Load:
    """Closed-loop load: ``CONNECTIONS`` connections, each sending as fast as answered."""

    def __init__(self) -> None:
        self.wrk = shutil.which("wrk")

    @property
    def name(self) -> str:
        return "wrk" if self.wrk else "asyncio client"

    async def run(self, base: str, path: str, seconds: float, unique_from: int | None) -> float:
        """Requests per second answered."""
        if self.wrk:
            return await asyncio.to_thread(self._wrk, base, path, seconds, unique_from)
        return await self._asyncio(base, path, seconds, unique_from)

    def _wrk(self, base: str, path: str, seconds: float, unique_from: int | None) -> float:
        assert self.wrk is not None
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
            if unique_from is not None:
                script.write(f"BASE = {unique_from}\nPATH = {json.dumps(path)}\n{WRK_PAY_SCRIPT}")
            else:
                script.write(
                    f'request = function() return wrk.format("GET", {json.dumps(path)}) end\n'
                )
        try:
            result = subprocess.run(
                [
                    self.wrk,
                    "-t2",
                    f"-c{CONNECTIONS}",
                    f"-d{max(1, round(seconds))}s",
                    "-s",
                    script.name,
                    base,
                ],
                capture_output=True,
                text=True,
                check=True,
            )
        finally:
            os.unlink(script.name)
        for line in result.stdout.splitlines():
            if line.startswith("Requests/sec:"):
                if "Non-2xx" in result.stdout:
                    raise RuntimeError(f"wrk saw errors:\n{result.stdout}")
                return float(line.split()[1])
        raise RuntimeError(f"unexpected wrk output:\n{result.stdout}")

    async def _asyncio(
        self, base: str, path: str, seconds: float, unique_from: int | None
    ) -> float:
        done = 0
        counter = unique_from or 0
        deadline = time.perf_counter() + seconds
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=CONNECTIONS)
        ) as session:

            async def worker() -> None:
                nonlocal done, counter
                while time.perf_counter() < deadline:
                    counter += 1
                    url = base + path + (str(counter) if unique_from is not None else "")
                    async with session.get(url) as response:
                        await response.read()
                        if response.status != 200:
                            raise RuntimeError(f"HTTP {response.status}")
                    done += 1

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(CONNECTIONS)))
            return done / (time.perf_counter() - started)


# --- the figures -----------------------------------------------------------


BARE_PAY = """
WITH log AS (
    INSERT INTO qiwi_http_log (ip, url, method, headers, body)
    VALUES ('127.0.0.1', $1, 'GET', '{}', '') RETURNING id
)
INSERT INTO qiwi_transaction (account, code, sum, status, txn_date, http_log_id, next_attempt_at)
SELECT '42', $2, 10.00, 0, now(), log.id, now() FROM log
"""


async def bare_client_pays(dsn: str, seconds: float, prefix: int = 0) -> float:
    """The baseline: 32 connections, one payment per transaction (log row, payment
    row, NOTIFY by the trigger), as fast as the database commits them."""
    done = 0
    deadline = time.perf_counter() + seconds
    async with asyncpg.create_pool(dsn, min_size=CONNECTIONS, max_size=CONNECTIONS) as pool:

        async def worker(number: int) -> None:
            nonlocal done
            async with pool.acquire() as connection:
                n = 0
                while time.perf_counter() < deadline:
                    n += 1
                    code = f"{prefix}{number:02d}{n:09d}"
                    await connection.execute(BARE_PAY, PAY_PATH + code, code)
                    done += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker(i + 1) for i in range(CONNECTIONS)))
        return done / (time.perf_counter() - started)


async def count_pending(dsn: str) -> int:
    connection = await asyncpg.connect(dsn)
    try:
        pending: int = await connection.fetchval(
            "SELECT count(*) FROM qiwi_transaction WHERE status = 0"
        )
        return pending
    finally:
        await connection.close()


ROUNDS = 3


async def alternate(
    first: Callable[[int], Awaitable[float]], second: Callable[[int], Awaitable[float]]
) -> tuple[float, float]:
    """Mean rates of two subjects measured in alternating slices (A B A B ...), so
    that a noisy neighbour on this shared machine hits both alike."""
    a: list[float] = []
    b: list[float] = []
    for number in range(ROUNDS):
        a.append(await first(number))
        b.append(await second(number))
    return statistics.mean(a), statistics.mean(b)


@asynccontextmanager
async def gateway_with_receiver(dsn: str) -> AsyncIterator[tuple[Process, str]]:
    async with Backend() as hook, gateway(dsn, hook.url) as gw:
        yield gw, dsn


async def wait_delivered(dsn: str) -> float:
    """Seconds until no payment is pending."""
    started = time.perf_counter()
    async with asyncio.timeout(300):
        while await count_pending(dsn):
            await asyncio.sleep(0.05)
    return time.perf_counter() - started


async def pay_rates(
    databases: Databases, load: Load, seconds: float
) -> tuple[float, float, float, float]:
    """(gateway pay/s with webhooks on, bare client pay/s, seconds until all delivered
    after the last slice, gateway peak RSS MB)."""
    bare_dsn = await databases.fresh("bare")
    slice_seconds = seconds / ROUNDS
    async with gateway_with_receiver(await databases.fresh("pay")) as (gw, dsn):
        ours, bare = await alternate(
            lambda n: load.run(gw.base, PAY_PATH, slice_seconds, unique_from=10**15 + n * 10**12),
            lambda n: bare_client_pays(bare_dsn, slice_seconds, prefix=n + 1),
        )
        drained = await wait_delivered(dsn)
        rss = peak_rss_mb(gw.pid)
    return ours, bare, drained, rss


async def big_table_rates(
    databases: Databases, load: Load, seconds: float, seed_rows: int
) -> tuple[float, float, float]:
    """(pay/s on tables with ``seed_rows`` payments and log rows, pay/s on empty
    tables, peak RSS MB), alternating between two gateways."""
    big_dsn = await databases.fresh("big")
    await seed(big_dsn, seed_rows)
    slice_seconds = seconds / ROUNDS
    async with (
        gateway_with_receiver(big_dsn) as (big, _),
        gateway_with_receiver(await databases.fresh("empty")) as (empty, _),
    ):
        on_big, on_empty = await alternate(
            lambda n: load.run(big.base, PAY_PATH, slice_seconds, unique_from=10**16 + n * 10**12),
            lambda n: load.run(
                empty.base, PAY_PATH, slice_seconds, unique_from=10**16 + n * 10**12
            ),
        )
        rss = peak_rss_mb(big.pid)
    return on_big, on_empty, rss


async def seed(dsn: str, rows: int) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(
            """
            INSERT INTO qiwi_http_log (ip, url, method, headers, body, created_at)
            SELECT '127.0.0.1', '/payment?command=pay&txn_id=' || n, 'GET', '{}', '',
                   now() - make_interval(secs => n)
            FROM generate_series(1, $1) n
            """,
            rows,
        )
        await connection.execute(
            """
            INSERT INTO qiwi_transaction
                (account, code, sum, status, txn_date, http_log_id, created_at, delivered_at)
            SELECT n::text, n::text, 10.00, 1, now(), n,
                   now() - make_interval(secs => n), now()
            FROM generate_series(1, $1) n
            """,
            rows,
        )
        await connection.execute("VACUUM ANALYZE qiwi_transaction")
        await connection.execute("VACUUM ANALYZE qiwi_http_log")
    finally:
        await connection.close()


async def check_rates(databases: Databases, load: Load, seconds: float) -> tuple[float, float]:
    dsn = await databases.fresh("check")
    slice_seconds = seconds / ROUNDS
    async with gateway(dsn, None) as gw, hello_world() as hello:
        return await alternate(
            lambda n: load.run(gw.base, CHECK_PATH, slice_seconds, unique_from=None),
            lambda n: load.run(hello.base, CHECK_PATH, slice_seconds, unique_from=None),
        )


LATENCY_RATES = [100.0, 500.0, 1000.0]


async def latency(
    databases: Databases, rates: list[float], seconds: float, slice_count: int
) -> dict[str, Any]:
    """Pay → webhook p50 / p99, gateway against the floor, alternating slices."""
    measurement = await slices.measure(
        await databases.fresh("latency_gateway"),
        await databases.fresh("latency_floor"),
        rates,
        seconds,
        slice_count,
        progress=True,
    )
    return measurement.figures()


async def drain(databases: Databases, rows: int) -> tuple[float, float]:
    """Deliveries/s for ``rows`` pending payments, and pgqueuer's no-op jobs/s."""
    dsn = await databases.fresh("drain")
    connection = await asyncpg.connect(dsn)
    await connection.execute(
        "INSERT INTO qiwi_transaction (account, code, sum, status, txn_date, next_attempt_at)"
        " SELECT n::text, n::text, 1, 0, now(), now() FROM generate_series(1, $1) n",
        rows,
    )
    await connection.close()
    async with Backend() as counted:
        started = time.perf_counter()
        async with gateway(dsn, counted.url):
            await counted.wait_count(rows, within=600)
            ours = rows / (time.perf_counter() - started)
    theirs = await pgqueuer_drain(await databases.fresh("pgqueuer"), rows)
    return ours, theirs


async def pgqueuer_drain(dsn: str, rows: int) -> float:
    from pgqueuer.adapters.drivers.asyncpg import AsyncpgDriver
    from pgqueuer.adapters.persistence.queries import Queries
    from pgqueuer.core.qm import QueueManager
    from pgqueuer.domain import types

    connection = await asyncpg.connect(dsn)
    try:
        queries = Queries.from_asyncpg_connection(connection)
        await queries.install()
        await queries.enqueue(["noop"] * rows, [None] * rows, [0] * rows)
        manager = QueueManager(Queries(AsyncpgDriver(connection)))
        done = 0

        @manager.entrypoint("noop")
        async def noop(job: Any) -> None:
            nonlocal done
            done += 1

        started = time.perf_counter()
        # Counted from the start of the worker, like the gateway's figure, with
        # pgqueuer's own defaults (batch size 10), as the gateway runs with its own.
        await manager.run(mode=types.QueueExecutionMode.drain)
        elapsed = time.perf_counter() - started
        if done != rows:
            raise RuntimeError(f"pgqueuer ran {done} of {rows} jobs")
        return rows / elapsed
    finally:
        await connection.close()


async def machine(server_dsn: str) -> dict[str, str]:
    connection = await asyncpg.connect(server_dsn)
    try:
        version = await connection.fetchval("SHOW server_version")
        fsync = await connection.fetchval("SHOW fsync")
        sync_commit = await connection.fetchval("SHOW synchronous_commit")
    finally:
        await connection.close()
    return {
        "cores": str(os.cpu_count()),
        "python": platform.python_version(),
        "postgresql": f"{version} (fsync={fsync}, synchronous_commit={sync_commit})",
    }


@dataclass(frozen=True)
class LatencyPlan:
    """Pays/s to measure at; seconds of load per side and rate, cut into ``slices``."""

    rates: list[float]
    seconds: float
    slices: int


async def one_run(
    seconds: float, drain_rows: int, seed_rows: int, plan: LatencyPlan
) -> dict[str, Any]:
    load = Load()
    with postgres_server() as server_dsn:
        databases = Databases(server_dsn)
        await databases.setup()
        try:
            results: dict[str, Any] = {"load_generator": load.name, **await machine(server_dsn)}
            pays, bare, drained_after, rss_pay = await pay_rates(databases, load, seconds)
            results.update(
                bare_pay_per_s=bare,
                gateway_pay_per_s=pays,
                pay_ratio=pays / bare,
                webhooks_drained_s_after_load=drained_after,
            )
            check, hello = await check_rates(databases, load, seconds)
            results.update(gateway_check_per_s=check, hello_per_s=hello, check_ratio=check / hello)
            results.update(await latency(databases, plan.rates, plan.seconds, plan.slices))
            ours, theirs = await drain(databases, drain_rows)
            results.update(drain_per_s=ours, pgqueuer_per_s=theirs, drain_ratio=ours / theirs)
            big, empty, rss_big = await big_table_rates(databases, load, seconds, seed_rows)
            results.update(
                seeded_rows=seed_rows,
                big_table_pay_per_s=big,
                empty_table_pay_per_s=empty,
                big_table_ratio=big / empty,
                peak_rss_mb=max(rss_pay, rss_big, results["gateway_peak_rss_mb_latency"]),
            )
            return results
        finally:
            await databases.cleanup()


RATIOS = {
    "pay_ratio": (
        "pay/s, 32 connections, webhooks on and delivered",
        "bare asyncpg, 32 connections, one payment per transaction",
        "≥ 1.0×",
    ),
    "check_ratio": (
        "check/s (no check URL)",
        "hello-world aiohttp app, same load generator",
        "≥ 0.5×",
    ),
    "drain_ratio": (
        "backlog drain, deliveries/s",
        "pgqueuer no-op jobs/s, same database",
        "≥ 1.0×",
    ),
    "big_table_ratio": (
        "pay/s with 1,000,000 existing payments and log rows",
        "pay/s on empty tables, same run, alternating",
        "≥ 0.9×",
    ),
}


def latency_report(runs: list[dict[str, Any]], median: dict[str, float]) -> list[str]:
    measured = runs[0]["latency_slices"]
    rates = sorted({float(one["rate"]) for one in measured})
    per_side = len(measured) // (2 * len(rates))
    lines = [
        "## Webhook latency against the floor",
        "",
        "Pay → webhook arrival at a local receiver, open loop (requests start on schedule,",
        "answered or not). The floor (bench/floor.py) does only what the path must: one",
        "statement inserting the payment and NOTIFYing its row, one LISTEN connection POSTing",
        "the webhook from the payload. Gateway and floor alternate in slices (gateway, floor,",
        f"gateway, floor...; {per_side} of {measured[0]['seconds']:g} s per side and rate, fresh",
        "txn_ids each); the load generator, the gateway or the floor, and the receiver each run",
        "in a process of their own. p50 / p99 are over all of a side's payments at a rate;",
        "medians over runs.",
        "",
    ]
    each = {
        rate: ", ".join(
            f"{run[f'latency_p50_ratio_at_{rate:g}']:.2f} / {run[f'latency_p99_ratio_at_{rate:g}']:.2f}"
            for run in runs
        )
        for rate in rates
    }
    lines += slices.table(median, rates, each if len(runs) > 1 else None)
    problems = median["latency_not_zero_answers"] + median["latency_missing_webhooks"]
    if problems:
        lines += ["", f"Pays not answered 0 or webhooks that never came (median): {problems:g}."]
    return lines


def report(runs: list[dict[str, Any]]) -> dict[str, Any]:
    median = {
        key: statistics.median(run[key] for run in runs)
        for key in runs[0]
        if isinstance(runs[0][key], float | int)
    }
    first = runs[0]
    lines = [
        "# Benchmark results",
        "",
        f"Machine: {first['cores']} cores, Python {first['python']}, PostgreSQL {first['postgresql']}.",
        f"Load generator: {first['load_generator']}. Runs: {len(runs)} (medians shown; every ratio's",
        "two sides were measured in the same run).",
        "",
        "| figure | baseline (same run) | target | ratio (median) | each run |",
        "|---|---|---|---|---|",
    ]
    for key, (figure, baseline, target) in RATIOS.items():
        each = ", ".join(f"{run[key]:.2f}" for run in runs)
        lines.append(f"| {figure} | {baseline} | {target} | {median[key]:.2f}× | {each} |")
    lines += [
        f"| peak RSS of the gateway | — | ≤ 150 MB | {median['peak_rss_mb']:.0f} MB | |",
        "",
        *latency_report(runs, median),
        "",
        "Raw figures (medians):",
        "",
    ]
    for key in (
        "bare_pay_per_s",
        "gateway_pay_per_s",
        "webhooks_drained_s_after_load",
        "gateway_check_per_s",
        "hello_per_s",
        "drain_per_s",
        "pgqueuer_per_s",
        "big_table_pay_per_s",
        "empty_table_pay_per_s",
    ):
        lines.append(f"- `{key}`: {median[key]:.1f}")
    lines.append("")
    (HERE / "results.md").write_text("\n".join(lines))
    summary = {"runs": runs, "median": median}
    (HERE / "results.json").write_text(json.dumps(summary, indent=2))
    print("\n".join(lines))
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description="qiwi-gw benchmarks with same-run baselines")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--drain-rows", type=int, default=20_000)
    parser.add_argument("--seed-rows", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="short phases, small tables")
    parser.add_argument(
        "--rates", type=float, nargs="+", default=LATENCY_RATES, help="latency: pays/s"
    )
    parser.add_argument(
        "--latency-seconds",
        type=float,
        default=15.0,
        help="latency: seconds of load per side and rate, cut into --slices",
    )
    parser.add_argument("--slices", type=int, default=3, help="latency: slices per side and rate")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.drain_rows, args.seed_rows = 3.0, 2_000, 20_000
        args.latency_seconds = 6.0
    plan = LatencyPlan(args.rates, args.latency_seconds, args.slices)
    runs = []
    for number in range(1, args.repeat + 1):
        print(f"run {number} of {args.repeat}...", file=sys.stderr)
        runs.append(asyncio.run(one_run(args.seconds, args.drain_rows, args.seed_rows, plan)))
        print(json.dumps(runs[-1], indent=2), file=sys.stderr)
    report(runs)


if __name__ == "__main__":
    main()
