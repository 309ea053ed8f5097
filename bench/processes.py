"""The bench's processes: the gateway, and the bench's own modules (floor, receiver), each
started as a real process on a port of its own and ready once ``/readyz`` answers."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from aiohttp.test_utils import unused_port
from tests.support.gateway import until_ready

# Where ``python -m bench.<module>`` finds the bench package, wherever the caller runs.
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Process:
    base: str
    pid: int


async def wait_http(url: str, process: asyncio.subprocess.Process) -> None:
    if not await until_ready(url, process, within=120, interval=0.1):
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
    """``qiwi-gw serve`` on ``dsn``, as deployed (uvloop, its default settings)."""
    port = unused_port()
    env = {**os.environ, "DATABASE_URL": dsn, "HOST": "127.0.0.1", "PORT": str(port)}
    env["QIWI_CONSOLE_PORT"] = "0"  # several gateways at once: none takes the operator port
    if webhook_url:
        env["QIWI_WEBHOOK_URL"] = webhook_url
    async with _serving(["-m", "qiwi_gw", "serve"], port, env) as process:
        yield process


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
