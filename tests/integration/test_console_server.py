"""``qiwi-gw serve`` as a real process: QIWI's port and the operator listener side
by side, /metrics on the right one, and a console that would be open to anyone
refused at start."""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile

import aiohttp
from aiohttp.test_utils import unused_port

from tests.support.cli import run_process


async def test_serve_runs_the_console_on_its_own_listener(database_dsn: str) -> None:
    qiwi_port, console_port = unused_port(), unused_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PG_", "QIWI_", "HTTP_"))},
        "DATABASE_URL": database_dsn,
        "HOST": "127.0.0.1",
        "PORT": str(qiwi_port),
        "QIWI_CONSOLE_PORT": str(console_port),
        # Loopback is outside the allow-list: QIWI's port refuses this test.
        "QIWI_ALLOWED_IPS": "10.0.0.0/8",
    }
    with tempfile.TemporaryFile() as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "qiwi_gw", "serve", env=env, stderr=log
        )
        try:
            console = f"http://127.0.0.1:{console_port}"
            async with aiohttp.ClientSession() as session:
                await _wait_up(session, f"{console}/metrics", process)
                async with session.get(f"http://127.0.0.1:{qiwi_port}/metrics") as response:
                    assert response.status == 403
                async with session.get(f"{console}/metrics") as response:
                    assert response.status == 200
                    assert "qiwi_pending_payments" in await response.text()
                async with session.get(f"{console}/") as response:
                    assert response.status == 200
                    assert "<h1>Overview</h1>" in await response.text()
                # The console is not on QIWI's port.
                async with session.get(f"http://127.0.0.1:{qiwi_port}/payments") as response:
                    assert response.status in (403, 404)
        finally:
            process.terminate()
            returncode = await process.wait()
        log.seek(0)
        text = log.read().decode(errors="replace")
    assert returncode == 0, text
    assert f"operator console and /metrics on http://127.0.0.1:{console_port}/" in text
    assert "Traceback" not in text


async def _wait_up(
    session: aiohttp.ClientSession, url: str, process: asyncio.subprocess.Process
) -> None:
    async with asyncio.timeout(60):
        while True:
            assert process.returncode is None, "serve exited"
            try:
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)  # polling another process: there is no event


def test_a_console_open_to_the_network_without_credentials_is_refused(database_dsn: str) -> None:
    result = run_process(
        "serve",
        env={"DATABASE_URL": database_dsn, "QIWI_CONSOLE_HOST": "0.0.0.0", "PORT": "1"},  # noqa: S104
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "QIWI_CONSOLE_HOST" in lines[0]
    assert "QIWI_CONSOLE_USERNAME" in lines[0]
    assert "QIWI_CONSOLE_PASSWORD" in lines[0]
