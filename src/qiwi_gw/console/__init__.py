"""The operator console: the gateway's state, payments and deliveries in a browser.

Served on a listener of its own (``QIWI_CONSOLE_HOST``/``QIWI_CONSOLE_PORT``),
never on QIWI's port, together with ``/metrics``. Pages are rendered on the
server; the only script is the chart's pointer read-out.
"""

from qiwi_gw.console.app import create_console_app
from qiwi_gw.console.listener import operator_listener

__all__ = ["create_console_app", "operator_listener"]
