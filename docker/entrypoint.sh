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

# exec: the gateway becomes PID 1's process and receives SIGTERM itself (graceful shutdown).
exec qiwi-gw "$@"
