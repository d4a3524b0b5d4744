# syntax=docker/dockerfile:1
# farmpool: one stratum node (serve), and every admin command (db, payout, report, ...).
#
#   docker build -t farmpool .
#   docker run -d --name farmpool -p 3333:3333 \
#     -v /etc/farmpool:/etc/farmpool:ro -v farmpool-data:/var/lib/farmpool farmpool
#   docker exec farmpool farmpool -c /etc/farmpool/pool.yaml db upgrade
#
# The config (/etc/farmpool/pool.yaml) sets database_url (PostgreSQL in production) and
# data_dir: /var/lib/farmpool (the ledger's spool lives there: keep it on a volume).

# --- build: the C hashing accelerator needs a compiler and OpenSSL's headers -----------------
FROM python:3.11-slim-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev libssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY pool ./pool
RUN python -m venv /opt/farmpool \
 && /opt/farmpool/bin/pip install --no-cache-dir . \
 && /opt/farmpool/bin/python -c "import pool.hashing as h; assert h.ACCELERATOR, 'no C accelerator'"

# --- run: the virtualenv and the migrations, as an unprivileged user -------------------------
FROM python:3.11-slim-bookworm
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/farmpool --create-home farmpool
COPY --from=build /opt/farmpool /opt/farmpool
COPY migrations /opt/farmpool/migrations
ENV PATH=/opt/farmpool/bin:$PATH \
    FARMPOOL_MIGRATIONS=/opt/farmpool/migrations \
    FARMPOOL_CONFIG=/etc/farmpool/pool.yaml \
    FARMPOOL_HEALTH_URL=http://127.0.0.1:8080/health \
    PYTHONUNBUFFERED=1
USER farmpool
WORKDIR /var/lib/farmpool
VOLUME ["/var/lib/farmpool"]
EXPOSE 3333 8080
# Healthy while the node serves jobs (the API's /health: 200 with a current job, 503 else).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, sys, urllib.request; sys.exit(0 if urllib.request.urlopen(os.environ['FARMPOOL_HEALTH_URL'], timeout=4).status == 200 else 1)"]
# SIGTERM: stop accepting, client.reconnect to every miner, flush the ledger, exit 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["farmpool"]
CMD ["serve"]
