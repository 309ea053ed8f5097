"""The console's heavy work in a process of its own: ``python -m qiwi_gw.console.worker``.

An export of a month, or a comparison with a 600,000-line registry, is seconds of
Python (formatting CSV, decoding and parsing the file): in the gateway's process
those are seconds during which ``/payment`` waits for the event loop. Here they run
beside it, through the CLI's own functions and connection (``ops.export.run``,
``ops.reconciliation.reconcile``, ``ops.common.connect``, which reads from a replica
of PG_SLAVES first): the download is byte for byte what ``qiwi-gw export`` writes.

The job arrives pickled on stdin, from the gateway that started this process (the
DSN's password stays out of argv and of the environment). An export's CSV goes to
stdout as it is made; a comparison's ``Outcome`` goes to stdout pickled. The CLI's
notes (where it read from, the count) go to stderr, which the gateway logs.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import sys
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import asyncpg

from qiwi_gw.errors import DatabaseUnavailableError, QiwiGwError, describe
from qiwi_gw.ops import common, export, reconciliation
from qiwi_gw.settings import Settings

# Exit codes: the export's database could not be read.
EXIT_DATABASE = 3

# What a database that stopped answering raises mid-comparison: "the database did not
# answer", not "the file could not be read".
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    asyncpg.PostgresConnectionError,
    asyncpg.OperatorInterventionError,
)


def _connect(
    settings: Settings, dsn: str, command: str
) -> AbstractAsyncContextManager[asyncpg.Connection]:
    """The connection the CLI's ``command`` gets: a replica of PG_SLAVES when usable
    (for reconcile, only one that has caught up with the primary), else the primary."""
    return common.connect(
        settings.database,
        dsn,
        read_only=command in common.READ_ONLY_COMMANDS,
        current=command in common.CURRENT_COMMANDS,
    )


@dataclass(frozen=True)
class ExportJob:
    """``qiwi-gw export --from FIRST --to LAST`` (CSV) on ``dsn``."""

    settings: Settings
    dsn: str
    first: date
    last: date

    async def run(self) -> int:
        try:
            async with _connect(self.settings, self.dsn, "export") as connection:
                return await export.run(
                    connection, self.settings, first=self.first, last=self.last, layout="csv"
                )
        except DatabaseUnavailableError as exc:
            print(f"qiwi-gw: {exc}", file=sys.stderr)
            return EXIT_DATABASE
        except BrokenPipeError:
            return 0  # the browser went away and the gateway closed the pipe


# What an Outcome's ``kind`` says, and the page's status for it.
COMPARED, BAD_FILE, UNREADABLE, DATABASE = "compared", "bad file", "unreadable", "database"


@dataclass(frozen=True)
class Outcome:
    kind: str
    result: reconciliation.Reconciliation | None = None
    # One line for the page: what was wrong with the file, or with the database.
    problem: str = ""


@dataclass(frozen=True)
class ReconcileJob:
    """``qiwi-gw reconcile`` of the file at ``path`` (named ``name`` by the operator)."""

    settings: Settings
    dsn: str
    path: Path
    name: str
    period: reconciliation.Period | None

    async def run(self) -> int:
        outcome = await self.compare()
        sys.stdout.buffer.write(pickle.dumps(outcome))
        return 0

    async def compare(self) -> Outcome:
        try:
            async with _connect(self.settings, self.dsn, "reconcile") as connection:
                try:
                    # A stream, not the path: messages name the operator's file, not ours.
                    with self.path.open("rb") as stream:
                        result = await reconciliation.reconcile(
                            stream, self.period, connection, name=self.name
                        )
                except DatabaseUnavailableError:
                    raise
                except QiwiGwError as exc:
                    # What the CLI says in one line with exit code 2: the file's line and why.
                    return Outcome(BAD_FILE, problem=str(exc).splitlines()[0][:500])
                except CONNECTION_ERRORS:
                    raise  # connect() words it as the database's failure
                except Exception as exc:  # a file the rules did not foresee
                    print(f"qiwi-gw: reconcile of {self.name!r}: {describe(exc)}", file=sys.stderr)
                    return Outcome(UNREADABLE, problem=f"{self.name}: could not read the file")
        except DatabaseUnavailableError as exc:
            return Outcome(DATABASE, problem=str(exc).splitlines()[0][:500])
        return Outcome(COMPARED, result=result)


# Below the gateway's priority: on a machine with a core or two, the gateway's /payment
# comes first and the export takes what is left.
NICENESS = 10


def main() -> int:
    os.nice(NICENESS)
    # From the gateway that started this process, never from a browser.
    job: ExportJob | ReconcileJob = pickle.load(sys.stdin.buffer)  # noqa: S301
    return asyncio.run(job.run())


if __name__ == "__main__":
    sys.exit(main())
