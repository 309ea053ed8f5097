"""Logging: one line per event, as text or JSON, with the payment's context.

Log lines carry values callers chose (a txn_id, an account, a header): a CR or LF
in one would start a line of the caller's making. So a text line escapes every
control and line-breaking character of its message and context, and cuts long
context values short; a traceback's lines are indented, so none of them can pass
for a line of its own. JSON escapes them itself (and here also U+2028, U+2029
and U+0085, which some readers take for line ends).
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Final

# Context fields that callers pass with ``extra=`` and that formatters show.
CONTEXT_FIELDS = ("txn_id", "prv_txn", "attempt")
# A context value longer than this is cut (a txn_id is 20 digits when valid).
CONTEXT_CHARS: Final = 64

# C0 and C1 controls, DEL, and Unicode's line and paragraph separators.
_UNSAFE: Final = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_ESCAPES: Final = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_JSON_LINE_BREAKS: Final = {"\u2028": "\\u2028", "\u2029": "\\u2029", "\x85": "\\u0085"}


def one_line(text: str) -> str:
    """``text`` with every character that could break or forge a line escaped."""
    if text.isascii() and text.isprintable():
        return text  # the common case, without a regular expression
    return _UNSAFE.sub(lambda m: _ESCAPES.get(m[0], f"\\x{ord(m[0]):02x}"), text)


def context_value(value: object) -> str:
    text = one_line(str(value))
    return text if len(text) <= CONTEXT_CHARS else text[: CONTEXT_CHARS - 3] + "..."


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        record.message = one_line(record.getMessage())
        record.asctime = self.formatTime(record, self.datefmt)
        line = self.formatMessage(record)
        context = " ".join(
            f"{name}={context_value(getattr(record, name))}"
            for name in CONTEXT_FIELDS
            if hasattr(record, name)
        )
        if context:
            line = f"{line} [{context}]"
        if record.exc_info:
            trace = self.formatException(record.exc_info)
            line += "\n" + "\n".join("    " + part for part in trace.splitlines())
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            if hasattr(record, name):
                value = getattr(record, name)
                line[name] = value if isinstance(value, int) else context_value(value)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        text = json.dumps(line, ensure_ascii=False, default=str)
        for raw, escaped in _JSON_LINE_BREAKS.items():
            text = text.replace(raw, escaped)
        return text


def configure(*, debug: bool, log_format: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    # aiohttp's access log repeats what qiwi_http_log already holds.
    logging.getLogger("aiohttp.access").setLevel(logging.DEBUG if debug else logging.WARNING)
    # pgserver and yoyo narrate every step at INFO; qiwi-gw logs the outcome itself.
    for chatty in ("pgserver", "yoyo"):
        logging.getLogger(chatty).setLevel(logging.DEBUG if debug else logging.WARNING)
