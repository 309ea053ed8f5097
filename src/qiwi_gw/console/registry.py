"""``/registry``: the registry of a date range as CSV (``qiwi-gw export``'s
format), and QIWI's registry file compared with the table (``qiwi-gw reconcile``)."""

from __future__ import annotations

import csv
import io
from contextlib import aclosing
from datetime import date

from aiohttp import web

from qiwi_gw.console import pages
from qiwi_gw.console.forms import a_date
from qiwi_gw.ops import export

# A chunk of CSV sent at a time: one write per row would be a system call each.
CHUNK_ROWS = 1000


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
