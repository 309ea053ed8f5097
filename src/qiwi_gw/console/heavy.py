"""Heavy operations (a CSV export, a registry comparison): one at a time, each in a
child process (``worker``), so that ``/payment`` never waits behind them.

Another operator asking while one runs gets a "busy" page at once rather than a
queue: two exports at once only make both slower, and the database with them.
"""

from __future__ import annotations

import asyncio
import logging
import pickle
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from aiohttp import web

from qiwi_gw.console.worker import UNREADABLE, ExportJob, Outcome, ReconcileJob

logger = logging.getLogger(__name__)

WORKER = (sys.executable, "-m", "qiwi_gw.console.worker")
# Bytes of CSV read from the worker and sent at a time.
CHUNK = 64 * 1024


class Gate:
    """At most one heavy operation at a time."""

    def __init__(self) -> None:
        self._semaphore = asyncio.Semaphore(1)

    @property
    def busy(self) -> bool:
        return self._semaphore.locked()

    @asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        async with self._semaphore:
            yield


class ExportFailedError(Exception):
    """The worker ended before writing a byte: the message says why, in one line."""


async def _start(job: ExportJob | ReconcileJob) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        *WORKER,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdin is not None
    process.stdin.write(pickle.dumps(job))
    await process.stdin.drain()
    process.stdin.close()
    return process


async def _stop(process: asyncio.subprocess.Process) -> None:
    """The worker ended, or killed: its browser went away, or the gateway stops."""
    if process.returncode is None:
        with suppress(ProcessLookupError):
            process.kill()
        await process.wait()


async def _log_lines(stream: asyncio.StreamReader | None, what: str) -> list[str]:
    """The worker's notes (where it read from, what it wrote, what failed), logged."""
    lines: list[str] = []
    if stream is None:
        return lines
    async for raw in stream:
        line = raw.decode(errors="replace").rstrip()
        if line:
            lines.append(line)
            logger.info("console %s: %s", what, line[:500])
    return lines


async def stream_export(request: web.Request, job: ExportJob, filename: str) -> web.StreamResponse:
    """The worker's CSV, sent as it comes. Raises ``ExportFailedError`` when the
    worker fails before writing anything (the database): a page can still say why."""
    process = await _start(job)
    notes = asyncio.create_task(_log_lines(process.stderr, "export"))
    try:
        assert process.stdout is not None
        chunk = await process.stdout.read(CHUNK)
        if not chunk:
            code = await process.wait()
            lines = await notes
            reason = lines[-1].removeprefix("qiwi-gw: ") if lines else f"exit code {code}"
            raise ExportFailedError(reason[:300])
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/csv; charset=utf-8",
                "Content-Disposition": f'attachment; filename="{filename}"',
            }
        )
        await response.prepare(request)
        try:
            while chunk:
                await response.write(chunk)
                chunk = await process.stdout.read(CHUNK)
        except ConnectionResetError:
            # The browser went away (aiohttp's error for it is one of these): not the
            # database's failure, nothing to answer; the worker is stopped below.
            logger.info("console export: the browser closed the download")
            return response
        code = await process.wait()
        await notes
        if code != 0:
            # Half a registry must not look like a whole one: no end of the chunked body,
            # the browser reports the download as failed.
            logger.warning("console export: worker failed (exit code %d): download cut", code)
            if request.transport is not None:
                request.transport.close()
            return response
        await response.write_eof()
        return response
    finally:
        await _stop(process)
        notes.cancel()
        with suppress(asyncio.CancelledError):
            await notes


async def reconcile(job: ReconcileJob) -> Outcome:
    process = await _start(job)
    try:
        out, err = await process.communicate()
    finally:
        await _stop(process)
    for line in err.decode(errors="replace").splitlines():
        if line.strip():
            logger.info("console reconcile: %s", line[:500])
    if process.returncode == 0 and out:
        try:
            outcome = pickle.loads(out)  # noqa: S301 - our own child's answer
        except (pickle.UnpicklingError, EOFError, AttributeError, ValueError) as exc:
            logger.warning("console reconcile: unreadable answer from the worker: %s", exc)
        else:
            if isinstance(outcome, Outcome):
                return outcome
    logger.warning("console reconcile: worker failed (exit code %s)", process.returncode)
    return Outcome(UNREADABLE, problem=f"{job.name}: could not read the file")
