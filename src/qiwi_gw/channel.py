"""The NOTIFY channel of a schema: where a stored payment wakes the dispatchers.

The name carries the schema so that gateways of different schemas on one
database do not wake each other. PostgreSQL refuses a channel name over 63
bytes in ``pg_notify`` (and silently truncates it in ``LISTEN``), so a name that
would be longer keeps the schema's first characters and ends in a hash of the
whole schema instead. The same rule is written three times and must agree: here
(LISTEN), in ``CHANNEL_SQL`` (NOTIFY from Python's statements) and in the
insert trigger of migration 0005 (NOTIFY from the table); tests/integration/test_long_schema.py
checks that they do. Schema names are ASCII (``PG_SCHEMA`` allows nothing else),
so characters and bytes count the same on both sides.
"""

from __future__ import annotations

import hashlib
from typing import Final

PREFIX: Final = "qiwi_gw:"
# PostgreSQL's identifier limit (NAMEDATALEN - 1).
MAX_BYTES: Final = 63
_DIGEST_CHARS: Final = 8
# What is left of the schema beside the prefix, a colon and the digest: 46.
_KEPT_CHARS: Final = MAX_BYTES - len(PREFIX) - 1 - _DIGEST_CHARS


def channel_for(schema: str) -> str:
    """``qiwi_gw:<schema>``, or ``qiwi_gw:<first 46 characters>:<md5 prefix>`` when
    that would exceed 63 bytes."""
    name = PREFIX + schema
    if len(name.encode()) <= MAX_BYTES:
        return name
    digest = hashlib.md5(schema.encode(), usedforsecurity=False).hexdigest()
    return f"{PREFIX}{schema[:_KEPT_CHARS]}:{digest[:_DIGEST_CHARS]}"


# The same rule in SQL, over a column or variable named ``schema_name``.
CHANNEL_SQL: Final = (
    f"CASE WHEN octet_length('{PREFIX}' || schema_name) <= {MAX_BYTES}"
    f" THEN '{PREFIX}' || schema_name"
    f" ELSE '{PREFIX}' || left(schema_name, {_KEPT_CHARS}) || ':'"
    f" || left(md5(schema_name), {_DIGEST_CHARS}) END"
)
