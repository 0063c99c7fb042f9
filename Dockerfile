# One image for the API (`ajc serve`), the worker (`ajc worker`) and the migrations
# (`ajc migrate`). Expects DATABASE_URL (and DATABASE_OWNER_URL for migrations): the embedded
# PostgreSQL is for development and tests, and APP_ENV=production refuses it.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
RUN python -m venv /opt/venv
COPY pyproject.toml constraints.txt README.md ./
COPY app ./app
RUN /opt/venv/bin/pip install -c constraints.txt .

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    APP_ENV=production HOST=0.0.0.0 PORT=8000 WORKSPACES_DIR=/data/workspaces
RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin ajc \
    && mkdir -p /data/workspaces && chown -R ajc /data
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY --chown=root:root alembic.ini ./
COPY --chown=root:root alembic ./alembic
COPY --chown=root:root app ./app
USER ajc
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s \
    CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)" || exit 1
CMD ["ajc", "serve"]
