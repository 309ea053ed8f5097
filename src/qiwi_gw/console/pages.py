"""What every page shares: the template environment, its filters, and error pages."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web

from qiwi_gw.console import keys
from qiwi_gw.console.security import CSRF_FIELD
from qiwi_gw.ops import output

STATIC = Path(__file__).parent / "static"


def setup(app: web.Application) -> None:
    environment = aiohttp_jinja2.setup(
        app,
        loader=jinja2.PackageLoader("qiwi_gw.console", "templates"),
        # Accounts, request bodies and headers come from the outside world: every
        # value is escaped unless a template says otherwise (none does).
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    environment.filters.update(
        when=output.when,
        local=output.local,
        money=output.money,
        count=output.count,
        duration=output.duration,
        one_line=output.one_line,
    )
    environment.globals.update(ago=output.ago, seconds_between=output.seconds_between)


def _common(request: web.Request) -> dict[str, Any]:
    session = request.get(keys.SESSION)
    settings = request.app[keys.SETTINGS]
    return {
        "csrf_field": CSRF_FIELD,
        "csrf": session.csrf if session else "",
        "user": session.user if session else None,
        "flash": session.take_flash() if session else None,
        "login_required": settings.console.login_required,
        "path": request.path,
        "asset": lambda name: str(request.app.router["static"].url_for(filename=name)),
    }


def render(
    request: web.Request, template: str, context: Mapping[str, Any], *, status: int = 200
) -> web.Response:
    return aiohttp_jinja2.render_template(
        template, request, {**_common(request), **context}, status=status
    )


def problem(request: web.Request, status: int, title: str, message: str) -> web.Response:
    """A page saying, in one line, what was wrong."""
    return render(request, "problem.html", {"title": title, "message": message}, status=status)


def see_other(location: str) -> web.Response:
    """After a POST: the browser loads ``location`` with GET, so a reload repeats nothing."""
    return web.Response(status=303, headers={"Location": location})
