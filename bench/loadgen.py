"""Open-loop ``pay`` load in a process of its own: request *i* starts at ``start + i / rate``
whether or not the earlier ones were answered, so a slow server meets the same
arrivals a fast one does (a closed loop would slow down with it and hide its queue).

    python -m bench.loadgen --base http://127.0.0.1:8080 --rate 500 --seconds 5 \\
        --first 1000000 --out /tmp/sent.json

txn_ids are ``first``, ``first + 1``, ... Writes (or prints, without ``--out``) JSON:

- ``sent``: ``{txn_id: time}``, ``time.monotonic()`` just before the request went out
  (CLOCK_MONOTONIC: the receiver's arrival times are on the same clock);
- ``answered``: ``{txn_id: time}`` when its answer was read, the same clock;
- ``not_zero``: ``{txn_id: what}`` for every answer that was not ``<result>0</result>``
  (another result, an HTTP status, a connection error), ``not_zero_counts`` by kind;
- ``answer_ms_p50`` / ``answer_ms_p99``: the pay's own round trip;
- ``lag_ms_p99`` / ``lag_ms_max``: how late requests left against their schedule, so a
  generator that could not keep up on a busy machine shows in the figures;
- ``cpu_percent``: the generator's own CPU while it ran, % of one core.

With ``--out``, the line ``started`` on stdout says the schedule has begun (imports and
start-up done), for a caller that measures the load's window.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import uvloop

_RESULT = re.compile(r"<result>(-?[0-9]+)</result>")
PAY_PARAMS = {"command": "pay", "txn_date": "20261129120000", "account": "42", "sum": "10.00"}


@dataclass
class Outcome:
    sent: dict[str, float] = field(default_factory=dict)
    answered: dict[str, float] = field(default_factory=dict)
    not_zero: dict[str, str] = field(default_factory=dict)
    answer_ms: list[float] = field(default_factory=list)
    lag_ms: list[float] = field(default_factory=list)
    cpu_percent: float = float("nan")

    def summary(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "answered": self.answered,
            "not_zero": self.not_zero,
            "not_zero_counts": dict(Counter(self.not_zero.values())),
            "answer_ms_p50": percentile(self.answer_ms, 0.50),
            "answer_ms_p99": percentile(self.answer_ms, 0.99),
            "lag_ms_p99": percentile(self.lag_ms, 0.99),
            "lag_ms_max": max(self.lag_ms, default=0.0),
            "cpu_percent": self.cpu_percent,
        }


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def one(
    session: aiohttp.ClientSession, url: str, txn_id: int, due: float, outcome: Outcome
) -> None:
    key = str(txn_id)
    started = time.monotonic()
    outcome.sent[key] = started
    outcome.lag_ms.append((started - due) * 1000)
    try:
        async with session.get(url, params={**PAY_PARAMS, "txn_id": key}) as response:
            text = await response.text()
            status = response.status
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        outcome.not_zero[key] = f"error: {type(exc).__name__}"
        return
    answered = time.monotonic()
    outcome.answered[key] = answered
    outcome.answer_ms.append((answered - started) * 1000)
    found = _RESULT.search(text)
    if status != 200:
        outcome.not_zero[key] = f"HTTP {status}"
    elif found is None:
        outcome.not_zero[key] = "no result"
    elif found.group(1) != "0":
        outcome.not_zero[key] = f"result {found.group(1)}"


async def run(
    base: str, rate: float, seconds: float, first: int, announce: bool = False
) -> Outcome:
    outcome = Outcome()
    url = base.rstrip("/") + "/payment"
    count = int(rate * seconds)
    # No connection limit: an open loop must not queue in the client. Connections
    # are reused once answered, so their number is what is in flight at the server.
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        tasks: set[asyncio.Task[None]] = set()
        if announce:
            sys.stdout.write("started\n")
            sys.stdout.flush()
        cpu_started = time.process_time()
        start = time.monotonic()
        sent = 0
        while sent < count:
            now = time.monotonic()
            # Every request whose time has come starts now: at 1,000/s one wake-up may
            # find several due, and sleeping per request would drift behind.
            while sent < count and start + sent / rate <= now:
                task = asyncio.create_task(
                    one(session, url, first + sent, start + sent / rate, outcome)
                )
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                sent += 1
            if sent < count:
                await asyncio.sleep(max(0.0, start + sent / rate - time.monotonic()))
        if tasks:
            await asyncio.wait(tasks)
        outcome.cpu_percent = round(
            100 * (time.process_time() - cpu_started) / (time.monotonic() - start), 1
        )
    return outcome


def main() -> None:
    parser = argparse.ArgumentParser(description="open-loop pay load generator")
    parser.add_argument("--base", required=True, help="the server's base URL")
    parser.add_argument("--rate", type=float, required=True, help="pays per second")
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--first", type=int, required=True, help="the first txn_id")
    parser.add_argument("--out", type=Path, help="write the JSON here instead of stdout")
    args = parser.parse_args()
    if args.rate <= 0 or args.seconds <= 0 or args.first < 1:
        parser.error("--rate and --seconds must be positive, --first at least 1")
    announce = args.out is not None
    outcome = uvloop.run(run(args.base, args.rate, args.seconds, args.first, announce))
    text = json.dumps(outcome.summary())
    if args.out is None:
        sys.stdout.write(text + "\n")
    else:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
