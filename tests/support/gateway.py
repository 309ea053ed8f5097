"""The gateway as a real process (``python -m qiwi_gw serve``), ready once ``/readyz``
answers 200: ``Gateway``, for the chaos scenarios (fast retries, killed and restarted) and
the listener's tests (a console port, a descriptor limit, another source tree) and the
bench (the gateway's own settings, its output discarded or kept) alike."""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import sys
import tempfile
import time
import weakref
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any, Protocol

import aiohttp
from aiohttp.test_utils import unused_port

from tests.support.qiwi import QIWI


async def until_ready(
    url: str, process: asyncio.subprocess.Process, *, within: float, interval: float = 0.05
) -> bool:
    """Whether ``url`` answered 200 before ``process`` exited; TimeoutError after ``within``
    seconds of neither."""
    async with aiohttp.ClientSession() as session, asyncio.timeout(within):
        while process.returncode is None:
            with suppress(aiohttp.ClientError):
                async with session.get(url) as response:
                    if response.status == 200:
                        return True
            await asyncio.sleep(interval)  # another process's state: there is no event
    return False


# Retries and sweeps fast enough for a scenario to see several within seconds.
FAST = {
    "QIWI_WEBHOOK_RETRY_MIN": "0.2",
    "QIWI_WEBHOOK_RETRY_MAX": "2",
    "QIWI_SWEEP_INTERVAL": "1",
    "QIWI_DB_TIMEOUT": "2",
}

# The gateway's own defaults, not the chaos harness's fast ones: the delivery policy's
# findings were made with them.
DEFAULTS = {
    "QIWI_WEBHOOK_RETRY_MIN": "1",
    "QIWI_WEBHOOK_RETRY_MAX": "600",
    "QIWI_SWEEP_INTERVAL": "5",
    "QIWI_DB_TIMEOUT": "5",
}

# The listener's tests deliver nothing; only the database's patience is theirs to set.
INTAKE = {"QIWI_DB_TIMEOUT": "5"}

# Nothing set: every setting as a deployment that sets none gets it, which the bench measures.
UNTUNED: Mapping[str, str] = {}


class GatewayExitedError(AssertionError):
    """The gateway exited before ``/readyz`` answered 200; the message is its log's tail."""


class Gateway:
    """``qiwi-gw serve`` as a process: started, waited for, killed, restarted; its stderr
    across restarts in ``log``.

    ``tuning`` is the set of settings the test's timing rests on (``FAST``, ``DEFAULTS``,
    ``INTAKE``, or ``UNTUNED``); ``env`` overrides it. Without ``console`` the operator
    listener is off, as several gateways run at once and its fixed default port would
    collide. ``nofile`` sets the descriptor limit, ``src`` runs another source tree. ``log``
    is where its stderr goes: a temporary file of its own unless given (``Path(os.devnull)``
    discards it, and ``log_text`` is then empty).
    """

    def __init__(
        self,
        dsn: str,
        webhook_url: str | None = None,
        *,
        tuning: Mapping[str, str] = FAST,
        host: str = "127.0.0.1",
        console: bool = False,
        nofile: int | None = None,
        src: str | None = None,
        log: Path | None = None,
        **env: str,
    ) -> None:
        self.host = host
        self.port = unused_port()
        self.console_port = unused_port() if console else 0
        self.nofile = nofile
        self.env = {
            **os.environ,
            "DATABASE_URL": dsn,
            "HOST": host,
            "PORT": str(self.port),
            "QIWI_CONSOLE_PORT": str(self.console_port),
            **({"QIWI_WEBHOOK_URL": webhook_url} if webhook_url is not None else {}),
            **tuning,
            **env,
        }
        if src is not None:
            self.env["PYTHONPATH"] = src
        self.process: asyncio.subprocess.Process | None = None
        if log is None:
            # Kept for a failing test's message and for the tests that read the log lines.
            handle, path = tempfile.mkstemp(prefix="qiwi-gw-", suffix=".log")
            os.close(handle)
            log = Path(path)
            # Gone with the Gateway: hundreds of test runs' logs piled up in /tmp.
            weakref.finalize(self, log.unlink, missing_ok=True)
        self.log = log

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def console(self) -> str:
        assert self.console_port, "started without console=True"
        return f"http://127.0.0.1:{self.console_port}"

    def _limit(self) -> None:
        if self.nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (self.nofile, self.nofile))

    async def start(self, within: float = 60) -> None:
        """Started, and ready within ``within`` seconds; ``GatewayExitedError`` if it exits
        first. Only a first start moves to another port when its own was taken (other tests
        pick ports beside these): a restart must come back on the port it had, as a
        deployment's does after a crash, and a failure to is the test's to see."""
        first = self.process is None
        for _attempt in range(3 if first else 1):
            logged = self.log.stat().st_size if self.log.exists() else 0
            with self.log.open("ab") as log:
                self.process = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "qiwi_gw",
                    "serve",
                    env=self.env,
                    stderr=log,
                    preexec_fn=self._limit if self.nofile is not None else None,  # only setrlimit
                )
            if await until_ready(f"{self.base}/readyz", self.process, within=within):
                return
            with self.log.open("rb") as log:
                log.seek(logged)
                if b"cannot listen on" not in log.read():
                    break
            self.port = unused_port()
            self.env["PORT"] = str(self.port)
            if self.console_port:
                self.console_port = unused_port()
                self.env["QIWI_CONSOLE_PORT"] = str(self.console_port)
        raise GatewayExitedError(self.log_text()[-4000:])

    async def wait_ready(self, within: float = 60) -> float:
        """Seconds until /readyz answers 200."""
        started = time.monotonic()
        assert self.process is not None
        if not await until_ready(f"{self.base}/readyz", self.process, within=within):
            raise GatewayExitedError(self.log_text()[-4000:])
        return time.monotonic() - started

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)

    async def terminate(self) -> int:
        """SIGTERM, and the exit code once the gateway has shut down."""
        assert self.process is not None
        if self.process.returncode is None:
            self.process.terminate()
        async with asyncio.timeout(60):
            return await self.process.wait()

    async def wait(self) -> int:
        assert self.process is not None
        return await self.process.wait()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def rss_kb(self) -> int:
        status = Path(f"/proc/{self.pid}/status").read_text()
        line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
        return int(line.split()[1])

    def open_descriptors(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))


@asynccontextmanager
async def gateway(dsn: str, **options: Any) -> AsyncIterator[Gateway]:
    """A ``Gateway`` for the listener's tests: QIWI's address, the console on a port of its
    own, the listener's tuning."""
    process = Gateway(dsn, host=QIWI, console=True, tuning=INTAKE, **options)
    await process.start()
    try:
        yield process
    finally:
        await process.terminate()


class Receiving(Protocol):
    @property
    def url(self) -> str: ...


@asynccontextmanager
async def default_gateway(dsn: str, backend: Receiving, **env: str) -> AsyncIterator[Gateway]:
    """A ``Gateway`` with the gateway's own defaults, delivering to ``backend``."""
    process = Gateway(dsn, backend.url, tuning=DEFAULTS | env)
    await process.start()
    try:
        yield process
    finally:
        await process.terminate()
