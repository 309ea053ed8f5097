# qiwi-gw: the QIWI provider-protocol gateway.
#   docker build -t qiwi-gw .
#   docker run -p 8080:8080 -e PG_HOST=db -e PG_USER=... -e PG_PASSWORD=... qiwi-gw
# Configuration is the environment, the original image's variables included (README).

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

# QIWI_DATA_DIR: the embedded PostgreSQL's data when neither PG_HOST nor DATABASE_URL is set.
# pgserver refuses to run postgres as root; as this unprivileged user it runs as that user.
ENV PATH="/opt/venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    QIWI_DATA_DIR=/var/lib/qiwi-gw

RUN groupadd --system --gid 10001 qiwi \
    && useradd --system --uid 10001 --gid qiwi --home-dir /var/lib/qiwi-gw \
        --no-create-home --shell /usr/sbin/nologin qiwi \
    && install -d -o qiwi -g qiwi -m 0750 /var/lib/qiwi-gw

COPY --from=builder /opt/venv /opt/venv
COPY docker/entrypoint.sh /usr/local/bin/qiwi-gw-entrypoint

# Numeric, so that runtimes enforcing runAsNonRoot (Kubernetes) can verify it.
USER 10001:10001
WORKDIR /var/lib/qiwi-gw

EXPOSE 8080

# /healthz answers 200 while the process serves. No curl in the slim image: Python's urllib
# (urlopen raises on any non-2xx answer or a refused connection, so the exit code is 1).
# start-period: `serve` waits up to 60 s for the database and migrates before it listens.
HEALTHCHECK --interval=15s --timeout=5s --start-period=90s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % (os.environ.get('PORT') or '8080'), timeout=4)"]

# The entry point runs /opt/setup.sh first when one is mounted (the original image's hook),
# then execs `qiwi-gw "$@"`: `docker run qiwi-gw migrate` runs the migrations alone.
ENTRYPOINT ["/usr/local/bin/qiwi-gw-entrypoint"]
CMD ["serve"]
