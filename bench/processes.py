"""The bench's processes: the gateway (``tests.support.gateway.Gateway``), and the bench's
own modules (floor, receiver), each started as a real process on a port of its own and
ready once ``/readyz`` answers."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from aiohttp.test_utils import unused_port
from tests.support.gateway import UNTUNED, Gateway, GatewayExitedError, until_ready

# Where ``python -m bench.<module>`` finds the bench package, wherever the caller runs.
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Process:
    base: str
    pid: int


# Longer than the tests wait: the bench runs on a machine its own load keeps busy.
READY_WITHIN = 120


async def wait_http(url: str, process: asyncio.subprocess.Process) -> None:
    if not await until_ready(url, process, within=READY_WITHIN, interval=0.1):
        raise RuntimeError(f"process behind {url} exited")


@asynccontextmanager
async def _serving(
    arguments: list[str], port: int, env: dict[str, str] | None = None
) -> AsyncIterator[Process]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, *arguments, env=env, cwd=ROOT, stderr=asyncio.subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    try:
        await wait_http(f"{base}/readyz", process)
        yield Process(base, process.pid)
    finally:
        if process.returncode is None:
            process.terminate()
        await process.wait()


@asynccontextmanager
async def gateway(dsn: str, webhook_url: str | None) -> AsyncIterator[Process]:
    """``qiwi-gw serve`` on ``dsn``, as deployed (uvloop, its default settings), its log
    discarded as the bench's other processes' are."""
    process = Gateway(dsn, webhook_url or None, tuning=UNTUNED, log=Path(os.devnull))
    try:
        try:
            await process.start(within=READY_WITHIN)
        except GatewayExitedError:
            raise RuntimeError(f"the gateway behind {process.base} exited") from None
        yield Process(process.base, process.pid)
    finally:
        if process.process is not None:
            await process.terminate()


@asynccontextmanager
async def bench_module(module: str, *arguments: str) -> AsyncIterator[Process]:
    """``python -m bench.<module> --port P <arguments>``."""
    port = unused_port()
    async with _serving(
        ["-m", f"bench.{module}", "--port", str(port), *arguments], port
    ) as process:
        yield process


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")
