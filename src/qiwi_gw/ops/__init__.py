"""The operator's commands: ``qiwi-gw status|pending|attempts|resend|export|reconcile|prune-log``.

Each module adds its sub-command to the parser and gives a ``prepare`` that checks
the arguments (a bad one is a ``BadArgumentError``, raised before any database is
touched) and returns the job to run on a connection.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

from qiwi_gw.ops import export, history, pending, prune, reconcile, resend, status
from qiwi_gw.ops.arguments import Commands
from qiwi_gw.ops.common import CURRENT_COMMANDS, READ_ONLY_COMMANDS, Job, connect
from qiwi_gw.settings import Settings

MODULES = (status, pending, history, resend, export, reconcile, prune)


def add_parsers(commands: Commands) -> None:
    for module in MODULES:
        module.add_parser(commands)


def is_operation(args: argparse.Namespace) -> bool:
    return hasattr(args, "prepare")


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Check the arguments, then run the command on the configured database."""
    job: Job = args.prepare(args)
    with _database(settings) as dsn:
        return asyncio.run(_run(job, settings, dsn, args.command))


@contextmanager
def _database(settings: Settings) -> Iterator[str]:
    """``server.database``, imported only when the embedded server is wanted: the
    module brings in the whole web application, 0.5 s of imports before a quick
    ``status`` could answer."""
    if settings.database.dsn is not None:
        yield settings.database.dsn
        return
    from qiwi_gw import server

    with server.database(settings) as dsn:
        yield dsn


async def _run(job: Job, settings: Settings, dsn: str, command: str) -> int:
    async with connect(
        settings.database,
        dsn,
        read_only=command in READ_ONLY_COMMANDS,
        current=command in CURRENT_COMMANDS,
    ) as connection:
        return await job(connection, settings)
