"""What arrived: the request's parameters, and its row for ``qiwi_http_log``.

Credentials never reach the table: headers whose names mean credentials, and
URL or form parameters with such names, are stored redacted. A refused request
(allow-list, auth) is stored as a bounded summary: its body is never read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qsl, unquote_plus

from aiohttp import hdrs, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from qiwi_gw.protocol import ProtocolError, ResultCode
from qiwi_gw.store.http_log import HttpLogEntry

# QIWI's requests are a few hundred bytes; anything near this is not QIWI.
MAX_BODY_BYTES: Final = 64 * 1024
MAX_PARAMETERS: Final = 100
_FORM_TYPES: Final = frozenset({"application/x-www-form-urlencoded"})

# Names that mean credentials, in a header's or a parameter's name.
_SECRET_NAME: Final = re.compile(
    r"authorization|token|secret|api[-_]?key|access[-_]?key|password|passwd|pwd|cookie"
    r"|session|signature",
    re.IGNORECASE,
)
REDACTED: Final = "[redacted]"
# "name=value" in a query or form body: the value runs to the next & or ;.
_PARAMETER: Final = re.compile(r"(?P<name>[^&;=]*)=(?P<value>[^&;]*)")

# A refused request's summary: a few KB whatever was sent.
SUMMARY_HEADERS: Final = 12
SUMMARY_NAME_CHARS: Final = 64
SUMMARY_VALUE_CHARS: Final = 256
SUMMARY_URL_CHARS: Final = 512
SUMMARY_METHOD_CHARS: Final = 16


@dataclass(frozen=True)
class Body:
    """A request's body as read, or why it could not be."""

    data: bytes = b""
    error: ProtocolError | None = None


# Set by the gate (qiwi_gw.gate) before any handler runs.
BODY = web.RequestKey("body", Body)
CLIENT_IP = web.RequestKey("client_ip", str)


@dataclass(frozen=True)
class Incoming:
    entry: HttpLogEntry
    pairs: list[tuple[str, str]]
    # Set when the request cannot be read as QIWI parameters at all.
    error: ProtocolError | None = None


async def read_body(request: web.BaseRequest) -> Body:
    """The body, bounded by the app's ``client_max_size``; never raises for bad input."""
    try:
        return Body(await request.read())
    except web.HTTPRequestEntityTooLarge:
        too_large = f"request body is over {MAX_BODY_BYTES} bytes"
        return Body(error=ProtocolError(ResultCode.OTHER, too_large))
    except (HttpProcessingError, RequestPayloadError):
        # E.g. Content-Encoding: gzip on a body that is not gzip.
        return Body(error=ProtocolError(ResultCode.OTHER, "request body cannot be decoded"))


def read_incoming(request: web.Request, ip: str | None, body: Body) -> Incoming:
    """The request's parameters and its full log row (credentials redacted)."""
    text = body.data.decode("utf-8", errors="replace")
    entry = HttpLogEntry(
        ip=ip,
        url=_storable(redact_parameters(request.path_qs)),
        method=_storable(request.method),
        headers=_redacted_headers(request),
        body=_storable(redact_parameters(text)),
    )
    error = body.error
    pairs: list[tuple[str, str]] = []
    if error is None:
        try:
            pairs = _parameters(request, body.data)
        except ProtocolError as exc:
            error = exc
    return Incoming(entry=entry, pairs=pairs, error=error)


def refused_entry(request: web.BaseRequest, ip: str | None) -> HttpLogEntry:
    """A refused request's row: method, URL, address and the first few headers, each
    cut short, and no body (it was never read)."""
    headers: dict[str, str] = {}
    for number, (name, value) in enumerate(request.headers.items()):
        if number == SUMMARY_HEADERS:
            headers["(more)"] = f"{len(request.headers) - SUMMARY_HEADERS} header(s) not kept"
            break
        key = _storable(_cut(name, SUMMARY_NAME_CHARS))
        kept = _cut(_redact_header(name, value), SUMMARY_VALUE_CHARS)
        headers[key] = f"{headers[key]}, {_storable(kept)}" if key in headers else _storable(kept)
    return HttpLogEntry(
        ip=ip,
        url=_storable(_cut(redact_parameters(request.path_qs), SUMMARY_URL_CHARS)),
        method=_storable(_cut(request.method, SUMMARY_METHOD_CHARS)),
        headers=headers,
        body="",
    )


def redact_parameters(text: str) -> str:
    """``name=value`` pairs whose name means credentials get ``name=[redacted]``;
    everything else is kept exactly as sent."""
    if "=" not in text:
        return text

    def redact(match: re.Match[str]) -> str:
        name = match["name"]
        if _SECRET_NAME.search(unquote_plus(name, errors="replace")):
            return f"{name}={REDACTED}"
        return match[0]

    return _PARAMETER.sub(redact, text)


def _parameters(request: web.Request, body: bytes) -> list[tuple[str, str]]:
    sources = [request.rel_url.raw_query_string]
    if request.method == "POST":
        # aiohttp reports a missing Content-Type as application/octet-stream; a form
        # without the header is still read as a form.
        declared = request.headers.get(hdrs.CONTENT_TYPE, "").strip()
        if declared and request.content_type not in _FORM_TYPES:
            raise ProtocolError(
                ResultCode.OTHER, "POST body must be application/x-www-form-urlencoded"
            )
        try:
            sources.append(body.decode("utf-8"))
        except UnicodeDecodeError:
            raise ProtocolError(ResultCode.OTHER, "request body is not valid UTF-8") from None
    pairs: list[tuple[str, str]] = []
    for source in sources:
        try:
            pairs += parse_qsl(
                source,
                keep_blank_values=True,
                encoding="utf-8",
                errors="strict",
                max_num_fields=MAX_PARAMETERS,
            )
        except UnicodeDecodeError:
            raise ProtocolError(ResultCode.OTHER, "parameters are not valid UTF-8") from None
        except ValueError:
            raise ProtocolError(ResultCode.OTHER, "too many parameters") from None
    return pairs


def _redacted_headers(request: web.BaseRequest) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in request.headers.items():
        key = _storable(name)
        kept = _storable(_redact_header(name, value))
        headers[key] = f"{headers[key]}, {kept}" if key in headers else kept
    return headers


def _redact_header(name: str, value: str) -> str:
    if not _SECRET_NAME.search(name):
        return value
    # An operator still sees which scheme was used ("Basic [redacted]").
    scheme, _, rest = value.strip().partition(" ")
    if rest and scheme.isalpha() and "authorization" in name.lower():
        return f"{scheme} {REDACTED}"
    return REDACTED


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _storable(text: str) -> str:
    """PostgreSQL text holds neither NUL nor lone surrogates (undecodable header bytes)."""
    if text.isascii() and "\x00" not in text:
        return text
    return text.encode("utf-8", errors="replace").decode("utf-8").replace("\x00", "\ufffd")
