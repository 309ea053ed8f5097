"""The bench's merchant backend, in a process of its own: answers every webhook 200
at once and remembers when each payment's first webhook arrived.

Times are ``time.monotonic()`` (CLOCK_MONOTONIC, one clock for every process on the
machine), taken when the handler starts, so they compare with the load generator's
send times. A webhook repeated (at-least-once) keeps its first arrival.

    python -m bench.receiver --port 8001

- ``POST /hook``: a webhook (JSON with ``code``), answered ``200 ok``;
- ``POST /wait``: ``{"codes": [...], "within": seconds}``; answers once all those
  codes have arrived or the time is up: ``{"arrived": {code: time}, "missing": n}``;
- ``GET /arrivals``: every arrival so far, ``{code: time}``;
- ``GET /readyz``: 200 once listening.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import dataclass, field

import uvloop
from aiohttp import web


@dataclass
class Waiter:
    """One ``/wait`` call: the codes it still waits for, set when none is left."""

    remaining: set[str]
    done: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class Arrivals:
    times: dict[str, float] = field(default_factory=dict)
    waiters: list[Waiter] = field(default_factory=list)
    bad: int = 0

    def arrived(self, code: str, at: float) -> None:
        if code in self.times:
            return
        self.times[code] = at
        # Each arrival touches each waiter once: O(1) per webhook, not a rescan of
        # thousands of codes per webhook.
        for waiter in self.waiters:
            waiter.remaining.discard(code)
            if not waiter.remaining:
                waiter.done.set()


ARRIVALS = web.AppKey("arrivals", Arrivals)


async def hook(request: web.Request) -> web.Response:
    at = time.monotonic()
    arrivals = request.app[ARRIVALS]
    try:
        code = json.loads(await request.read())["code"]
    except (ValueError, KeyError, TypeError):
        arrivals.bad += 1
        return web.Response(status=400, text="no code")
    arrivals.arrived(str(code), at)
    return web.Response(text="ok")


async def wait(request: web.Request) -> web.Response:
    arrivals = request.app[ARRIVALS]
    asked = await request.json()
    codes = [str(code) for code in asked["codes"]]
    waiter = Waiter(remaining={code for code in codes if code not in arrivals.times})
    if waiter.remaining:
        arrivals.waiters.append(waiter)
        try:
            async with asyncio.timeout(float(asked.get("within", 60))):
                await waiter.done.wait()
        except TimeoutError:
            pass
        finally:
            arrivals.waiters.remove(waiter)
    found = {code: arrivals.times[code] for code in codes if code in arrivals.times}
    return web.json_response({"arrived": found, "missing": len(codes) - len(found)})


async def dump(request: web.Request) -> web.Response:
    arrivals = request.app[ARRIVALS]
    return web.json_response(arrivals.times)


async def ready(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def create_app() -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[ARRIVALS] = Arrivals()
    app.router.add_post("/hook", hook)
    app.router.add_post("/wait", wait)
    app.router.add_get("/arrivals", dump)
    app.router.add_get("/readyz", ready)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description="webhook receiver recording arrival times")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    web.run_app(
        create_app(),
        host=args.host,
        port=args.port,
        loop=uvloop.new_event_loop(),
        print=None,
        access_log=None,
    )


if __name__ == "__main__":
    main()
