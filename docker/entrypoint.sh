#!/bin/sh
# The image's entry point: run the operator's setup hook, then become the gateway.
#
# The original image ran /opt/setup.sh before starting when one was mounted, and operators
# use it to prepare the environment (read a password from a secret file, add a CA
# certificate's path, and so on). This entry point keeps that hook, following the convention
# of the official postgres image for its init scripts:
#   - not executable (chmod -x): it is *sourced*, so the variables it exports reach the
#     gateway (`export PG_PASSWORD="$(cat /run/secrets/pg_password)"`). It must not call
#     `exit`, which would end this script before the gateway starts;
#   - executable: it is *executed* as a separate process; its exports do not reach the
#     gateway, a non-zero exit stops the container.
# Either way it runs as the image's unprivileged user, and a failure stops the container
# with the hook's error rather than starting a half-configured gateway.
# QIWI_SETUP_SCRIPT names another path for the hook (tests use it); default /opt/setup.sh.
set -eu

setup_script="${QIWI_SETUP_SCRIPT:-/opt/setup.sh}"
if [ -f "$setup_script" ]; then
    if [ -x "$setup_script" ]; then
        echo "qiwi-gw entrypoint: running $setup_script" >&2
        "$setup_script"
    else
        echo "qiwi-gw entrypoint: sourcing $setup_script" >&2
        # shellcheck source=/dev/null
        . "$setup_script"
    fi
fi

# The HEALTHCHECK runs with the image's environment only, not with what the hook exported:
# record the address serve listens on for it (docker/healthcheck.py reads this file). An
# unwritable TMPDIR is no reason not to start: the healthcheck then reads HOST and PORT.
if [ "${1:-}" = serve ]; then
    { printf '%s %s\n' "${HOST:-0.0.0.0}" "${PORT:-80}" > "${TMPDIR:-/tmp}/qiwi-gw-serving"; } \
        2>/dev/null || true
fi

# Serving on a port below the runtime's unprivileged range (the image's default, 80) takes
# the capability to bind it, which only python-lowport has (Dockerfile). Where the runtime
# withholds it (no-new-privileges, capabilities dropped) say so in one line instead of
# failing at bind time, or at exec with a bare "operation not permitted".
port="${PORT:-80}"
unprivileged_from="$(cat /proc/sys/net/ipv4/ip_unprivileged_port_start 2>/dev/null || echo 1024)"
if [ "${1:-}" = serve ] && [ "$port" -lt "$unprivileged_from" ] 2>/dev/null; then
    can_bind='import sys
status = open("/proc/self/status").read().split("CapEff:")[1].split()[0]
sys.exit(0 if int(status, 16) >> 10 & 1 else 1)'
    if ! python-lowport -c "$can_bind" 2>/dev/null; then
        echo "qiwi-gw entrypoint: port $port needs the capability NET_BIND_SERVICE, which" \
            "this runtime withholds (no-new-privileges or dropped capabilities): allow it," \
            "or set PORT=8080 and map the container's port 8080 instead of 80" >&2
        exit 2
    fi
    # exec: the gateway becomes PID 1's process and receives SIGTERM itself.
    exec python-lowport -m qiwi_gw "$@"
fi

# exec: the gateway becomes PID 1's process and receives SIGTERM itself (graceful shutdown).
exec qiwi-gw "$@"
