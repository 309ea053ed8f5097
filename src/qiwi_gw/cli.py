"""``qiwi-gw <command>``: the operator's entry point. Errors are one line, never a traceback."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from qiwi_gw import __version__, logs, ops
from qiwi_gw.errors import ConfigError, QiwiGwError
from qiwi_gw.ops.arguments import EXIT_USAGE, Parser
from qiwi_gw.ops.common import BadArgumentError, NotFoundError
from qiwi_gw.settings import Settings, environment_help

logger = logging.getLogger(__name__)

EXIT_ERROR = 1


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="qiwi-gw", description="QIWI provider-protocol gateway with webhooks.")
    parser.add_argument("--version", action="version", version=f"qiwi-gw {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser(
        "serve",
        help="run the gateway (HOST, PORT; embedded database if QIWI_EMBEDDED_DB=true)",
        epilog=environment_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands.add_parser("migrate", help="apply pending database migrations and exit")
    ops.add_parsers(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        # --help, --version, or a usage error already printed in one line: a code to return.
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        settings = Settings.from_env(os.environ)
    except QiwiGwError as exc:
        print(f"qiwi-gw: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    logs.configure(debug=settings.debug, log_format=settings.log_format)
    try:
        if ops.is_operation(args):
            # stdout is the answer; stderr carries errors only, not progress logs.
            if not settings.debug:
                logging.getLogger().setLevel(logging.WARNING)
            return ops.run(args, settings)
        # Imported here: the web application's imports would slow every operator command.
        from qiwi_gw import server

        if args.command == "serve":
            server.serve(settings)
        elif args.command == "migrate":
            with server.database(settings) as dsn:
                applied = server.migrate(
                    settings.database.direct_dsn or dsn, settings.database.schema
                )
            print(f"applied {len(applied)} migration(s): {', '.join(applied) or 'none pending'}")
    except BadArgumentError as exc:
        print(f"qiwi-gw {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except NotFoundError as exc:
        print(f"qiwi-gw {args.command}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except ConfigError as exc:
        # Found only once the database answers (a missing database the role may not create).
        print(f"qiwi-gw: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except QiwiGwError as exc:
        print(f"qiwi-gw: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:
        # The reader went away (``qiwi-gw export ... | head``): stop quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 0
    return 0
