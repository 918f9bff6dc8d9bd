# incidentctl image: `incidentctl serve` by default; any other command with `docker run … incidentctl:latest <command>`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY incidentctl ./incidentctl
RUN pip install . \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/incidentctl --create-home incidentctl \
    && rm -rf /src

WORKDIR /var/lib/incidentctl
USER incidentctl
# Without INCIDENTCTL_DATABASE_URL or DB_HOST the embedded SQLite file lives here (mount a volume).
ENV INCIDENTCTL_SQLITE_PATH=/var/lib/incidentctl/incidentctl.db

EXPOSE 9080
# Python, not curl: the slim image has no curl. /health answers 503 when the database is down.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; port = os.environ.get('INCIDENTCTL_PORT', '9080'); sys.exit(0 if urllib.request.urlopen(f'http://127.0.0.1:{port}/health', timeout=4).status == 200 else 1)"]

ENTRYPOINT ["incidentctl"]
CMD ["serve", "--host", "0.0.0.0"]
