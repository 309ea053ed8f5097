"""Moved to tests.support.console; this name lasts until the console's tests import from
there."""

from tests.support.app import Client
from tests.support.console import HOSTILE_ACCOUNT, Pair, csrf_of, raw_exchange, start_pair

__all__ = ["HOSTILE_ACCOUNT", "Client", "Pair", "csrf_of", "raw_exchange", "start_pair"]
