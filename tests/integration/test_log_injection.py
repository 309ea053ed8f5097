"""Log lines cannot lie: a value a caller chose never starts a line of its own.

A txn_id, an account or a header with CR/LF (or U+2028, or an escape sequence)
used to reach the text log as it was sent, so a caller could write a whole fake
line into it. Now every line is one line, in both formats.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator

import pytest

from qiwi_gw.logs import CONTEXT_CHARS, JsonFormatter, TextFormatter, one_line
from tests.support.app import ClientFactory
from tests.support.qiwi import result_of

FORGED = "\r\n2026-11-29 09:00:00,000 INFO qiwi_gw.payments: payment stored [txn_id=1 prv_txn=1]"
HOSTILE = [FORGED, "a\nb", "a\u2028b", "a\u2029b", "a\x85b", "a\x1b[31mred", "a\x00b", "a\tb"]


class Lines(logging.Handler):
    """Every record formatted as the gateway formats it, as text and as JSON."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.text: list[str] = []
        self.json: list[str] = []
        self._text = TextFormatter()
        self._json = JsonFormatter()

    def emit(self, record: logging.LogRecord) -> None:
        self.text.append(self._text.format(record))
        self.json.append(self._json.format(record))


@pytest.fixture
def lines() -> Iterator[Lines]:
    handler = Lines()
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)


def single_lines(texts: list[str]) -> bool:
    return all(len(text.splitlines()) == 1 for text in texts)


async def test_a_crlf_txn_id_cannot_forge_a_log_line(
    make_client: ClientFactory, lines: Lines
) -> None:
    client = await make_client()
    for txn_id in HOSTILE:
        pay = {
            "command": "pay",
            "txn_id": txn_id,
            "txn_date": "20261129120000",
            "account": txn_id,
            "sum": "1.00",
        }
        assert (await result_of(await client.get("/payment", params=pay)))["result"] == "300"
    rejected = [line for line in lines.text if "rejected request" in line]
    assert len(rejected) == len(HOSTILE)
    assert single_lines(lines.text)
    assert single_lines(lines.json)
    assert all(json.loads(line)["message"] for line in lines.json)
    # The forged line is still readable, escaped, inside the real one.
    assert any("txn_id=\\r\\n2026-11-29 09:00:00,000 INFO" in line for line in lines.text)
    assert not any(line.startswith("2026-11-29 09:00:00,000") for line in lines.text)


@pytest.mark.parametrize("text", HOSTILE)
def test_every_unsafe_character_is_escaped(text: str) -> None:
    escaped = one_line(text)
    assert len(escaped.splitlines()) == 1
    assert escaped.isprintable()


def test_context_values_are_cut_short() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
    record.txn_id = "9" * 1000
    line = TextFormatter().format(record)
    assert len(line) < 200
    assert f"txn_id={'9' * (CONTEXT_CHARS - 3)}..." in line


def test_a_traceback_cannot_pass_for_a_line_of_its_own() -> None:
    try:
        raise ValueError(FORGED)
    except ValueError:
        record = logging.LogRecord(
            "x", logging.ERROR, __file__, 1, "failed: %s", (FORGED,), sys.exc_info()
        )
    text = TextFormatter().format(record)
    first, *rest = text.splitlines()
    assert first.endswith(
        "failed: \\r\\n2026-11-29 09:00:00,000 INFO qiwi_gw.payments: "
        "payment stored [txn_id=1 prv_txn=1]"
    )
    assert rest
    assert all(line.startswith("    ") for line in rest)
    assert single_lines([JsonFormatter().format(record)])
