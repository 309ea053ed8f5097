# qiwi-gw: the QIWI provider-protocol gateway.
#   docker build -t qiwi-gw .
#   docker run -p 80:80 -e PG_HOST=db -e PG_USER=... -e PG_PASSWORD=... qiwi-gw
# Configuration is the environment, the original image's variables included (docs/configuration.md,
# docs/deployment.md). Port 80 as the original image; PORT=8080 keeps the old default.

# --- builder: a wheel of the project (migrations inside it), installed into a venv ---------
FROM python:3.11.13-slim-bookworm AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /src
# Everything the wheel is built from; the rest of the repository stays out (.dockerignore).
COPY pyproject.toml README.md ./
COPY src ./src
COPY migrations ./migrations

# The wheel force-includes migrations/ as qiwi_gw/_migrations (pyproject.toml), so the
# installed package finds its migrations without the source tree.
RUN python -m pip wheel --no-deps --wheel-dir /dist . \
    && python -m venv /opt/venv \
    && /opt/venv/bin/python -m pip install --no-cache-dir /dist/qiwi_gw-*.whl

# --- runtime: the venv on the same slim base, run by an unprivileged user ------------------
FROM python:3.11.13-slim-bookworm

LABEL org.opencontainers.image.title="qiwi-gw" \
      org.opencontainers.image.description="QIWI provider-protocol gateway with webhooks" \
      org.opencontainers.image.licenses="MIT"

# PORT: the original image's port 80 (outside the image the default stays 8080).
# QIWI_EMBEDDED_DB=false: with neither PG_HOST nor DATABASE_URL the container stops at once
# (exit 2, one line) instead of keeping real payments in a throwaway embedded database;
# QIWI_EMBEDDED_DB=true asks for that database, with its data in QIWI_DATA_DIR.
# pgserver refuses to run postgres as root; as this unprivileged user it runs as that user.
ENV PATH="/opt/venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PORT=80 \
    QIWI_EMBEDDED_DB=false \
    QIWI_DATA_DIR=/var/lib/qiwi-gw

# Port 80 as an unprivileged user, also where the runtime does not lower the privileged
# port range as Docker does (Kubernetes): a copy of the interpreter, python-lowport, may bind
# ports below 1024 (file capability cap_net_bind_service). The entry point uses it only to
# serve on such a port; the interpreter itself stays plain, so that a runtime that drops
# every capability can still run migrate, the operator commands and the healthcheck.
# libcap2-bin is needed for setcap only and leaves with its lists. Versions are not
# pinned: bookworm's security updates replace them, and a pin would break the build.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libcap2-bin \
    && install -d /opt/venv/bin \
    && cp "$(readlink -f /usr/local/bin/python)" /opt/venv/bin/python-lowport \
    && setcap cap_net_bind_service=+ep /opt/venv/bin/python-lowport \
    && apt-get purge -y --auto-remove libcap2-bin \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 qiwi \
    && useradd --system --uid 10001 --gid qiwi --home-dir /var/lib/qiwi-gw \
        --no-create-home --shell /usr/sbin/nologin qiwi \
    && install -d -o qiwi -g qiwi -m 0750 /var/lib/qiwi-gw

# Adds to /opt/venv, where python-lowport already is (a layer that source changes keep).
COPY --from=builder /opt/venv /opt/venv
COPY docker/entrypoint.sh /usr/local/bin/qiwi-gw-entrypoint
COPY docker/healthcheck.py /usr/local/bin/qiwi-gw-healthcheck

# Numeric, so that runtimes enforcing runAsNonRoot (Kubernetes) can verify it.
USER 10001:10001
WORKDIR /var/lib/qiwi-gw

EXPOSE 80

# /healthz answers 200 while the process serves. No curl in the slim image: Python's urllib.
# The check runs with the image's environment only, so it asks the address the entry point
# recorded for `serve` (a PORT or HOST from /opt/setup.sh included); docker/healthcheck.py.
# start-period: `serve` waits up to 60 s for the database and migrates before it listens.
HEALTHCHECK --interval=15s --timeout=5s --start-period=90s --retries=3 \
    CMD ["python", "/usr/local/bin/qiwi-gw-healthcheck"]

# The entry point runs /opt/setup.sh first when one is mounted (the original image's hook),
# then execs `qiwi-gw "$@"`: `docker run qiwi-gw migrate` runs the migrations alone.
ENTRYPOINT ["/usr/local/bin/qiwi-gw-entrypoint"]
CMD ["serve"]
