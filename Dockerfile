# syntax=docker/dockerfile:1
# One image for every service: `scorestream <service>` (gateway, enricher, worker, decision,
# notifier, audit, monitor) and `scorestream retrain` for the CronJob.
#
#   docker build -t ghcr.io/scorestream/scorestream:0.1.0 .
#
# Stage 1 installs the locked dependencies (requirements.lock: every package pinned with its
# sha256, `python -m scorestream.lockfile` regenerates it) and then the project itself, without
# resolving anything and without build isolation (its build backend, setuptools >= 77 for the PEP
# 639 license expression, is in the lock too), into /opt/scorestream, then removes pip, setuptools
# and wheel from that venv. Stage 2 is the slim runtime: no compiler, no pip (removed from the base
# interpreter too: nothing is installed at run time, the Kubeflow components included: kfp is in
# the lock), no sources besides the installed package, a non-root user, a read-only root
# filesystem friendly layout (writes go to /tmp, an emptyDir in Kubernetes; /gcs, /minio and /s3
# belong to the user for the Kubeflow launcher's artifact paths).
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md LICENSE requirements.lock ./
COPY scorestream ./scorestream
COPY schemas ./schemas
COPY producers ./producers
COPY consumers ./consumers
COPY inference_worker ./inference_worker
COPY pipelines ./pipelines
# the build backend first (setuptools and wheel, with their hashes): the lock's sdists
# (kfp-server-api) and the project are built with it, without build isolation
RUN python -m venv /opt/scorestream \
 && grep -A1 -E '^(setuptools|wheel)==' requirements.lock | grep -v '^--$' >/tmp/backend.lock \
 && /opt/scorestream/bin/python -m pip install --require-hashes --no-deps -r /tmp/backend.lock \
 && /opt/scorestream/bin/python -m pip install --require-hashes --no-build-isolation \
      -r requirements.lock \
 && /opt/scorestream/bin/python -m pip install --no-deps --no-build-isolation --no-index '.[kfp]' \
 && /opt/scorestream/bin/python -m pip check \
 && /opt/scorestream/bin/python -m pip uninstall --yes pip setuptools wheel

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
 && python -m pip uninstall --yes pip setuptools wheel \
 && rm -f /usr/local/bin/pip /usr/local/bin/pip3 /usr/local/bin/pip3.11 \
 && mkdir -p /gcs /minio /s3 \
 && chown 10001:10001 /gcs /minio /s3 \
 && groupadd --system --gid 10001 scorestream \
 && useradd --system --uid 10001 --gid scorestream --no-create-home --shell /usr/sbin/nologin scorestream
COPY --from=build /opt/scorestream /opt/scorestream
COPY config /app/config
WORKDIR /app
USER 10001:10001
EXPOSE 8000 8080
ENTRYPOINT ["scorestream"]
CMD ["--help"]
