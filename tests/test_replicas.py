"""PG_SLAVES: the operator's read-only commands read from the first replica that answers,
say so on stderr (stdout stays JSON or CSV), and fall back to the primary when the replica
is gone; commands that write never go to a replica.

The primary and its streaming replica (pg_basebackup -R) are servers of this test's own.
While the replica's replay is paused, a payment added on the primary is missing from what
the commands show: proof that they read from the replica, and the staleness the docs warn of.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from qiwi_gw import migrations
from tests.ops_helpers import Result, add_payment, execute, run_cli
from tests.own_postgres import Server, cluster

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
) -> Result:
    return run_cli(monkeypatch, capsys, pair.primary.dsn(), *args, PG_SLAVES=pair.slaves)


def test_reads_go_to_the_replica_and_fall_back_to_the_primary(
    pair: Pair,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    quiet = run_cli(monkeypatch, capsys, pair.primary.dsn(), "status", "--json")
    assert (quiet.code, quiet.err) == (0, ""), "without PG_SLAVES nothing is said"

    execute(pair.replica.dsn(), "SELECT pg_wal_replay_pause()")
    add_payment(pair.primary.dsn(), "902", delivered_ago=None, attempts=0)
    from_replica = f"qiwi-gw: reading from replica {pair.replica.where} (PG_SLAVES)"

    status = cli(monkeypatch, capsys, pair, "status", "--json")
    assert status.code == 0, status.err
    assert status.err_lines == [f"{from_replica}: it may lag the primary"]
    assert status.json()["counts"]["total"]["value"] == 1

    pending = cli(monkeypatch, capsys, pair, "pending", "--json")
    assert pending.code == 0, pending.err
    assert pending.err_lines[0].startswith(from_replica)
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

    registry = tmp_path / "registry.csv"
    registry.write_text("txn_id,account,sum,date\n901,42,10.00,2026-11-28\n")
    reconcile = cli(monkeypatch, capsys, pair, "reconcile", str(registry))
    assert reconcile.code == 0, reconcile.out + reconcile.err
    assert reconcile.err_lines[0].startswith(from_replica)

    # A write goes to the primary whatever PG_SLAVES says (902 is not on the replica yet).
    resend = cli(monkeypatch, capsys, pair, "resend", "902")
    assert resend.code == 0, resend.err
    assert "replica" not in resend.err

    pair.replica.stop()
    status = cli(monkeypatch, capsys, pair, "status", "--json")
    assert status.code == 0, status.err
    assert len(status.err_lines) == 1
    assert status.err_lines[0].startswith(f"qiwi-gw: no replica answered ({pair.replica.where}: ")
    assert status.err_lines[0].endswith(f"reading from the primary {pair.primary.where}")
    assert status.json()["counts"]["total"]["value"] == 2
