"""``/payments``: search, newest first, a page at a time; ``/payments/<txn_id>``:
one payment with its request and its delivery attempts, and Resend."""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from aiohttp import web

from qiwi_gw.console import keys, pages, reads
from qiwi_gw.console.forms import SEARCH_FIELDS, SearchForm, echo, not_text, parse_search
from qiwi_gw.ops import history, resend
from qiwi_gw.store import http_log, reports

PAGE_SIZE = 50


@dataclass(frozen=True)
class Page:
    rows: list[reports.FoundPayment]
    older: str | None
    newer: str | None


def _link(form: SearchForm, **cursor: int) -> str:
    values = {name: form.values[name] for name in SEARCH_FIELDS if form.values[name]}
    return "/payments?" + urlencode({**values, **cursor})


async def _page(request: web.Request, form: SearchForm) -> Page:
    async with reads.reading(request) as connection:
        # One more than a page says whether there is another one beyond it.
        rows = await reports.search(
            connection,
            form.criteria,
            limit=PAGE_SIZE + 1,
            older_than=form.older_than,
            newer_than=form.newer_than,
        )
    more = len(rows) > PAGE_SIZE
    if form.newer_than is not None:
        rows = rows[-PAGE_SIZE:] if more else rows
        has_older, has_newer = True, more
    else:
        rows = rows[:PAGE_SIZE]
        has_older, has_newer = more, form.older_than is not None
    if not rows:
        # Past either end: offer the way back to the newest.
        return Page(rows, None, _link(form) if form.older_than or form.newer_than else None)
    return Page(
        rows,
        _link(form, before=rows[-1].prv_txn) if has_older else None,
        _link(form, after=rows[0].prv_txn) if has_newer else None,
    )


async def search(request: web.Request) -> web.Response:
    form = parse_search(request.query)
    if form.errors:
        context = {"form": form, "page": Page([], None, None)}
        return pages.render(request, "payments.html", context, status=400)
    return pages.render(
        request, "payments.html", {"form": form, "page": await _page(request, form)}
    )


def _pretty_json(raw: str | None) -> str:
    if raw is None:
        return ""
    try:
        return json.dumps(json.loads(raw), indent=2, ensure_ascii=False)
    except ValueError:
        return raw


def _txn_id(request: web.Request) -> str:
    """The txn_id in the path; a control character in it is a 400 page (PostgreSQL
    would refuse a NUL, and nobody's txn_id holds one)."""
    code = request.match_info["code"]
    problem = not_text(code, "txn_id")
    if problem is not None:
        raise web.HTTPBadRequest(reason=problem)  # a page of one line (errors_as_pages)
    return code


def _not_found(request: web.Request, code: str) -> web.Response:
    return pages.problem(request, 404, "Not found", f"No payment with txn_id {echo(code)}.")


async def payment(request: web.Request) -> web.Response:
    code = _txn_id(request)
    async with reads.reading(request) as connection:
        found = await history.fetch(connection, code)
        logged = None
        if found is not None and found.payment.http_log_id is not None:
            logged = await http_log.by_id(connection, found.payment.http_log_id)
    if found is None:
        return _not_found(request, code)
    return pages.render(
        request,
        "payment.html",
        {
            "payment": found.payment,
            "attempts": found.attempts,
            "logged": logged,
            "headers": _pretty_json(logged.headers) if logged else "",
            "extra": _pretty_json(found.payment.extra),
            "state": history.state(found.payment),
            "result": history.result,
        },
    )


async def confirm_resend(request: web.Request) -> web.Response:
    code = _txn_id(request)
    async with reads.reading(request) as connection:
        found = await history.fetch(connection, code)
    if found is None:
        return _not_found(request, code)
    return pages.render(request, "confirm_resend.html", {"payment": found.payment})


async def do_resend(request: web.Request) -> web.Response:
    """The same scheduling as ``qiwi-gw resend CODE``: due now, the gateway woken."""
    code = _txn_id(request)
    async with reads.writing(request) as connection:
        (outcome,) = await resend.resend(connection, [code])
    if not outcome.found:
        return _not_found(request, code)
    request[
        keys.SESSION
    ].flash = f"Resend of txn_id {echo(code)}: was {outcome.was}, now {outcome.now}."
    return pages.see_other(f"/payments/{quote(code, safe='')}")
