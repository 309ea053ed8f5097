"""The fuzz tests' one gateway per test (``tests.fuzz.harness``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.fuzz.harness import Gateways
from tests.support.app import ClientFactory


@pytest.fixture
async def gateways(make_client: ClientFactory, db: Any) -> AsyncIterator[Gateways]:
    started = Gateways(make_client, db)
    yield started
    target = started.target
    assert target is not None, "no example ran"
    assert target.sent >= target.quota, f"only {target.sent} requests sent"
    # The fuzzing is not all bounced by aiohttp's parser.
    assert target.reached >= target.min_reached, f"only {target.reached} reached /payment"
