FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY shared ./shared
COPY services ./services
COPY migrations ./migrations
RUN pip install --no-cache-dir -e .
ENV TCI_ENV=production
# SERVICE selects underwriting, claims or collections; each migrates its own schema at start.
CMD ["sh", "-c", "alembic --name ${SERVICE} upgrade head && exec uvicorn --factory services.${SERVICE}.main:create_app --host 0.0.0.0 --port ${PORT} --no-server-header"]
