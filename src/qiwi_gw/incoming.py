"""What arrived: the request's parameters, and its row for ``qiwi_http_log``."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl

from aiohttp import hdrs, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from qiwi_gw.protocol import ProtocolError, ResultCode
from qiwi_gw.store.http_log import HttpLogEntry

# QIWI's requests are a few hundred bytes; anything near this is not QIWI.
MAX_BODY_BYTES = 64 * 1024
MAX_PARAMETERS = 100
_REDACTED = frozenset({"authorization", "proxy-authorization", "cookie"})
_FORM_TYPES = frozenset({"application/x-www-form-urlencoded"})


@dataclass(frozen=True)
class Incoming:
    entry: HttpLogEntry
    pairs: list[tuple[str, str]]
    # Set when the request cannot be read as QIWI parameters at all.
    error: ProtocolError | None = None


async def read_incoming(request: web.Request, ip: str | None) -> Incoming:
    """Read the body (bounded) and the query; never raises for bad input."""
    error: ProtocolError | None = None
    body = b""
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        error = ProtocolError(ResultCode.OTHER, f"request body is over {MAX_BODY_BYTES} bytes")
    except (HttpProcessingError, RequestPayloadError):
        # E.g. Content-Encoding: gzip on a body that is not gzip.
        error = ProtocolError(ResultCode.OTHER, "request body cannot be decoded")
    entry = HttpLogEntry(
        ip=ip,
        url=_storable(request.path_qs),
        method=_storable(request.method),
        headers=_redacted_headers(request),
        body=_storable(body.decode("utf-8", errors="replace")),
    )
    pairs: list[tuple[str, str]] = []
    if error is None:
        try:
            pairs = _parameters(request, body)
        except ProtocolError as exc:
            error = exc
    return Incoming(entry=entry, pairs=pairs, error=error)


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


def _redacted_headers(request: web.Request) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in request.headers.items():
        key = _storable(name)
        if name.lower() in _REDACTED:
            value = _redact(value)
        value = _storable(value)
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return headers


def _redact(value: str) -> str:
    scheme, _, rest = value.strip().partition(" ")
    if rest and scheme.isalpha():
        return f"{scheme} [redacted]"
    return "[redacted]"


def _storable(text: str) -> str:
    """PostgreSQL text holds neither NUL nor lone surrogates (undecodable header bytes)."""
    if text.isascii() and "\x00" not in text:
        return text
    return text.encode("utf-8", errors="replace").decode("utf-8").replace("\x00", "\ufffd")
