"""The image's HEALTHCHECK: exit 0 while the gateway answers /healthz, else 1.

A HEALTHCHECK runs with the image's environment only (PORT=80), not with what
/opt/setup.sh exported when the entry point sourced it: the entry point records the
address `serve` listens on in $TMPDIR/qiwi-gw-serving ("HOST PORT"), and this asks there.
Without that record (an older entry point, an unwritable /tmp) it asks HOST and PORT from
its environment, as the gateway reads them. Standard library only: no curl in the image.
"""

import os
import sys
import urllib.request
from pathlib import Path

RECORD = "qiwi-gw-serving"
TIMEOUT = 4.0
# A gateway listening on every address is asked on loopback.
_EVERY_ADDRESS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}  # noqa: S104


def address() -> tuple[str, str]:
    record = Path(os.environ.get("TMPDIR") or "/tmp") / RECORD  # noqa: S108 - the entry point's
    try:
        host, port = record.read_text().split()
    except (OSError, ValueError):
        host, port = os.environ.get("HOST", ""), os.environ.get("PORT", "")
    host = host.strip()
    host = _EVERY_ADDRESS.get(host, host)
    return (f"[{host}]" if ":" in host else host), (port.strip() or "80")


def main() -> int:
    host, port = address()
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/healthz", timeout=TIMEOUT):
            return 0
    except (OSError, ValueError):
        # Refused, timed out, or an answer other than 2xx (HTTPError is an OSError).
        return 1


if __name__ == "__main__":
    sys.exit(main())
