"""Hostile callers, for the tests of QIWI's listener (tests that start real gateway
processes: test_intake_limits, test_log_flood, test_operator_endpoints) and for the
figures of docs/security.md.

Everything runs on loopback. Hostile callers come from other loopback addresses
(127.0.0.2 and up: Linux routes all of 127/8 to lo) so that per-address caps and
allow-lists tell them from QIWI, which calls from 127.0.0.1. Floods run in a
process of their own (``python -m tests.support.intake``), at the lowest CPU
priority, so that the latency a test measures is the gateway's, not the test's
own event loop's nor the flood's. ``tests.support.hardening_figures`` uses the same
pieces for docs/security.md's figures.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import sys
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from tests.support.qiwi import QIWI, Payer

# Where ``python -m tests.support.intake`` finds the tests package, wherever the caller runs.
_ROOT = str(Path(__file__).resolve().parents[2])


def attacker(number: int) -> str:
    """The loopback address of hostile caller ``number`` (0, 1, ...)."""
    return f"127.0.0.{2 + number}"


async def compare_latency(
    base: str, start_load: Callable[[int], Any], *, slices: int = 3, idle_pays: int = 60
) -> tuple[list[float], list[float], list[dict[str, int]]]:
    """Pay latency while idle and under a load, in alternating slices (idle, load,
    idle, load, ...) so that a machine shared with others drifts under both alike.
    ``start_load(n)`` starts slice n's load (a process from ``spawn``); pays run
    until it ends. Returns idle latencies, loaded latencies and each load's counts."""
    idle: list[float] = []
    loaded: list[float] = []
    counts = []
    next_txn = 1
    for number in range(slices):
        quiet = Payer(base, first_txn=next_txn)
        await quiet.run(idle_pays)
        load = await start_load(number)
        busy = Payer(base, first_txn=next_txn + idle_pays)
        stop = asyncio.Event()
        paying = asyncio.create_task(busy.run_until(stop))
        counts.append(await result_of(load))
        stop.set()
        await paying
        assert set(quiet.answers) == set(busy.answers) == {"0"}, (quiet.answers, busy.answers)
        idle += quiet.latencies
        loaded += busy.latencies
        next_txn += 100_000
    return idle, loaded, counts


async def log_table_bytes(dsn: str) -> int:
    connection = await asyncpg.connect(dsn)
    try:
        size: int = await connection.fetchval("SELECT pg_total_relation_size('qiwi_http_log')")
    finally:
        await connection.close()
    return size


# --- hostile callers, in a process of their own ----------------------------------------


def big_refused_request(headers: int, header_bytes: int, body_bytes: int) -> bytes:
    """A POST /payment without credentials: ``headers`` headers of ``header_bytes``."""
    lines = [b"POST /payment?command=pay HTTP/1.1", b"Host: qiwi-gw.test"]
    # Random, so that PostgreSQL cannot compress what it stores.
    lines += [b"X-Pad-%d: %s" % (n, _noise(header_bytes)) for n in range(headers)]
    lines += [b"Content-Type: application/x-www-form-urlencoded"]
    lines += [b"Content-Length: %d" % body_bytes, b"", b""]
    return b"\r\n".join(lines) + b"x=" + _noise(body_bytes - 2)


def _noise(size: int) -> bytes:
    return base64.b64encode(os.urandom(size))[:size]


async def refused_flood(
    port: int,
    *,
    clients: int,
    requests: int,
    seconds: float,
    headers: int,
    header_bytes: int,
    body_bytes: int,
    rate: float | None = None,
    source: int = 0,
) -> dict[str, int]:
    """``clients`` callers without credentials, each from its own address (from
    ``attacker(source)`` on), sending
    big requests back to back (or ``rate`` a second in all) until ``requests`` are
    answered or ``seconds`` pass; a connection the server keeps open is used again.
    Returns the answers' counts."""
    request = big_refused_request(headers, header_bytes, body_bytes)
    started = time.monotonic()
    deadline = started + seconds
    sent = [0]
    counts: dict[str, int] = {}
    budget = [requests]

    def count(key: str) -> None:
        counts[key] = counts.get(key, 0) + 1

    loop = asyncio.get_running_loop()

    async def caller(number: int) -> None:
        connection: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        while time.monotonic() < deadline and budget[0] > 0:
            budget[0] -= 1
            sent[0] += 1
            if rate is not None:
                # Open loop: request n leaves at n / rate seconds, late or not.
                await asyncio.sleep(max(0.0, started + sent[0] / rate - time.monotonic()))
            if connection is None:
                try:
                    connection = await asyncio.open_connection(
                        QIWI, port, local_addr=(attacker(source + number), 0)
                    )
                except OSError:
                    count("connect_error")
                    continue
            reader, writer = connection
            try:
                writer.write(request)
                # A held connection (the address shut out) answers nothing: give up
                # when the flood's time is up.
                async with asyncio.timeout_at(loop.time() + max(0.0, deadline - time.monotonic())):
                    with suppress(ConnectionError):
                        await writer.drain()
                    status, kept = await _read_answer(reader)
                count(status)
            except (ConnectionError, asyncio.IncompleteReadError, TimeoutError, ValueError):
                count("dropped")
                kept = False
            if not kept:
                writer.close()
                with suppress(ConnectionError):
                    await writer.wait_closed()
                connection = None
        if connection is not None:
            connection[1].close()

    await asyncio.gather(*(caller(number) for number in range(clients)))
    return counts


async def _read_answer(reader: asyncio.StreamReader) -> tuple[str, bool]:
    """The status of one answer, read whole, and whether the connection stays open."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = lines[0].split(" ")[1]
    fields = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
    await reader.readexactly(int(fields.get("content-length", "0")))
    return status, fields.get("connection", "").lower() != "close" and lines[0].startswith(
        "HTTP/1.1"
    )


async def hold_connections(
    port: int, *, addresses: int, per_address: int, seconds: float, partial: str = ""
) -> dict[str, int]:
    """Open ``per_address`` connections from each of ``addresses`` addresses, send
    ``partial`` on each (a request's start, never finished) and hold them for
    ``seconds``; returns how many opened and how many the server closed early."""
    opened: list[asyncio.StreamReader] = []
    writers: list[asyncio.StreamWriter] = []
    failed = 0
    for number in range(addresses):
        for _ in range(per_address):
            try:
                reader, writer = await asyncio.open_connection(
                    QIWI, port, local_addr=(attacker(number), 0)
                )
            except OSError:
                failed += 1
                continue
            if partial:
                writer.write(partial.encode())
            opened.append(reader)
            writers.append(writer)
    print(HELD, flush=True)  # for ``held``: the connections are open now
    await asyncio.sleep(seconds)  # holding them is the point
    closed = sum(await asyncio.gather(*(_closed(reader) for reader in opened)))
    for writer in writers:
        writer.close()
    return {"opened": len(opened), "failed": failed, "closed_by_server": closed}


async def _closed(reader: asyncio.StreamReader) -> bool:
    """Whether the server has closed this connection (after an answer or not)."""
    try:
        async with asyncio.timeout(0.05):
            while await reader.read(65536):
                pass
    except TimeoutError:
        return False
    except ConnectionError:
        return True
    return True


async def scrape_storm(
    url: str, *, clients: int, seconds: float, auth: str | None, source: int = 0
) -> dict[str, int]:
    """``clients`` scrapers of ``url`` from ``attacker(source)``, back to back."""
    deadline = time.monotonic() + seconds
    counts: dict[str, int] = {}
    headers = {"Authorization": auth} if auth else {}
    connector = aiohttp.TCPConnector(limit=clients, local_addr=(attacker(source), 0))
    async with aiohttp.ClientSession(connector=connector) as session:

        async def scraper() -> None:
            while (left := deadline - time.monotonic()) > 0:
                # A held connection (the address shut out) answers nothing: give up
                # when the storm's time is up.
                timeout = aiohttp.ClientTimeout(total=left)
                try:
                    async with session.get(url, headers=headers, timeout=timeout) as response:
                        await response.read()
                        key = str(response.status)
                except (aiohttp.ClientError, TimeoutError) as exc:
                    key = type(exc).__name__
                counts[key] = counts.get(key, 0) + 1

        await asyncio.gather(*(scraper() for _ in range(clients)))
    return counts


async def spawn(kind: str, **arguments: Any) -> asyncio.subprocess.Process:
    """Start one of the floods above in a process of its own; its counts come as
    JSON on its stdout."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.support.intake",
        kind,
        json.dumps(arguments),
        stdout=asyncio.subprocess.PIPE,
        cwd=_ROOT,
    )


HELD = "held"


async def held(process: asyncio.subprocess.Process) -> None:
    """Until ``hold_connections`` in ``process`` has opened all its connections."""
    assert process.stdout is not None
    async with asyncio.timeout(60):
        line = await process.stdout.readline()
    assert line.decode().strip() == HELD, line


async def result_of(process: asyncio.subprocess.Process) -> dict[str, int]:
    stdout, _ = await process.communicate()
    counts: dict[str, int] = json.loads(stdout.splitlines()[-1])
    return counts


FLOODS: dict[str, Callable[..., Any]] = {
    "refused_flood": refused_flood,
    "hold_connections": hold_connections,
    "scrape_storm": scrape_storm,
}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.support.intake")
    parser.add_argument("kind", choices=sorted(FLOODS))
    parser.add_argument("arguments", help="the flood's keyword arguments, as JSON")
    args = parser.parse_args()
    # On this machine the caller competes with the gateway for the same cores; on
    # a real one it is elsewhere. Lowest priority: what the gateway's latency then
    # shows is the gateway's work, not the caller's.
    os.nice(19)
    counts = asyncio.run(FLOODS[args.kind](**json.loads(args.arguments)))
    print(json.dumps(counts))


if __name__ == "__main__":
    main()
