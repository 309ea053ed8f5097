"""``/registry``: the registry of a date range as CSV (what ``qiwi-gw export``
writes), and QIWI's registry file compared with the table (``qiwi-gw reconcile``,
the same function). Both are heavy: one at a time, in a worker process (``heavy``).
"""

from __future__ import annotations

from datetime import date

from aiohttp import web

from qiwi_gw.console import heavy, keys, pages, upload
from qiwi_gw.console.forms import a_date
from qiwi_gw.console.worker import COMPARED, DATABASE, ExportJob, ReconcileJob
from qiwi_gw.ops import reconcile, reconciliation

# Rows shown per list of differences: a registry of another day can differ by
# thousands, which the CLI lists; a page stays readable.
SHOWN = 500
PERIOD_FIELDS = ("from", "to")
# When a "busy" page asks to try again.
RETRY_AFTER_SECONDS = 5


def _period(values: dict[str, str], errors: list[str]) -> tuple[date | None, date | None]:
    first = a_date(values.get("from", ""), "from", errors)
    last = a_date(values.get("to", ""), "to", errors)
    if first is not None and last is not None and first > last:
        errors.append(f"from: {first} is after to {last}")
    return first, last


async def registry(request: web.Request) -> web.Response:
    return _registry_page(request, {}, [], status=200)


async def export_csv(request: web.Request) -> web.StreamResponse:
    values = {name: request.query.get(name, "").strip() for name in PERIOD_FIELDS}
    errors: list[str] = []
    first, last = _period(values, errors)
    if first is None and last is None and not errors:
        errors.append("from, to: give the first and the last day (YYYY-MM-DD)")
    elif (first is None or last is None) and not errors:
        errors.append("from, to: give both days")
    if errors or first is None or last is None:
        return _registry_page(request, values, errors, status=400)
    gate = request.app[keys.HEAVY]
    if gate.busy:
        return _busy(request)
    async with gate.hold():
        job = ExportJob(request.app[keys.SETTINGS], request.app[keys.DSN], first, last)
        try:
            return await heavy.stream_export(request, job, f"qiwi-{first}-{last}.csv")
        except heavy.ExportFailedError as exc:
            return pages.problem(request, 503, "Export failed", str(exc))


async def compare(request: web.Request) -> web.Response:
    """QIWI's registry, uploaded, compared by ``qiwi-gw reconcile``'s rules: the
    declared days, else the day in the file's name, else the rows' range."""
    if request.content_type != "multipart/form-data":
        return _registry_page(
            request, {}, ["file: choose QIWI's registry file to compare"], status=400
        )
    gate = request.app[keys.HEAVY]
    if gate.busy:
        return _busy(request)
    async with gate.hold():
        try:
            received = await upload.receive(request, PERIOD_FIELDS)
        except upload.TooLargeError:
            limit = upload.MAX_FILE_BYTES // (1024 * 1024)
            return pages.problem(
                request, 413, "Too large", f"file: larger than {limit} MiB; split it by days"
            )
        try:
            return await _compare(request, received)
        finally:
            received.discard()


async def _compare(request: web.Request, received: upload.Received) -> web.Response:
    values = {name: received.fields.get(name, "") for name in PERIOD_FIELDS}
    errors: list[str] = []
    first, last = _period(values, errors)
    if (first is None) != (last is None) and not errors:
        errors.append("from, to: give both days of the period, or neither")
    if received.path is None:
        errors.append("file: choose QIWI's registry file to compare")
    if errors or received.path is None:
        return _registry_page(request, values, errors, status=400)
    period = None if first is None or last is None else reconciliation.Period(first, last)
    app = request.app
    job = ReconcileJob(app[keys.SETTINGS], app[keys.DSN], received.path, received.filename, period)
    outcome = await heavy.reconcile(job)
    if outcome.kind == DATABASE:
        return pages.problem(request, 503, "Database unavailable", outcome.problem)
    if outcome.kind != COMPARED or outcome.result is None:
        # The CLI's one line naming the file's line, or "could not read the file".
        return _registry_page(request, values, [outcome.problem], status=400)
    result = outcome.result
    context = {
        "values": values,
        "errors": [],
        "result": result,
        "titles": reconcile.TITLES,
        "period": reconcile.describe_period(result.period, result.name_day),
        "shown": SHOWN,
    }
    return pages.render(request, "registry.html", context)


def _busy(request: web.Request) -> web.Response:
    response = pages.problem(
        request,
        429,
        "Busy",
        "Another export or registry comparison is running: try again in a moment.",
    )
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def _registry_page(
    request: web.Request, values: dict[str, str], errors: list[str], *, status: int
) -> web.Response:
    context = {"values": values, "errors": errors, "result": None}
    return pages.render(request, "registry.html", context, status=status)
