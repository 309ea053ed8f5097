"""A private PostgreSQL for running without a configured database (``make run``,
tests, or the image with ``QIWI_EMBEDDED_DB=true``): a convenience, not a place for
real payments.

``pgserver`` ships the server binaries in its wheel, so a fresh machine needs
nothing installed. The data directory persists, so payments survive restarts.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

logger = logging.getLogger(__name__)


@contextmanager
def embedded_postgres(data_dir: Path) -> Iterator[str]:
    """Start (or join) the server whose data is under ``data_dir``; yield its DSN."""
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI): harmless here.
        warnings.simplefilter("ignore")
        from pgserver.postgres_server import get_server

    pgdata = (data_dir / "pgdata").resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    # The first line of the log, and a warning: payments stored here live in this directory
    # only, which in a container is gone with it unless a volume is mounted there.
    logger.warning(
        "embedded PostgreSQL with its data in %s: not for production, payments stay in that "
        "directory only (set PG_HOST or DATABASE_URL for a real database)",
        pgdata,
    )
    server = get_server(pgdata, cleanup_mode="stop")
    try:
        dsn: str = server.get_uri()
        logger.info("embedded PostgreSQL is ready at %s", dsn)
        yield dsn
    finally:
        server.cleanup()
        logger.info("embedded PostgreSQL stopped")
