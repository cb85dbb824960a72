# Shears images, one multi-stage build:
#   docker build --target api -t shears-api .       the HTTP API: no torch, onnx or engine
#   docker build --target worker -t shears-worker .  the Celery worker and the pruning engine
# docker-compose.yml builds both.

FROM python:3.11.11-slim-bookworm AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SHEARS_DATA_DIR=/data
WORKDIR /app
# A fixed uid so the shared data volume has one owner across api and worker containers.
RUN groupadd --system --gid 10001 shears \
    && useradd --system --uid 10001 --gid shears --no-create-home --home-dir /app shears \
    && mkdir /data \
    && chown shears:shears /data
COPY pyproject.toml README.md shears_cli.py ./
COPY api_schemas ./api_schemas
COPY shears_config ./shears_config
COPY shears_flags ./shears_flags
COPY shears_manifest ./shears_manifest
COPY shears_methods ./shears_methods
COPY storage ./storage


FROM base AS api
COPY service ./service
# Base dependencies only, exact versions pinned in pyproject.toml.
RUN pip install --no-cache-dir .
USER 10001:10001
ENV SHEARS_HOST=0.0.0.0 \
    SHEARS_PORT=8000
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
CMD ["shears", "api"]


FROM base AS worker
# CPU builds of torch: the default index serves CUDA wheels, gigabytes this image never uses.
RUN pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu \
    torch==2.14.1 torchvision==0.29.1
COPY worker ./worker
COPY pruning ./pruning
RUN pip install --no-cache-dir "./[engine]"
USER 10001:10001
# SIGTERM (docker stop) starts Celery's cold shutdown instead of a warm one: running jobs get
# worker_soft_shutdown_timeout (30 s) to finish, then are cancelled and requeued, well within
# compose's stop_grace_period. A warm shutdown would wait for an hour-long job and be killed.
ENV REMAP_SIGTERM=SIGQUIT
CMD ["shears", "worker", "--concurrency", "2"]
