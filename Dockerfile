# syntax=docker/dockerfile:1
# One image for every service: `scorestream <service>` (gateway, enricher, worker, decision,
# notifier, audit, monitor) and `scorestream retrain` for the CronJob.
#
#   docker build -t ghcr.io/scorestream/scorestream:0.1.0 .
#
# Stage 1 builds wheels for the project and its locked-down dependencies with the compilers it
# may need; stage 2 is the slim runtime: no compiler, no pip cache, no sources besides the
# installed package, a non-root user, a read-only root filesystem friendly layout (writes go to
# /tmp, an emptyDir in Kubernetes).
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY scorestream ./scorestream
COPY schemas ./schemas
COPY producers ./producers
COPY consumers ./consumers
COPY inference_worker ./inference_worker
COPY pipelines ./pipelines
RUN python -m venv /opt/scorestream \
 && /opt/scorestream/bin/pip install --upgrade pip \
 && /opt/scorestream/bin/pip install .

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="scorestream" \
      org.opencontainers.image.description="Real-time transactional model inference over Apache Kafka" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/scorestream/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
# libgomp1: the OpenMP runtime LightGBM (retraining) links against; a runtime library, not a tool
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 scorestream \
 && useradd --system --uid 10001 --gid scorestream --no-create-home --shell /usr/sbin/nologin scorestream
COPY --from=build /opt/scorestream /opt/scorestream
COPY config /app/config
WORKDIR /app
USER 10001:10001
EXPOSE 8000 8080
ENTRYPOINT ["scorestream"]
CMD ["--help"]
