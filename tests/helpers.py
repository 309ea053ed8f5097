"""Moved to tests.support.backend and tests.support.qiwi; this name lasts until the last
tests that import it do so from there."""

from tests.support.backend import Backend
from tests.support.qiwi import result_of

__all__ = ["Backend", "result_of"]
