"""The package's exceptions: one base, translated at each boundary.

To QIWI an error becomes a result code in XML (see ``protocol``); to an operator
it becomes one line on stderr (see ``cli``). Nothing here reaches a client as a
traceback.
"""


class QiwiGwError(Exception):
    """Base of every error this package raises on purpose."""


class ConfigError(QiwiGwError):
    """A setting is missing or malformed; the message names the variable."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable
        self.problem = problem


class DatabaseUnavailableError(QiwiGwError):
    """The database could not be reached or did not answer in time."""


class ShuttingDownError(DatabaseUnavailableError):
    """The gateway is stopping and will not store this request.

    A kind of DatabaseUnavailableError on purpose: QIWI gets the same temporary code 1
    and retries, against the next process."""


class BackendUnavailableError(QiwiGwError):
    """The merchant's backend did not answer (no connection or a timeout)."""


def describe(exc: BaseException) -> str:
    """One line for a log: the error's type and first line, never a traceback.

    Driver errors do not carry connection strings, so no password leaks through here.
    """
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:200]


def first_line(exc: BaseException) -> str:
    """The error's own words on one line, without its type: its first non-blank line
    with runs of whitespace made one space, or its type's name when it has no words.
    For a message that quotes the server (libpq's), where the type adds nothing."""
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return " ".join(lines[0].split()) if lines else type(exc).__name__
