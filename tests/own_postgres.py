"""Moved to tests.support.postgres; this name lasts until the console's tests import from
there."""

from tests.support.postgres import cluster

__all__ = ["cluster"]
