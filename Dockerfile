# One image for the api, streams and trainer services (docker-compose.yml).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY millrace ./millrace
COPY ml ./ml
COPY streams ./streams
COPY api ./api
COPY schemas ./schemas
RUN pip install --no-cache-dir .
ENV PYTHONUNBUFFERED=1
CMD ["millrace", "--help"]
