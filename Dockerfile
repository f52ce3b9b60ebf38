# One image for the init job and the api, streams and trainer services (docker-compose.yml).
# Layers, least to most often changed: OS packages and the user -> the locked Python dependencies
# (requirements.lock, hashes checked) -> the project itself with --no-deps. A source change
# rebuilds only the last, small layer; a dependency change is a `make lock` away.
FROM python:3.11.13-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# libgomp1: LightGBM's OpenMP runtime (its wheel links it but does not bundle it; slim lacks it).
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*

# Non-root user; /var/lib/millrace is its working directory and holds the models volume (a named
# volume mounted there starts with this ownership).
RUN groupadd --system --gid 10001 millrace \
    && useradd --system --uid 10001 --gid millrace --no-create-home \
        --home-dir /var/lib/millrace --shell /usr/sbin/nologin millrace \
    && install -d -o millrace -g millrace /var/lib/millrace /var/lib/millrace/models

WORKDIR /src

# Dependencies first: exact versions and hashes from the lock, nothing resolved at build time.
COPY requirements.lock ./
RUN pip install --require-hashes --no-deps -r requirements.lock

# Then the project, without dependencies (they are all above), and a consistency check.
COPY pyproject.toml README.md ./
COPY millrace ./millrace
COPY ml ./ml
COPY streams ./streams
COPY api ./api
COPY schemas ./schemas
RUN pip install --no-deps . && pip check

USER 10001:10001
WORKDIR /var/lib/millrace
CMD ["millrace", "--help"]
