"""The gateway as a real process (``python -m qiwi_gw serve``), ready once ``/readyz``
answers 200: ``Gateway`` for the chaos scenarios (fast retries, killed and restarted),
``GatewayProcess`` for the listener's tests (a console port, a descriptor limit, another
source tree). The bench starts its own through ``until_ready`` as well."""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator
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


class Gateway:
    """``qiwi-gw serve`` with fast retries, for the chaos scenarios: killed, restarted, waited
    for; its stderr across restarts in ``log``."""

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
        assert self.process is not None
        if not await until_ready(f"{self.base}/readyz", self.process, within=within):
            raise AssertionError(self.log_text())
        return time.monotonic() - started

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


class GatewayProcess:
    """``qiwi-gw serve`` as a process, optionally under a low descriptor limit."""

    def __init__(
        self, dsn: str, *, nofile: int | None = None, src: str | None = None, **env: str
    ) -> None:
        self.port = unused_port()
        self.console_port = unused_port()
        self.nofile = nofile
        self.env = {
            **os.environ,
            "DATABASE_URL": dsn,
            "HOST": QIWI,
            "PORT": str(self.port),
            "QIWI_CONSOLE_PORT": str(self.console_port),
            "QIWI_DB_TIMEOUT": "5",
            **env,
        }
        if src is not None:
            self.env["PYTHONPATH"] = src
        self.process: asyncio.subprocess.Process | None = None
        handle, path = tempfile.mkstemp(prefix="qiwi-gw-intake-", suffix=".log")
        os.close(handle)
        self.log = Path(path)

    @property
    def base(self) -> str:
        return f"http://{QIWI}:{self.port}"

    @property
    def console(self) -> str:
        return f"http://127.0.0.1:{self.console_port}"

    def _limit(self) -> None:
        if self.nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (self.nofile, self.nofile))

    async def start(self) -> None:
        for _attempt in range(3):
            if await self._started():
                return
            # The port picked was taken meanwhile (other tests run beside these).
            assert "cannot listen on" in self.log_text(), self.log_text()
            self.port, self.console_port = unused_port(), unused_port()
            self.env.update(PORT=str(self.port), QIWI_CONSOLE_PORT=str(self.console_port))
        raise AssertionError(self.log_text())

    async def _started(self) -> bool:
        with self.log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "qiwi_gw",
                "serve",
                env=self.env,
                stderr=log,
                preexec_fn=self._limit,  # only setrlimit, before exec
            )
        return await until_ready(f"{self.base}/readyz", self.process, within=60)

    async def stop(self) -> int:
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(60):
            return await self.process.wait()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def rss_kb(self) -> int:
        assert self.process is not None
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
        return int(line.split()[1])

    def open_descriptors(self) -> int:
        assert self.process is not None
        return len(os.listdir(f"/proc/{self.process.pid}/fd"))


@asynccontextmanager
async def gateway(dsn: str, **options: Any) -> AsyncIterator[GatewayProcess]:
    process = GatewayProcess(dsn, **options)
    await process.start()
    try:
        yield process
    finally:
        await process.stop()


# The gateway's own defaults, not the chaos harness's fast ones: the findings
# were made with them.
DEFAULTS = {
    "QIWI_WEBHOOK_RETRY_MIN": "1",
    "QIWI_WEBHOOK_RETRY_MAX": "600",
    "QIWI_SWEEP_INTERVAL": "5",
    "QIWI_DB_TIMEOUT": "5",
    "QIWI_CONSOLE_PORT": "0",
}


class Receiving(Protocol):
    @property
    def url(self) -> str: ...


@asynccontextmanager
async def default_gateway(dsn: str, backend: Receiving, **env: str) -> AsyncIterator[Gateway]:
    """A ``Gateway`` with the gateway's own defaults, delivering to ``backend``."""
    process = Gateway(dsn, backend.url, **{**DEFAULTS, **env})
    await process.start()
    try:
        yield process
    finally:
        await process.terminate()
