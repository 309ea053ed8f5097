"""qiwi-gw: QIWI provider protocol in, signed JSON webhooks out, PostgreSQL in between."""

__version__ = "0.1.0"
