"""``/registry``: the registry of a date range as CSV (``qiwi-gw export``'s
format), and QIWI's registry file compared with the table (``qiwi-gw reconcile``,
the same function)."""

from __future__ import annotations

import csv
import io
from contextlib import aclosing
from datetime import date
from pathlib import Path
from typing import BinaryIO

from aiohttp import web

from qiwi_gw.console import pages, upload
from qiwi_gw.console.forms import a_date
from qiwi_gw.ops import export, reconcile, reconciliation
from qiwi_gw.ops.common import BadArgumentError

# Rows shown per list of differences: a registry of another day can differ by
# thousands, which the CLI lists; a page stays readable.
SHOWN = 500
# A chunk of CSV sent at a time: one write per row would be a system call each.
CHUNK_ROWS = 1000
PERIOD_FIELDS = ("from", "to")


def _period(values: dict[str, str], errors: list[str]) -> tuple[date | None, date | None]:
    first = a_date(values.get("from", ""), "from", errors)
    last = a_date(values.get("to", ""), "to", errors)
    if first is not None and last is not None and first > last:
        errors.append(f"from: {first} is after to {last}")
    return first, last


async def registry(request: web.Request) -> web.Response:
    return pages.render(request, "registry.html", {"values": {}, "errors": [], "result": None})


async def export_csv(request: web.Request) -> web.StreamResponse:
    values = {name: request.query.get(name, "").strip() for name in ("from", "to")}
    errors: list[str] = []
    first, last = _period(values, errors)
    if first is None and last is None and not errors:
        errors.append("from, to: give the first and the last day (YYYY-MM-DD)")
    elif (first is None or last is None) and not errors:
        errors.append("from, to: give both days")
    if errors or first is None or last is None:
        context = {"values": values, "errors": errors, "result": None}
        return pages.render(request, "registry.html", context, status=400)
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="qiwi-{first}-{last}.csv"',
        }
    )
    await response.prepare(request)
    chunk = io.StringIO()
    writer = csv.writer(chunk, lineterminator="\n")
    writer.writerow(export.COLUMNS)
    async with (
        pages.connection(request) as connection,
        aclosing(export.rows(connection, first, last)) as rows,
    ):
        count = 0
        async for row in rows:
            writer.writerow(row.cells())
            count += 1
            if count % CHUNK_ROWS == 0:
                await response.write(chunk.getvalue().encode())
                chunk.seek(0)
                chunk.truncate()
    await response.write(chunk.getvalue().encode())
    await response.write_eof()
    return response


async def compare(request: web.Request) -> web.Response:
    """QIWI's registry, uploaded, compared by ``qiwi-gw reconcile``'s rules: the
    declared days, else the day in the file's name, else the rows' range."""
    if request.content_type != "multipart/form-data":
        return _registry_page(
            request, {}, ["file: choose QIWI's registry file to compare"], status=400
        )
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


def _open(path: Path) -> BinaryIO:
    return path.open("rb")


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
    try:
        # A stream, not the path: messages name the operator's file, not ours.
        with _open(received.path) as stream:
            async with pages.connection(request) as connection:
                result = await reconciliation.reconcile(
                    stream, period, connection, name=received.filename
                )
    except BadArgumentError as exc:
        return _registry_page(request, values, [str(exc)], status=400)
    context = {
        "values": values,
        "errors": [],
        "result": result,
        "titles": reconcile.TITLES,
        "period": reconcile.describe_period(result.period, result.name_day),
        "shown": SHOWN,
    }
    return pages.render(request, "registry.html", context)


def _registry_page(
    request: web.Request, values: dict[str, str], errors: list[str], *, status: int
) -> web.Response:
    context = {"values": values, "errors": errors, "result": None}
    return pages.render(request, "registry.html", context, status=status)
