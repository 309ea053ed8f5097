"""What one payment costs: CPU seconds of the gateway and of PostgreSQL, and WAL bytes.

A scale-out plan needs per-payment costs, not a throughput figure: on a shared 2-core machine
more replicas only measure contention, but the CPU a payment takes from each component is the
same whichever machine it runs on. This starts a real gateway process on a database of its own
(``DATABASE_URL``'s server, else an embedded one; either must be on this machine, since CPU is
read from /proc), a local webhook receiver, and a separate load process that sends a fixed
number of ``pay`` requests; it waits until every webhook is delivered and recorded, and reports
per 1,000 payments:

- the gateway's CPU (its process, /proc/<pid>/stat);
- PostgreSQL's CPU: the backends serving the run's database plus the server's background
  processes (WAL writer, checkpointer, background writer), from /proc, sampled while the run
  goes on; other databases' backends on a shared server are reported apart, not counted;
- WAL: the records that touch the run's database or commit its transactions (pg_walinspect,
  with a temporary replication slot so the segments stay readable), and the server's whole
  LSN advance beside it.

    python -m bench.capacity                         # 3 runs of 5,000 payments
    python -m bench.capacity --write docs/scaling.md # and replace the measured block there
    python -m bench.capacity --repeat 1 --payments 500   # a smoke test
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from tests.support.backend import Backend
from tests.support.database import with_database
from tests.support.gateway import UNTUNED, Gateway, GatewayExitedError

from bench.processes import READY_WITHIN
from bench.run import postgres_server
from qiwi_gw import migrations
from qiwi_gw.settings import mask_dsn

ROOT = Path(__file__).resolve().parents[1]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# Signing costs CPU in production, so the run signs too; any valid secret will do.
WEBHOOK_SECRET = "whsec_Y2FwYWNpdHktYmVuY2gtc2VjcmV0LTMyYnl0ZXMh"
WARM_UP = 500
SAMPLE_EVERY = 0.5
BEGIN_MARKER = "<!-- capacity:begin (written by python -m bench.capacity --write) -->"
END_MARKER = "<!-- capacity:end -->"


class BenchError(Exception):
    """A condition that makes the measurement meaningless; one line for the operator."""


# --- /proc -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProcStat:
    ppid: int
    started: int  # clock ticks after boot: with the pid, tells a reused pid apart
    own: float  # CPU seconds, user + system, all threads
    reaped_children: float  # CPU seconds of children it has waited for


def proc_stat(pid: int) -> ProcStat | None:
    """None when the process is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses; the fields after its last ')'
    # start at field 3 (state), so field n is at index n - 3.
    fields = text[text.rindex(")") + 2 :].split()
    utime, stime, cutime, cstime = (int(value) for value in fields[11:15])
    return ProcStat(
        ppid=int(fields[1]),
        started=int(fields[19]),
        own=(utime + stime) / CLOCK_TICKS,
        reaped_children=(cutime + cstime) / CLOCK_TICKS,
    )


def process_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def machine_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of all CPUs since boot, from /proc/stat."""
    values = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle and iowait
    total = sum(values[:8])  # guest time is already counted in user
    return total - idle, total


def tree_cpu(root: int) -> float:
    """CPU seconds of ``root``, its live children, and every child it has reaped: exact
    across children that come and go, since an exited child's time moves to its parent."""
    stat = proc_stat(root)
    if stat is None:
        raise BenchError(f"process {root} is gone")
    total = stat.own + stat.reaped_children
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            child = proc_stat(int(entry.name))
            if child is not None and child.ppid == root:
                total += child.own
    return total


class PostgresCpu:
    """PostgreSQL's CPU in buckets, from /proc, keyed by the backends pg_stat_activity lists.

    ``database``: backends connected to the run's database (the gateway's pool, its LISTEN
    connection, autovacuum workers there). ``background``: server processes of no database
    (WAL writer, checkpointer, background writer, launchers). Sampled every
    ``SAMPLE_EVERY`` s; a backend that exits between two samples loses its last slice, which
    is why the run warms the gateway's pool up first."""

    def __init__(self, monitor: asyncpg.Connection, database: str) -> None:
        self._monitor = monitor
        self._database = database
        self._first: dict[tuple[int, int], float] = {}
        self._last: dict[tuple[int, int], float] = {}
        self._bucket: dict[tuple[int, int], str] = {}

    async def sample(self, *, first: bool = False) -> None:
        rows = await self._monitor.fetch("SELECT pid, datname, backend_type FROM pg_stat_activity")
        for row in rows:
            stat = proc_stat(row["pid"])
            if stat is None:
                continue
            key = (row["pid"], stat.started)
            if key not in self._first:
                # Seen at the start: counted from now. Born later: all of its time is the run's.
                self._first[key] = stat.own if first else 0.0
                if row["datname"] == self._database:
                    self._bucket[key] = "database"
                elif row["datname"] is None and row["backend_type"] != "client backend":
                    self._bucket[key] = "background"
                else:
                    self._bucket[key] = "other"
            self._last[key] = stat.own

    def seconds(self, bucket: str) -> float:
        return sum(
            self._last[key] - self._first[key]
            for key, name in self._bucket.items()
            if name == bucket
        )


async def postmaster_pid(monitor: asyncpg.Connection) -> int:
    """The server's main process, after checking it runs on this machine."""
    backend: int = await monitor.fetchval("SELECT pg_backend_pid()")
    stat = proc_stat(backend)
    if stat is None or process_name(backend) != "postgres" or process_name(stat.ppid) != "postgres":
        raise BenchError(
            "PostgreSQL is not running on this machine (its backend is not in /proc): "
            "point DATABASE_URL at a local server, or unset it for an embedded one"
        )
    return stat.ppid


# --- the database -------------------------------------------------------------------------


@asynccontextmanager
async def run_database(server_dsn: str, name: str) -> AsyncIterator[str]:
    """A migrated database of the run's own, with pg_walinspect when the server has it."""
    admin = await asyncpg.connect(server_dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
        dsn = with_database(server_dsn, name)
        await asyncio.to_thread(migrations.apply, dsn, "public")
        connection = await asyncpg.connect(dsn)
        try:
            with suppress(asyncpg.PostgresError):  # absent: WAL is then the LSN advance only
                await connection.execute("CREATE EXTENSION IF NOT EXISTS pg_walinspect")
        finally:
            await connection.close()
        yield dsn
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


# Records that touch the database's relations, and the commit records of the transactions
# that wrote them; each as the WAL it occupies (records are 8-byte aligned).
WAL_OF_DATABASE = """
WITH records AS (
    SELECT xid, record_length, fpi_length, coalesce(block_ref, '') AS block_ref
    FROM pg_get_wal_records_info($1::pg_lsn, $2::pg_lsn)
), writers AS (
    SELECT DISTINCT xid FROM records WHERE xid <> 0 AND block_ref LIKE $3
)
SELECT coalesce(sum((record_length + 7) / 8 * 8), 0)::bigint AS bytes, count(*) AS records,
       coalesce(sum(fpi_length), 0)::bigint AS page_images
FROM records
WHERE block_ref LIKE $3 OR xid IN (SELECT xid FROM writers)
"""


async def wal_of_database(dsn: str, start: int, end: int) -> tuple[int, int, int] | None:
    """(bytes, records, bytes of full-page images), or None without pg_walinspect."""
    connection = await asyncpg.connect(dsn)
    try:
        oid = await connection.fetchval(
            "SELECT oid FROM pg_database WHERE datname = current_database()"
        )
        try:
            row = await connection.fetchrow(WAL_OF_DATABASE, start, end, f"% rel %/{oid}/%")
        except asyncpg.UndefinedFunctionError:
            return None
        assert row is not None
        return int(row["bytes"]), int(row["records"]), int(row["page_images"])
    finally:
        await connection.close()


# --- the processes ------------------------------------------------------------------------


@asynccontextmanager
async def gateway(dsn: str, webhook_url: str) -> AsyncIterator[Gateway]:
    """``qiwi-gw serve`` as a process, configured as a deployment would be: its own default
    settings, webhooks signed, log lines written (to a file here, to the container runtime
    there)."""
    process = Gateway(dsn, webhook_url, tuning=UNTUNED, QIWI_WEBHOOK_SECRET=WEBHOOK_SECRET)
    try:
        try:
            await process.start(within=READY_WITHIN)
        except GatewayExitedError:
            raise BenchError(
                f"the gateway exited before it was ready: {last_line(process.log)}"
            ) from None
        yield process
    finally:
        if process.process is not None:
            await process.terminate()
        process.log.unlink()


def last_line(path: Path) -> str:
    lines = path.read_text(errors="replace").strip().splitlines()
    return lines[-1] if lines else "(no output)"


async def send_load(base: str, first: int, count: int, concurrency: int) -> float:
    """Run the load in a process of its own, so that its CPU is nobody's figure; its
    wall-clock seconds."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.capacity",
        "load",
        base,
        str(first),
        str(count),
        f"--concurrency={concurrency}",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    if process.returncode != 0:
        raise BenchError(f"the load process failed: {err.decode(errors='replace').strip()}")
    seconds: float = json.loads(out)["seconds"]
    return seconds


async def load(base: str, first: int, count: int, concurrency: int) -> float:
    """``count`` pays with txn_ids from ``first``, ``concurrency`` at a time; each must be
    answered 0. Seconds taken."""
    numbers = iter(range(first, first + count))
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def worker() -> None:
            for number in numbers:
                params = {
                    "command": "pay",
                    "txn_id": str(number),
                    "txn_date": "20261129120000",
                    "account": f"acc{number % 1000}",
                    "sum": "10.00",
                }
                async with session.get(f"{base}/payment", params=params) as response:
                    text = await response.text()
                if "<result>0</result>" not in text:
                    raise BenchError(f"pay {number} was not accepted: {text.strip()[:200]}")

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started


async def wait_recorded(dsn: str, within: float) -> None:
    """Until no payment waits for its webhook: the outcomes are in the table."""
    connection = await asyncpg.connect(dsn)
    try:
        async with asyncio.timeout(within):
            while await connection.fetchval(
                "SELECT EXISTS (SELECT 1 FROM qiwi_transaction WHERE status = 0)"
            ):
                await asyncio.sleep(0.1)  # the gateway's writes: there is no event to await
    finally:
        await connection.close()


# --- one run ------------------------------------------------------------------------------


STATS_OF_DATABASE = """
SELECT xact_commit, tup_inserted, tup_updated FROM pg_stat_database WHERE datname = $1
"""
# PostgreSQL (15 on) publishes an idle backend's counters within 10 s of its last transaction.
STATS_DELAY = 11.0


@dataclass
class Counters:
    """What the server counts: in /proc and the WAL at once, in its statistics later."""

    lsn: int  # asyncpg's pg_lsn: bytes since the start of WAL
    server_cpu: float
    gateway_cpu: float
    machine: tuple[int, int]
    stats: dict[str, int] = field(default_factory=dict)

    @classmethod
    async def take(cls, monitor: asyncpg.Connection, postmaster: int, gateway: int) -> Counters:
        gateway_stat = proc_stat(gateway)
        if gateway_stat is None:
            raise BenchError("the gateway process is gone")
        return cls(
            lsn=await monitor.fetchval("SELECT pg_current_wal_lsn()"),
            server_cpu=tree_cpu(postmaster),
            gateway_cpu=gateway_stat.own + gateway_stat.reaped_children,
            machine=machine_ticks(),
        )

    async def read_stats(self, monitor: asyncpg.Connection, database: str) -> None:
        row = await monitor.fetchrow(STATS_OF_DATABASE, database)
        assert row is not None
        self.stats = dict(row)


async def sample_until(cpu: PostgresCpu, stop: asyncio.Event) -> None:
    while not stop.is_set():
        with suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), SAMPLE_EVERY)
        await cpu.sample()


async def one_run(server_dsn: str, payments: int, concurrency: int, number: int) -> dict[str, Any]:
    name = f"qiwi_gw_capacity_{os.getpid()}_{number}"
    async with (
        run_database(server_dsn, name) as dsn,
        Backend() as backend,
        gateway(dsn, backend.url) as gw,
    ):
        await send_load(gw.base, 10**12, WARM_UP, concurrency)
        await backend.wait_count(WARM_UP, within=120)
        await wait_recorded(dsn, within=120)

        monitor = await asyncpg.connect(server_dsn)
        try:
            postmaster = await postmaster_pid(monitor)
            # Keeps the run's WAL segments from being recycled before pg_walinspect reads
            # them; temporary, so it goes with this session even if the run fails.
            await monitor.execute(
                "SELECT pg_create_physical_replication_slot($1, true, true)", name
            )
            await asyncio.sleep(STATS_DELAY)  # the warm-up's counters are published
            before = await Counters.take(monitor, postmaster, gw.pid)
            await before.read_stats(monitor, name)
            cpu = PostgresCpu(monitor, name)
            await cpu.sample(first=True)
            stop = asyncio.Event()
            sampler = asyncio.create_task(sample_until(cpu, stop))
            try:
                seconds = await send_load(gw.base, 2 * 10**12, payments, concurrency)
                await backend.wait_count(WARM_UP + payments, within=600)
                await wait_recorded(dsn, within=120)
            finally:
                stop.set()
                await sampler
            await cpu.sample()
            after = await Counters.take(monitor, postmaster, gw.pid)
            await asyncio.sleep(STATS_DELAY)  # this run's counters are published
            await after.read_stats(monitor, name)
            wal = await wal_of_database(dsn, before.lsn, after.lsn)
        finally:
            await monitor.close()

    def counted(name: str) -> int:
        return after.stats[name] - before.stats[name]

    busy = after.machine[0] - before.machine[0]
    ticks = after.machine[1] - before.machine[1]
    per = 1000 / payments
    database, background = cpu.seconds("database"), cpu.seconds("background")
    server = after.server_cpu - before.server_cpu
    return {
        "payments": payments,
        "concurrency": concurrency,
        "seconds": seconds,
        "pays_per_s": payments / seconds,
        # How busy every core was meanwhile, this run included: CPU seconds stretch on a
        # machine that others keep busy too.
        "machine_busy_percent": 100 * busy / ticks if ticks else None,
        "gateway_cpu_s_per_1000": (after.gateway_cpu - before.gateway_cpu) * per,
        "postgres_cpu_s_per_1000": (database + background) * per,
        "postgres_database_cpu_s_per_1000": database * per,
        "postgres_background_cpu_s_per_1000": background * per,
        "other_server_cpu_s_per_1000": max(0.0, server - database - background) * per,
        "wal_bytes_per_payment": wal[0] / payments if wal else None,
        "wal_records_per_payment": wal[1] / payments if wal else None,
        "wal_page_image_bytes_per_payment": wal[2] / payments if wal else None,
        "server_wal_bytes_per_payment": (after.lsn - before.lsn) / payments,
        "commits_per_1000": counted("xact_commit") * per,
        "rows_inserted_per_payment": counted("tup_inserted") / payments,
        "rows_updated_per_payment": counted("tup_updated") / payments,
    }


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
        "cpu": cpu_model(),
        "python": platform.python_version(),
        "postgresql": f"{version} (fsync={fsync}, synchronous_commit={sync_commit})",
    }


def cpu_model() -> str:
    with suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


# --- the report ---------------------------------------------------------------------------


def median(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [run[key] for run in runs if run[key] is not None]
    return statistics.median(values) if values else None


def figure(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


ROWS = (
    ("gateway_cpu_s_per_1000", "gateway CPU, s per 1,000 payments", 3),
    ("postgres_cpu_s_per_1000", "PostgreSQL CPU, s per 1,000 payments", 3),
    ("postgres_database_cpu_s_per_1000", "… of which the database's backends", 3),
    ("postgres_background_cpu_s_per_1000", "… of which WAL writer, checkpointer, bgwriter", 3),
    ("other_server_cpu_s_per_1000", "other work on the shared server (not counted)", 3),
    ("wal_bytes_per_payment", "WAL bytes per payment (this database's records)", 0),
    ("wal_page_image_bytes_per_payment", "… of which full-page images (after a checkpoint)", 0),
    ("wal_records_per_payment", "WAL records per payment", 1),
    ("server_wal_bytes_per_payment", "WAL bytes per payment (whole server's LSN advance)", 0),
    ("commits_per_1000", "commits per 1,000 payments", 0),
    ("rows_inserted_per_payment", "rows inserted per payment", 2),
    ("rows_updated_per_payment", "rows updated per payment", 2),
    ("pays_per_s", "pays/s during the run (everything on the same cores)", 0),
    ("machine_busy_percent", "all cores busy during the run, % (others' work included)", 0),
)


@dataclass(frozen=True)
class Model:
    """The capacity model of one load level, from its medians."""

    per_gateway_core: float  # payments/s
    per_postgres_core: float  # payments/s
    wal_per_payment: float  # bytes

    @classmethod
    def of(cls, runs: list[dict[str, Any]]) -> Model:
        gateway_cpu = median(runs, "gateway_cpu_s_per_1000")
        postgres_cpu = median(runs, "postgres_cpu_s_per_1000")
        wal = median(runs, "wal_bytes_per_payment") or median(runs, "server_wal_bytes_per_payment")
        if not (gateway_cpu and postgres_cpu and wal):
            raise BenchError("a run measured no CPU or no WAL: too few payments for /proc's ticks")
        return cls(1000 / gateway_cpu, 1000 / postgres_cpu, wal)

    @property
    def replicas_per_postgres_core(self) -> float:
        return self.per_postgres_core / self.per_gateway_core


def render(levels: dict[int, list[dict[str, Any]]], host: dict[str, str], command: str) -> str:
    """The measured block of docs/scaling.md: every run, the medians, and what follows."""
    first = next(iter(levels.values()))
    names = [f"{concurrency} in flight" for concurrency in levels]
    lines = [
        f"Measured with `{command}` ({len(first)} runs per load level, {first[0]['payments']:,}"
        f" payments each, webhooks on and all delivered, after {WARM_UP} unmeasured ones)."
        f" Machine: {host['cores']} cores ({host['cpu']}), Python {host['python']},"
        f" PostgreSQL {host['postgresql']}.",
        "",
        "| figure | " + " | ".join(f"{name}: median | each run" for name in names) + " |",
        "|---" + "|---:|---" * len(levels) + "|",
    ]
    for key, title, digits in ROWS:
        cells = [
            f"{figure(median(runs, key), digits)} | "
            + ", ".join(figure(run[key], digits) for run in runs)
            for runs in levels.values()
        ]
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    models = [Model.of(runs) for runs in levels.values()]

    def row(title: str, values: list[str]) -> str:
        return f"| {title} | " + " | ".join(values) + " |"

    lines += [
        "",
        "Derived from the medians:",
        "",
        row("figure", names),
        "|---" + "|---:" * len(levels) + "|",
        row(
            "payments/s one gateway core takes (1,000 / gateway CPU)",
            [f"{m.per_gateway_core:,.0f}" for m in models],
        ),
        row(
            "payments/s one PostgreSQL core commits (1,000 / PostgreSQL CPU)",
            [f"{m.per_postgres_core:,.0f}" for m in models],
        ),
        row(
            "gateway cores one PostgreSQL core feeds",
            [f"{m.replicas_per_postgres_core:.1f}" for m in models],
        ),
        row(
            "WAL written at that rate, MB/s per PostgreSQL core",
            [f"{m.per_postgres_core * m.wal_per_payment / 1e6:.1f}" for m in models],
        ),
        "",
        row(
            "PostgreSQL cores",
            [f"{name}: payments/s · replicas of 1 core · WAL MB/s" for name in names],
        ),
        "|---:" + "|---:" * len(levels) + "|",
    ]
    for cores in (2, 4, 8, 16):
        cells = []
        for m in models:
            rate = cores * m.per_postgres_core
            cells.append(
                f"{rate:,.0f} · {rate / m.per_gateway_core:.1f} · {rate * m.wal_per_payment / 1e6:.0f}"
            )
        lines.append(row(str(cores), cells))
    return "\n".join(lines)


def write_block(path: Path, block: str) -> None:
    """Replace what lies between the markers in ``path``; the rest of the file is prose."""
    text = path.read_text()
    start, end = text.find(BEGIN_MARKER), text.find(END_MARKER)
    if start < 0 or end < start:
        raise BenchError(f"{path} has no {BEGIN_MARKER} ... {END_MARKER} block to replace")
    path.write_text(text[: start + len(BEGIN_MARKER)] + "\n\n" + block + "\n\n" + text[end:])


async def measure(
    repeat: int, payments: int, levels: list[int]
) -> tuple[dict[int, list[dict[str, Any]]], dict[str, str]]:
    """Runs of every load level in turn (A B A B ...), so a noisy neighbour hits all alike."""
    with postgres_server() as server_dsn:
        try:
            host = await machine(server_dsn)
        except OSError as exc:
            raise BenchError(f"cannot reach PostgreSQL at {mask_dsn(server_dsn)}: {exc}") from None
        runs: dict[int, list[dict[str, Any]]] = {concurrency: [] for concurrency in levels}
        for number in range(1, repeat + 1):
            for concurrency in levels:
                print(
                    f"run {number} of {repeat}: {payments:,} payments, {concurrency} in flight",
                    file=sys.stderr,
                )
                run = await one_run(server_dsn, payments, concurrency, number)
                runs[concurrency].append(run)
                print(json.dumps(run), file=sys.stderr)
        return runs, host


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.capacity",
        description="CPU seconds and WAL bytes per payment, for the gateway and PostgreSQL",
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per level; medians shown")
    parser.add_argument("--payments", type=int, default=5000, help="measured pays per run")
    parser.add_argument(
        "--concurrency",
        type=int,
        nargs="+",
        default=[32, 4],
        help="load levels: pays in flight (a busy replica batches its commits more)",
    )
    parser.add_argument("--write", type=Path, help="replace the measured block in this file")
    commands = parser.add_subparsers(dest="command")
    load_command = commands.add_parser("load", help="the load process a run starts")
    load_command.add_argument("base")
    load_command.add_argument("first", type=int)
    load_command.add_argument("count", type=int)
    load_command.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args(argv)
    try:
        if args.command == "load":
            seconds = asyncio.run(load(args.base, args.first, args.count, args.concurrency))
            print(json.dumps({"seconds": seconds}))
            return 0
        if min(args.repeat, args.payments, *args.concurrency) < 1:
            raise BenchError("--repeat, --payments and --concurrency must be at least 1")
        levels = list(dict.fromkeys(args.concurrency))
        runs, host = asyncio.run(measure(args.repeat, args.payments, levels))
        block = render(runs, host, shown_command(args.repeat, args.payments, levels))
        print(block)
        if args.write:
            write_block(args.write, block)
    except (BenchError, OSError, asyncpg.PostgresError) as exc:
        print(f"bench.capacity: {exc}", file=sys.stderr)
        return 2
    return 0


def shown_command(repeat: int, payments: int, levels: list[int]) -> str:
    """The command as a reader would retype it: the server, and the options that differ."""
    configured = os.environ.get("DATABASE_URL")
    words = [f"DATABASE_URL={mask_dsn(configured)}"] if configured else []
    words.append("python -m bench.capacity")
    if repeat != 3:
        words.append(f"--repeat {repeat}")
    if payments != 5000:
        words.append(f"--payments {payments}")
    if levels != [32, 4]:
        words.append("--concurrency " + " ".join(map(str, levels)))
    return " ".join(words)


if __name__ == "__main__":
    sys.exit(main())
