"""Webhook latency: from sending a ``pay`` to the webhook's arrival at a local backend.

Starts what it needs: the database (``DATABASE_URL``, else an embedded one in a
temporary directory), the gateway as a real process, a webhook receiver in this
process, and an open-loop load generator (requests start on schedule, whether or
not earlier ones have been answered). Prints p50/p90/p99 per rate.

    python bench/latency.py --rates 100 500 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import asyncpg
from aiohttp import web
from aiohttp.test_utils import unused_port


@dataclass
class Receiver:
    arrived: dict[str, float] = field(default_factory=dict)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.arrived.setdefault(body["code"], time.perf_counter())
        async with self.changed:
            self.changed.notify_all()
        return web.Response(text="ok")

    async def wait_for(self, codes: set[str]) -> None:
        async with self.changed:
            await self.changed.wait_for(lambda: codes <= self.arrived.keys())


@contextmanager
def database() -> Iterator[str]:
    configured = os.environ.get("DATABASE_URL")
    if configured:
        yield configured
        return
    from pgserver.postgres_server import get_server

    with tempfile.TemporaryDirectory(prefix="qiwi-gw-bench-") as directory:
        server = get_server(Path(directory) / "pgdata", cleanup_mode="delete")
        try:
            yield server.get_uri()
        finally:
            server.cleanup()


@asynccontextmanager
async def receiver_server(receiver: Receiver) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = unused_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield f"http://127.0.0.1:{port}/hook"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def gateway(dsn: str, webhook_url: str) -> AsyncIterator[str]:
    port = unused_port()
    env = {
        **os.environ,
        "DATABASE_URL": dsn,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "QIWI_WEBHOOK_URL": webhook_url,
        "LOG_FORMAT": "text",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "qiwi_gw",
        "serve",
        env=env,
        stderr=asyncio.subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(600):
                try:
                    async with session.get(f"{base}/readyz") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
            else:
                raise RuntimeError("gateway did not become ready")
        yield base
    finally:
        process.terminate()
        await process.wait()


async def open_loop(
    base: str, rate: float, seconds: float, first_txn: int
) -> tuple[dict[str, float], list[float]]:
    """Send ``rate`` pays a second for ``seconds``; return send times and answer times."""
    sent: dict[str, float] = {}
    answered: list[float] = []
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(txn_id: int) -> None:
            params = {
                "command": "pay",
                "txn_id": str(txn_id),
                "txn_date": "20261129120000",
                "account": "42",
                "sum": "10.00",
            }
            started = time.perf_counter()
            sent[str(txn_id)] = started
            async with session.get(f"{base}/payment", params=params) as response:
                text = await response.text()
            if "<result>0</result>" not in text:
                raise RuntimeError(f"pay {txn_id} failed: {text}")
            answered.append(time.perf_counter() - started)

        tasks = []
        count = int(rate * seconds)
        start = time.perf_counter()
        for i in range(count):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(first_txn + i)))
        await asyncio.gather(*tasks)
    return sent, answered


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def measure(rates: list[float], seconds: float) -> list[dict[str, float]]:
    results = []
    with database() as dsn:
        receiver = Receiver()
        async with receiver_server(receiver) as hook, gateway(dsn, hook) as base:
            first_txn = 1
            # Warm up connections and code paths; not measured.
            await open_loop(base, 50, 1, 10**12)
            for rate in rates:
                sent, answered = await open_loop(base, rate, seconds, first_txn)
                async with asyncio.timeout(120):
                    await receiver.wait_for(set(sent))
                latencies = [(receiver.arrived[code] - t) * 1000 for code, t in sent.items()]
                answers = [a * 1000 for a in answered]
                results.append(
                    {
                        "rate": rate,
                        "payments": len(sent),
                        "webhook_p50_ms": statistics.median(latencies),
                        "webhook_p90_ms": percentile(latencies, 0.90),
                        "webhook_p99_ms": percentile(latencies, 0.99),
                        "webhook_max_ms": max(latencies),
                        "pay_answer_p50_ms": statistics.median(answers),
                        "pay_answer_p99_ms": percentile(answers, 0.99),
                    }
                )
                first_txn += len(sent)
        async with asyncio.timeout(10):
            connection = await asyncpg.connect(dsn)
            pending = await connection.fetchval(
                "SELECT count(*) FROM qiwi_transaction WHERE status = 0"
            )
            await connection.close()
        if pending:
            raise RuntimeError(f"{pending} payments left undelivered")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", type=float, nargs="+", default=[100.0, 500.0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    results = asyncio.run(measure(args.rates, args.seconds))
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{'rate/s':>7} {'n':>6} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8}"
          f" {'answer p50':>11} {'answer p99':>11}")
    for r in results:
        print(
            f"{r['rate']:>7.0f} {r['payments']:>6.0f} {r['webhook_p50_ms']:>8.2f}"
            f" {r['webhook_p90_ms']:>8.2f} {r['webhook_p99_ms']:>8.2f} {r['webhook_max_ms']:>8.2f}"
            f" {r['pay_answer_p50_ms']:>11.2f} {r['pay_answer_p99_ms']:>11.2f}"
        )


if __name__ == "__main__":
    main()
