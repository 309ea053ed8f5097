"""PG_SLAVES: the operator's read-only commands read from the first replica that answers,
say so on stderr (stdout stays JSON or CSV), and fall back to the primary when the replica
is gone; commands that write never go to a replica.

The primary and its streaming replica (pg_basebackup -R) are servers of this test's own.
While the replica's replay is paused, a payment added on the primary is missing from what
the commands show: proof that they read from the replica, and the staleness they report.
`reconcile`, for which a payment missing "on our side" costs an operator's time, reads from the
primary unless the replica has replayed everything the primary had written when it started.
A replica that stops answering (before or after the session opens) is given up after
QIWI_DB_TIMEOUT, and a PG_SLAVES entry that is not in recovery is not read as a replica.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp.test_utils import unused_port

from qiwi_gw import migrations, replicas
from qiwi_gw.settings import Settings
from tests.support.cli import Result, run_cli, run_process
from tests.support.postgres import Server, cluster
from tests.support.rows import add_payment, execute

pytestmark = pytest.mark.timeout(180)

REPLAY_WAIT = 60.0


@dataclass
class Pair:
    primary: Server
    replica: Server

    @property
    def slaves(self) -> str:
        return self.replica.where


@pytest.fixture
def pair() -> Iterator[Pair]:
    with cluster() as own:
        primary = own.primary()
        migrations.apply(primary.dsn(), "public")
        add_payment(primary.dsn(), "901", delivered_ago=None, attempts=0)
        replica = own.replica(primary)
        wait_replayed(primary, replica)
        yield Pair(primary, replica)


def wait_replayed(primary: Server, replica: Server) -> None:
    """Until the replica has replayed everything the primary has written so far."""
    target = execute(primary.dsn(), "SELECT pg_current_wal_lsn()::text")[0][0]
    deadline = time.monotonic() + REPLAY_WAIT
    statement = "SELECT coalesce(pg_last_wal_replay_lsn() >= %s::pg_lsn, false)"
    # Replay is another server's progress: there is no event to await from here.
    while not execute(replica.dsn(), statement, target)[0][0]:
        assert time.monotonic() < deadline, "the replica did not catch up"
        time.sleep(0.05)


def cli(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    pair: Pair,
    *args: str,
    **env: str,
) -> Result:
    return run_cli(monkeypatch, capsys, pair.primary.dsn(), *args, PG_SLAVES=pair.slaves, **env)


def test_reads_go_to_the_replica_say_its_lag_and_fall_back_to_the_primary(
    pair: Pair,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    quiet = run_cli(monkeypatch, capsys, pair.primary.dsn(), "status", "--json")
    assert (quiet.code, quiet.err) == (0, ""), "without PG_SLAVES nothing is said"

    # A commit for the replica to replay: what a base backup holds is not "replayed".
    execute(pair.primary.dsn(), "CREATE TABLE replay_mark ()")
    wait_replayed(pair.primary, pair.replica)
    status = cli(monkeypatch, capsys, pair, "status", "--json")
    assert status.code == 0, status.err
    assert len(status.err_lines) == 1
    assert status.err_lines[0].startswith(
        f"qiwi-gw: reading from replica {pair.replica.where} (PG_SLAVES), which may lag the "
        "primary: replay lag "
    )
    assert status.err_lines[0].endswith(" (its last replayed commit's age)")

    execute(pair.replica.dsn(), "SELECT pg_wal_replay_pause()")
    add_payment(pair.primary.dsn(), "902", delivered_ago=None, attempts=0)
    from_replica = f"qiwi-gw: reading from replica {pair.replica.where} (PG_SLAVES)"

    status = cli(monkeypatch, capsys, pair, "status", "--json")
    assert status.code == 0, status.err
    assert len(status.err_lines) == 1
    assert status.err_lines[0].startswith(
        f"{from_replica}, which may lag the primary: replay PAUSED; lag "
    )
    assert status.json()["counts"]["total"]["value"] == 1

    pending = cli(monkeypatch, capsys, pair, "pending", "--json")
    assert pending.code == 0, pending.err
    assert pending.err_lines[0].startswith(from_replica)
    assert "replay PAUSED" in pending.err_lines[0]
    assert [row["txn_id"] for row in pending.json()["payments"]] == ["901"]

    export = cli(monkeypatch, capsys, pair, "export", "--from", "2026-11-28", "--to", "2026-11-28")
    assert export.code == 0, export.err
    assert export.err_lines[0].startswith(from_replica)
    lines = export.out.splitlines()
    assert lines[0].startswith("txn_id,")
    assert [line.split(",")[0] for line in lines[1:]] == ["901"]

    attempts = cli(monkeypatch, capsys, pair, "attempts", "902")
    assert attempts.code == 1  # not replayed there yet
    assert attempts.err_lines[0].startswith(from_replica)

    # A write goes to the primary whatever PG_SLAVES says (902 is not on the replica yet).
    resend = cli(monkeypatch, capsys, pair, "resend", "902")
    assert resend.code == 0, resend.err
    assert "replica" not in resend.err

    pair.replica.stop()
    status = cli(monkeypatch, capsys, pair, "status", "--json")
    assert status.code == 0, status.err
    assert len(status.err_lines) == 1
    assert status.err_lines[0].startswith(f"qiwi-gw: no replica used ({pair.replica.where}: ")
    assert status.err_lines[0].endswith(f"reading from the primary {pair.primary.where}")
    assert status.json()["counts"]["total"]["value"] == 2


def test_reconcile_reads_the_primary_unless_the_replica_has_caught_up(
    pair: Pair,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A lagging replica would show a payment QIWI lists as missing on our side."""
    registry = tmp_path / "registry.csv"
    registry.write_text("txn_id,account,sum,date\n901,42,10.00,2026-11-28\n")
    caught_up = cli(monkeypatch, capsys, pair, "reconcile", str(registry))
    assert caught_up.code == 0, caught_up.out + caught_up.err
    assert caught_up.err_lines == [
        f"qiwi-gw: reading from replica {pair.replica.where} (PG_SLAVES): it has replayed all "
        "the primary had written when this command started"
    ]

    execute(pair.replica.dsn(), "SELECT pg_wal_replay_pause()")
    add_payment(pair.primary.dsn(), "902", delivered_ago=None, attempts=0)
    registry.write_text(
        "txn_id,account,sum,date\n901,42,10.00,2026-11-28\n902,42,10.00,2026-11-28\n"
    )
    behind = cli(monkeypatch, capsys, pair, "reconcile", str(registry))
    assert behind.code == 0, behind.out + behind.err
    assert len(behind.err_lines) == 1
    assert behind.err_lines[0].startswith(
        f"qiwi-gw: no replica used ({pair.replica.where}: behind the primary by "
    )
    assert behind.err_lines[0].endswith(
        f" bytes of WAL, replay paused): reading from the primary {pair.primary.where}"
    )


async def test_replica_connections_have_tcp_keepalives(pair: Pair) -> None:
    settings = Settings.from_env({"DATABASE_URL": pair.primary.dsn(), "PG_SLAVES": pair.slaves})
    source = await replicas.connect_for_reading(settings.database, pair.primary.dsn())
    try:
        assert source.replica
        transport = getattr(source.connection, "_transport")  # noqa: B009 - asyncpg's own
        tcp = transport.get_extra_info("socket")
        assert tcp.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
    finally:
        await source.connection.close()


def test_a_pg_slaves_entry_that_is_not_in_recovery_is_no_replica(
    pair: Pair, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """PG_SLAVES naming the primary itself, or a replica promoted since."""
    status = run_cli(
        monkeypatch, capsys, pair.primary.dsn(), "status", PG_SLAVES=pair.primary.where
    )
    assert status.code == 0, status.err
    assert status.err_lines == [
        f"qiwi-gw: no replica used ({pair.primary.where}: not in recovery, so not a replica: "
        f"the primary itself, or a promoted one): reading from the primary {pair.primary.where}"
    ]


def test_a_replica_that_accepts_no_session_is_given_up_after_the_timeout(
    pair: Pair, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A stopped (SIGSTOP) server: the kernel accepts the connection, nobody answers."""
    pid = int((pair.replica.pgdata / "postmaster.pid").read_text().split()[0])
    os.kill(pid, signal.SIGSTOP)
    try:
        status = cli(monkeypatch, capsys, pair, "status", "--json", QIWI_DB_TIMEOUT="1")
    finally:
        os.kill(pid, signal.SIGCONT)
    assert status.code == 0, status.err
    assert status.err_lines == [
        f"qiwi-gw: no replica used ({pair.replica.where}: timeout, no answer within 1 s): "
        f"reading from the primary {pair.primary.where}"
    ]


class StallingProxy:
    """A TCP proxy to a server that passes the session's start (SSL request, startup,
    authentication) and then swallows the first query: a replica whose host froze, or a
    network that partitioned, right after the session opened. In a thread of its own."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = unused_port()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=asyncio.run, args=(self._serve(),), daemon=True)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stop: asyncio.Event | None = None

    async def _serve(self) -> None:
        self.loop, self.stop = asyncio.get_running_loop(), asyncio.Event()
        server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.ready.set()
        async with server:
            await self.stop.wait()

    async def _handle(self, client_in: asyncio.StreamReader, client: asyncio.StreamWriter) -> None:
        server_in, server = await asyncio.open_connection("127.0.0.1", self.target_port)
        answers = asyncio.ensure_future(self._pipe(server_in, client))
        try:
            await self._requests(client_in, server)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            answers.cancel()
            client.close()
            server.close()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()

    @staticmethod
    async def _requests(reader: asyncio.StreamReader, server: asyncio.StreamWriter) -> None:
        # Untyped messages first (SSLRequest, GSSENCRequest, startup), then typed ones.
        started = False
        while True:
            if not started:
                length = struct.unpack("!I", await reader.readexactly(4))[0]
                body = await reader.readexactly(length - 4)
                started = struct.unpack("!I", body[:4])[0] not in (80877103, 80877104)
                server.write(struct.pack("!I", length) + body)
            else:
                head = await reader.readexactly(5)
                body = await reader.readexactly(struct.unpack("!I", head[1:])[0] - 4)
                if head[:1] in (b"Q", b"P"):
                    await asyncio.Event().wait()  # never answered
                server.write(head + body)
            await server.drain()

    @contextmanager
    def running(self) -> Iterator[StallingProxy]:
        self.thread.start()
        self.ready.wait()
        try:
            yield self
        finally:
            assert self.loop is not None
            assert self.stop is not None
            self.loop.call_soon_threadsafe(self.stop.set)
            self.thread.join()


@pytest.mark.parametrize("command", ["status", "pending"])
def test_a_replica_that_stalls_after_connecting_is_given_up_after_the_timeout(
    pair: Pair, command: str
) -> None:
    with StallingProxy(pair.replica.port).running() as proxy:
        result = run_process(
            command,
            env={
                "DATABASE_URL": pair.primary.dsn(),
                "PG_SLAVES": f"127.0.0.1:{proxy.port}",
                "QIWI_DB_TIMEOUT": "1",
            },
        )
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        f"qiwi-gw: no replica used (127.0.0.1:{proxy.port}: timeout, no answer within 1 s): "
        f"reading from the primary {pair.primary.where}"
    ]
