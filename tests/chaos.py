"""Fault-injection harness: real processes, a real PostgreSQL of the test's own, a
real backend, and a load generator that remembers what QIWI was told.

``make chaos`` sets CHAOS_FULL=1 for the full loads and durations; the normal
suite (and CI) runs the same scenarios small. With CHAOS_REPORT=path each
scenario appends its figures there as a JSON line (``make chaos`` renders them
into docs/reliability.md).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import pwd
import signal
import subprocess
import sys
import tempfile
import time
import warnings
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import unused_port

from qiwi_gw import migrations

FULL = os.environ.get("CHAOS_FULL") == "1"


def scale(small: float, full: float) -> float:
    return full if FULL else small


# The per-test timeout (pyproject's is for ordinary tests), by scale.
TIMEOUT = 180 if not FULL else 1200

# Killing servers under load leaves asyncio's own sockets to be reaped by the
# garbage collector mid-connect (a KeyError inside selectors): noise of the
# fault, not of the gateway, so it is not turned into a test failure here.
QUIET = pytest.mark.filterwarnings(
    "ignore::pytest.PytestUnraisableExceptionWarning", "ignore::ResourceWarning"
)


def report(scenario: str, **figures: Any) -> None:
    """Print the scenario's figures; append them to CHAOS_REPORT when set."""
    line = {"scenario": scenario, "full": FULL, **figures}
    print(json.dumps(line))
    path = os.environ.get("CHAOS_REPORT")
    if path:
        with open(path, "a") as out:
            out.write(json.dumps(line) + "\n")


# --- a PostgreSQL the test may stop and start --------------------------------


class DisposablePostgres:
    """A PostgreSQL server of the test's own (pgserver's binaries) on a TCP port."""

    def __init__(self, directory: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs on XDG_RUNTIME_DIR, as in conftest
            from pgserver._commands import POSTGRES_BIN_PATH

        self.bin = POSTGRES_BIN_PATH
        self.pgdata = directory / "pgdata"
        self.port = unused_port()
        self.user: str | None = None
        if os.geteuid() == 0:
            # PostgreSQL refuses to run as root; pgserver keeps a user for this.
            from pgserver.utils import ensure_user_exists

            ensure_user_exists("pgserver")
            self.user = "pgserver"
            os.chown(directory, pwd.getpwnam("pgserver").pw_uid, pwd.getpwnam("pgserver").pw_gid)

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        subprocess.run(
            [str(self.bin / args[0]), *args[1:]],
            check=True,
            capture_output=True,
            user=self.user,
            timeout=60,
        )

    def init(self) -> None:
        self._run("initdb", "-D", str(self.pgdata), "-U", "postgres", "--auth=trust", "-E", "utf8")

    def start(self) -> None:
        options = f"-h 127.0.0.1 -p {self.port} -k {self.pgdata}"
        self._run(
            "pg_ctl",
            "-D",
            str(self.pgdata),
            "-w",
            "-o",
            options,
            "-l",
            str(self.pgdata / "log"),
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.pgdata), "-w", "-m", mode, "stop")


@contextmanager
def disposable_postgres() -> Iterator[DisposablePostgres]:
    with tempfile.TemporaryDirectory(prefix="qiwi-gw-chaos-") as directory:
        server = DisposablePostgres(Path(directory))
        server.init()
        server.start()
        try:
            migrations.apply(server.dsn, "public")
            yield server
        finally:
            with suppress(subprocess.CalledProcessError):
                server.stop("immediate")


# --- the merchant's backend --------------------------------------------------


@dataclass
class Delivery:
    code: str
    started: float
    finished: float
    status: int


Behaviour = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def accept(request: web.Request) -> web.StreamResponse:
    return web.Response(text="ok")


class Backend:
    """A real local webhook receiver whose behaviour a scenario can switch."""

    def __init__(self) -> None:
        self.behaviour: Behaviour = accept
        self.deliveries: list[Delivery] = []
        self.requests = 0
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port = unused_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        """The backend goes down: connections are refused until ``start``."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        started = time.monotonic()
        body = await request.json()
        self.requests += 1
        response = await self.behaviour(request)
        if 200 <= response.status < 300:
            self.deliveries.append(
                Delivery(body["code"], started, time.monotonic(), response.status)
            )
            async with self._changed:
                self._changed.notify_all()
        return response

    def delivered(self) -> set[str]:
        return {d.code for d in self.deliveries}

    async def wait_delivered(self, codes: set[str], within: float) -> None:
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(lambda: codes <= self.delivered())

    def overlapping(self) -> int:
        """Deliveries of one payment that were in flight at the same time."""
        by_code: dict[str, list[Delivery]] = {}
        for delivery in self.deliveries:
            by_code.setdefault(delivery.code, []).append(delivery)
        overlaps = 0
        for spans in by_code.values():
            spans.sort(key=lambda d: d.started)
            for earlier, later in itertools.pairwise(spans):
                if later.started < earlier.finished:
                    overlaps += 1
        return overlaps

    def duplicates(self) -> int:
        return len(self.deliveries) - len(self.delivered())


@asynccontextmanager
async def backend() -> AsyncIterator[Backend]:
    server = Backend()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


# --- the gateway as a process -------------------------------------------------


class Gateway:
    def __init__(self, dsn: str, webhook_url: str, **env: str) -> None:
        self.port = unused_port()
        self.env = {
            **os.environ,
            "DATABASE_URL": dsn,
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "QIWI_WEBHOOK_URL": webhook_url,
            "QIWI_WEBHOOK_RETRY_MIN": "0.2",
            "QIWI_WEBHOOK_RETRY_MAX": "2",
            "QIWI_SWEEP_INTERVAL": "1",
            "QIWI_DB_TIMEOUT": "2",
            # Several gateways run at once: none takes the operator port.
            "QIWI_CONSOLE_PORT": "0",
            **env,
        }
        self.process: asyncio.subprocess.Process | None = None
        # The gateway's stderr across restarts, kept for a failing test's message.
        handle, path = tempfile.mkstemp(prefix="qiwi-gw-chaos-", suffix=".log")
        os.close(handle)
        self.log = Path(path)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "qiwi_gw", "serve", env=self.env, stderr=log
            )
        await self.wait_ready()

    async def wait_ready(self, within: float = 60) -> float:
        """Seconds until /readyz answers 200."""
        started = time.monotonic()
        async with aiohttp.ClientSession() as session, asyncio.timeout(within):
            while True:
                assert self.process is not None
                assert self.process.returncode is None, self.log_text()
                try:
                    async with session.get(f"{self.base}/readyz") as response:
                        if response.status == 200:
                            return time.monotonic() - started
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.05)  # polling another process: there is no event

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)

    async def terminate(self) -> int:
        assert self.process is not None
        if self.process.returncode is None:
            self.process.terminate()
        async with asyncio.timeout(60):
            return await self.process.wait()

    async def wait(self) -> int:
        assert self.process is not None
        return await self.process.wait()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


# --- QIWI: a load generator that remembers every answer -----------------------


@dataclass
class Answer:
    result: str
    prv_txn: str | None
    http_status: int


@dataclass
class Qiwi:
    """Sends pays with unique txn_ids; records what each was answered."""

    answered: dict[str, Answer] = field(default_factory=dict)
    unanswered: set[str] = field(default_factory=set)
    http_500: int = 0
    latencies: list[float] = field(default_factory=list)
    sent: int = 0
    next_txn: int = 1

    def new_txn(self) -> str:
        txn = str(self.next_txn)
        self.next_txn += 1
        return txn

    async def pay(self, session: aiohttp.ClientSession, base: str, txn: str) -> Answer | None:
        params = {
            "command": "pay",
            "txn_id": txn,
            "txn_date": "20261129120000",
            "account": f"acc{txn}",
            "sum": "10.00",
        }
        self.sent += 1
        started = time.monotonic()
        try:
            async with session.get(f"{base}/payment", params=params) as response:
                body = await response.read()
                status = response.status
        except (TimeoutError, aiohttp.ClientError):
            self.unanswered.add(txn)
            return None
        self.latencies.append(time.monotonic() - started)
        if status >= 500:
            self.http_500 += 1
        root = ET.fromstring(body)
        answer = Answer(
            result=root.findtext("result") or "",
            prv_txn=root.findtext("prv_txn"),
            http_status=status,
        )
        if answer.result == "0":
            self.unanswered.discard(txn)
            previous = self.answered.get(txn)
            assert previous is None or previous.prv_txn == answer.prv_txn, (txn, previous, answer)
            self.answered[txn] = answer
        else:
            self.unanswered.add(txn)
        return answer

    async def load(
        self,
        bases: list[str],
        *,
        seconds: float,
        concurrency: int,
        stop: asyncio.Event | None = None,
    ) -> None:
        """Closed-loop load, round-robin over ``bases``, until time is up or ``stop``."""
        deadline = time.monotonic() + seconds
        turn = 0
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as session:

            async def worker() -> None:
                nonlocal turn
                while time.monotonic() < deadline and not (stop and stop.is_set()):
                    turn += 1
                    await self.pay(session, bases[turn % len(bases)], self.new_txn())

            await asyncio.gather(*(worker() for _ in range(concurrency)))

    async def repeat_unanswered(self, base: str) -> None:
        """What QIWI does: repeat every pay that got no 0 until it does."""
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            for txn in sorted(self.unanswered, key=int):
                answer = await self.pay(session, base, txn)
                assert answer is not None, txn
                assert answer.result == "0", (txn, answer)

    def p99_ms(self) -> float:
        ordered = sorted(self.latencies)
        return 1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] if ordered else 0.0


async def stored_payments(dsn: str) -> dict[str, int]:
    """code -> id of every stored payment."""
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch("SELECT code, id FROM qiwi_transaction")
    finally:
        await connection.close()
    return {row["code"]: row["id"] for row in rows}


async def assert_money_invariants(qiwi: Qiwi, dsn: str) -> dict[str, int]:
    """Every 0 is stored once with its prv_txn; nothing is stored twice; no 500s."""
    stored = await stored_payments(dsn)
    lost = [txn for txn, a in qiwi.answered.items() if str(stored.get(txn)) != a.prv_txn]
    assert not lost, f"answered 0 but not stored as answered: {lost[:10]}"
    assert qiwi.http_500 == 0
    connection = await asyncpg.connect(dsn)
    try:
        doubled = await connection.fetchval(
            "SELECT count(*) FROM (SELECT code FROM qiwi_transaction GROUP BY code"
            " HAVING count(*) > 1) d"
        )
    finally:
        await connection.close()
    assert doubled == 0
    return stored


COLUMNS = (
    ("load", "load"),
    ("faults", "faults injected"),
    ("requests", "requests sent"),
    ("answered_0", "pays answered 0"),
    ("stored", "payments stored"),
    ("lost", "lost"),
    ("doubled", "doubled"),
    ("delivered", "delivered"),
    ("worst_recovery_s", "worst recovery (s)"),
)


def render(results: Path, out: Path) -> None:
    """docs/reliability.md from the JSON lines the scenarios appended."""
    rows = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    lines = [
        "# Reliability",
        "",
        "Produced by `make chaos` (CHAOS_FULL=1: full loads and durations); every row is one",
        "scenario of the fault-injection suite in `tests/test_chaos_*.py`, run against real",
        "gateway processes, a real PostgreSQL and a real local backend. Each scenario asserts",
        "its invariants; this table is what it measured.",
        "",
        "| scenario | " + " | ".join(title for _, title in COLUMNS) + " | other figures |",
        "|---" * (len(COLUMNS) + 2) + "|",
    ]
    known = {"scenario", "full", *(key for key, _ in COLUMNS)}
    for row in rows:
        cells = [str(row.get(key, "-")) for key, _ in COLUMNS]
        other = ", ".join(f"{k}={v}" for k, v in row.items() if k not in known)
        lines.append(f"| {row['scenario']} | " + " | ".join(cells) + f" | {other} |")
    lines.append("")
    out.write_text("\n".join(lines))


if __name__ == "__main__":
    render(Path(sys.argv[1]), Path(sys.argv[2]))
