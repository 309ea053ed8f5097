"""Webhook latency alone: from sending a ``pay`` to the webhook's arrival at a local backend.

The same measurement as ``make bench``'s latency rows (bench/run.py), for a quick
look at other rates: the gateway as a real process, a local receiver, an open-loop
load generator (requests start on schedule, answered or not).

    python -m bench.latency --rates 100 500 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio

from bench.run import Databases, latency, postgres_server


async def measure(rates: list[float], seconds: float) -> dict[str, float]:
    with postgres_server() as server_dsn:
        databases = Databases(server_dsn)
        await databases.setup()
        try:
            return await latency(databases, rates, seconds)
        finally:
            await databases.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description="pay-to-webhook latency, open loop")
    parser.add_argument("--rates", type=float, nargs="+", default=[100.0, 500.0])
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    for name, value in asyncio.run(measure(args.rates, args.seconds)).items():
        print(f"{name}: {value:.2f}")


if __name__ == "__main__":
    main()
