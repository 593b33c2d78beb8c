# syntax=docker/dockerfile:1
# The operator image: kopf and incluster_operator (`pip install .[operator]`) in a venv.
# Non-root (UID 65532), no shell tools added, nothing written at run time outside /tmp,
# so the chart runs it with readOnlyRootFilesystem and a /tmp emptyDir.
#   docker build -t incluster/operator:0.1.0 .
# Both stages use the same base so the venv's interpreter path stays valid. Release
# builds should pin the base by digest too: FROM python:3.11.11-slim-bookworm@sha256:...

FROM python:3.11.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/incluster
WORKDIR /src
COPY pyproject.toml README.md ./
COPY sdk/ sdk/
COPY operator/ operator/
# Byte-compile here: the running container cannot (and must not) write .pyc files.
RUN /opt/incluster/bin/pip install ".[operator]" \
    && /opt/incluster/bin/python -m compileall -q /opt/incluster

FROM python:3.11.11-slim-bookworm
ENV PATH=/opt/incluster/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
# Root-owned and read-only for the operator's user: the code cannot be modified at run time.
COPY --from=build /opt/incluster /opt/incluster
USER 65532:65532
WORKDIR /tmp
# kopf's health endpoint (--liveness), probed by the chart; the HTTPS report API.
EXPOSE 8080 8443
# The chart sets the command itself (namespaces, log level); this default is the
# chart's cluster-wide command, so `docker run` behaves like the default install.
CMD ["kopf", "run", "--standalone", "--all-namespaces", "-m", "incluster_operator.handlers", "--liveness=http://0.0.0.0:8080/healthz"]
