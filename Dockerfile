# syntax=docker/dockerfile:1
# One image for the three services, the staff console and the migration step (README, "Deploying"):
#   docker build -t tci .
#   docker run -e TCI_SERVICE=claims ... tci          (or `tci claims`; `tci migrate` migrates)
#   docker run -e TCI_SERVICE=console ... tci         (the staff console, port 8000)
# Every dependency is installed from requirements.lock, pinned with hashes (`make lock`).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
RUN python -m venv /opt/tci
COPY requirements.lock ./
# Wheels only: nothing is compiled, and pip refuses any file whose hash the lock does not name.
RUN /opt/tci/bin/pip install --require-hashes --only-binary=:all: -r requirements.lock
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY services ./services
COPY console ./console
# The project itself, as a regular (not editable) install; its dependencies are already there.
RUN /opt/tci/bin/pip install --no-deps . \
    && /opt/tci/bin/pip check

FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/tci/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TCI_ENV=production \
    TCI_WORKERS=2 \
    TCI_FORWARDED_ALLOW_IPS=127.0.0.1
RUN groupadd --system --gid 10001 tci \
    && useradd --system --uid 10001 --gid tci --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin tci
WORKDIR /app
COPY --from=build /opt/tci /opt/tci
# Alembic's environments are read from the working directory (shared/migrations.py).
COPY alembic.ini ./
COPY migrations ./migrations
COPY deploy/docker/entrypoint.py ./entrypoint.py
USER 10001:10001
EXPOSE 8000 8001 8002 8003
# /healthz of the service (or console) this container runs (TCI_SERVICE); Kubernetes uses its own probes.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "/app/entrypoint.py", "healthcheck", "/healthz"]
ENTRYPOINT ["python", "/app/entrypoint.py"]
CMD []
