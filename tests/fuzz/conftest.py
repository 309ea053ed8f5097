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
    gateway = started.gateway
    assert gateway is not None, "no example ran"
    assert gateway.sent >= gateway.quota, f"only {gateway.sent} requests sent"
    # The fuzzing is not all bounced by aiohttp's parser.
    assert gateway.reached >= gateway.min_reached, f"only {gateway.reached} reached /payment"
