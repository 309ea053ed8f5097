"""``qiwi-gw reconcile`` on a 1,000,000-line registry: wall time and peak memory.

Seeds a fresh database with one Moscow day of N payments, writes QIWI's registry
of that day twice (QIWI's standard layout, and a CSV with a header, the one layout
older versions read too), three differences in each (one payment missing on each
side, one different sum), then runs ``python -m qiwi_gw reconcile`` as a process
on each file and reports its wall time and peak RSS (from ``wait4``); once more
against an empty database, where every line differs.

    python -m bench.reconcile                       # 1,000,000 lines, this tree
    python -m bench.reconcile --lines 100000
    python -m bench.reconcile --before <commit>     # and that commit's code, same files
    python -m bench.reconcile --repeat 3            # medians of 3 rounds

``--before`` extracts the commit's ``src/`` (``git archive``) into a temporary
directory and runs it with this venv; it reads only the CSV file (it cannot read
QIWI's standard layout). The database is ``DATABASE_URL``'s server, else an
embedded one, as for ``bench.run``.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import asyncpg

from bench.run import Databases, postgres_server

ROOT = Path(__file__).resolve().parent.parent
DAY = "2026-11-28"
FIRST_CODE = 10_000_000_000
# The registry's three differences.
LEFT_OUT = 500  # ours, not in the file: missing on their side
OTHER_SUM = 700  # in both, the file's sum differs
FOREIGN_CODE = "99999999999"  # in the file, not ours: missing on our side


def payment(number: int, lines: int) -> tuple[str, str, str, datetime]:
    """Payment ``number`` (1..lines): txn_id, account, sum, QIWI's (Moscow) time."""
    when = datetime.fromisoformat(DAY) + timedelta(seconds=(number - 1) * 86_399 // lines)
    cents = number % 99_999 + 1
    return (
        str(FIRST_CODE + number),
        str(900_000 + number % 5000),
        f"{cents // 100}.{cents % 100:02d}",
        when,
    )


SEED = """
INSERT INTO qiwi_transaction
    (account, code, sum, status, txn_date, created_at, updated_at, delivered_at, http_log_id)
SELECT (900000 + g % 5000)::text, ($2::bigint + g)::text, (g % 99999 + 1) / 100.0, 1,
       t, t - interval '3 hours' + interval '1.5 seconds', t, t, g
FROM generate_series(1, $1::int) AS g,
     LATERAL (SELECT $3::timestamp + ((g::bigint - 1) * 86399 / $1::int) * interval '1 second' AS t) AS x
"""


async def seed(dsn: str, lines: int) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(SEED, lines, FIRST_CODE, datetime.fromisoformat(DAY))
        await connection.execute("VACUUM ANALYZE qiwi_transaction")
    finally:
        await connection.close()


def write_files(directory: Path, lines: int) -> tuple[Path, Path]:
    standard = directory / f"QIWI_777_{DAY.replace('-', '')}1.csv"
    headed = directory / f"registry-{DAY}.csv"
    count, total = 0, 0
    with standard.open("w", newline="") as qiwi, headed.open("w", newline="") as csv:
        csv.write("txn_id,account,sum,date\n")
        for number in range(1, lines + 1):
            if number == LEFT_OUT:
                continue
            code, account, amount, when = payment(number, lines)
            if number == OTHER_SUM:
                amount = "1.00"
            qiwi.write(f"{code}\t{when:%d.%m.%Y}\t{when:%H:%M:%S}\t{account}\t{amount}\r\n")
            csv.write(f"{code},{account},{amount},{when:%Y-%m-%d %H:%M:%S}\n")
            count += 1
            total += int(amount.replace(".", ""))
        qiwi.write(f"{FOREIGN_CODE}\t{DAY[8:]}.{DAY[5:7]}.{DAY[:4]}\t12:00:00\t1\t5.00\r\n")
        csv.write(f"{FOREIGN_CODE},1,5.00,{DAY} 12:00:00\n")
        count, total = count + 1, total + 500
        qiwi.write(f"Total: {count} {total // 100}.{total % 100:02d}\r\n")
    return standard, headed


@dataclass(frozen=True)
class Measured:
    label: str
    exit_code: int
    seconds: float
    peak_rss_mb: float
    last_line: str


def measure(label: str, args: list[str], env: dict[str, str]) -> Measured:
    """One ``qiwi-gw reconcile`` process: wall time, and peak RSS from ``wait4``."""
    with tempfile.TemporaryFile() as out:
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-m", "qiwi_gw", "reconcile", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode(errors="replace").strip()
    last = text.splitlines()[-1] if text else ""
    return Measured(label, process.returncode, seconds, usage.ru_maxrss / 1024, last)


def extract(ref: str, into: Path) -> Path:
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", ref, "src"], capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


async def prepare(server: str, lines: int) -> tuple[Databases, str, str]:
    databases = Databases(server)
    await databases.setup()
    dsn = await databases.fresh("reconcile")
    print(f"seeding {lines:,} payments...", file=sys.stderr)
    await seed(dsn, lines)
    return databases, dsn, await databases.fresh("reconcile_empty")


def main() -> None:
    parser = argparse.ArgumentParser(description="reconcile of a big registry: time, memory")
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--before", metavar="REF", help="also measure this commit's code")
    parser.add_argument("--repeat", type=int, default=1, help="rounds; medians are shown")
    args = parser.parse_args()
    rounds: list[list[Measured]] = []
    with postgres_server() as server, tempfile.TemporaryDirectory(prefix="qiwi-rec-") as tmp:
        databases, dsn, empty = asyncio.run(prepare(server, args.lines))
        try:
            standard, headed = write_files(Path(tmp), args.lines)
            base = {k: v for k, v in os.environ.items() if not k.startswith(("PG_", "QIWI_"))}
            env = {**base, "DATABASE_URL": dsn, "PYTHONPATH": str(ROOT / "src")}
            runs = [
                ("this tree, QIWI's standard file", [str(standard)], env),
                ("this tree, CSV with a header", [str(headed)], env),
                # The worst case: every line differs (the wrong database), nothing matches.
                (
                    "this tree, QIWI's standard file, empty database",
                    [str(standard)],
                    {**env, "DATABASE_URL": empty},
                ),
            ]
            if args.before:
                old = extract(args.before, Path(tmp) / "before")
                runs.append(
                    (f"{args.before[:12]}, CSV", [str(headed)], {**env, "PYTHONPATH": str(old)})
                )
            # Rounds alternate the variants, so a busy spell of a shared machine
            # falls on all of them.
            for number in range(args.repeat):
                print(f"round {number + 1} of {args.repeat}...", file=sys.stderr)
                rounds.append([measure(*run) for run in runs])
        finally:
            asyncio.run(databases.cleanup())
    print(f"\nreconcile of {args.lines:,} lines against {args.lines:,} payments", end="")
    print(f", medians of {args.repeat} rounds" if args.repeat > 1 else "")
    print("| code, file | exit | wall time | peak RSS | last line |")
    print("|---|---|---|---|---|")
    for index, item in enumerate(rounds[0]):
        seconds = statistics.median(found[index].seconds for found in rounds)
        rss = statistics.median(found[index].peak_rss_mb for found in rounds)
        print(
            f"| {item.label} | {item.exit_code} | {seconds:.1f} s"
            f" | {rss:.0f} MB | {item.last_line} |"
        )


if __name__ == "__main__":
    main()
