# Herald's two images, from one file:
#   --target operator   the operator (console script `herald-operator`), with herald_adapters: its own
#                       alerts deliver through the adapters' platform code
#   --target adapter    the adapter that one Job runs per attempt (`herald-adapter`;
#                       only httpx, tenacity, pydantic(-settings), regex, pillow and OpenTelemetry besides the
#                       standard library)
#
# BASE_IMAGE must be a Debian-family image with python3 (3.11+) and ca-certificates; the
# builder stage and the final stages use the same one, so the venv made in the builder
# runs unchanged in the final stage. The default is for machines that reach Docker Hub.
# Without a registry, make one locally from Debian's packages with images/base.sh
# (debootstrap minbase + python3) and build with images/build.sh, which passes
# --build-arg BASE_IMAGE=<that image>.
#
# Python dependencies come from PyPI in the builder stage. A TLS-intercepting proxy's CA
# can be handed to pip as the build secret `ca_bundle` (never stored in any layer):
#   buildah bud --secret id=ca_bundle,src=/etc/ssl/certs/ca-certificates.crt ...
#   docker build --secret id=ca_bundle,src=/etc/ssl/certs/ca-certificates.crt ...
ARG BASE_IMAGE=docker.io/library/python:3.11-slim-bookworm

# ---------------------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS builder
# venv + pip live only here. Debian's python3 has no ensurepip without python3-venv.
RUN set -eux; \
    if ! python3 -c 'import ensurepip' 2>/dev/null; then \
      export DEBIAN_FRONTEND=noninteractive; \
      apt-get update -q; \
      apt-get install -y -q --no-install-recommends python3 python3-venv ca-certificates; \
      rm -rf /var/lib/apt/lists/*; \
    fi; \
    python3 -m venv /opt/operator; \
    python3 -m venv /opt/adapter
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_DEFAULT_TIMEOUT=180
WORKDIR /src
# The dependencies first, from pyproject.toml alone, so a source change reuses this layer.
COPY pyproject.toml ./
RUN --mount=type=secret,id=ca_bundle,required=false \
    set -eu; \
    if [ -s /run/secrets/ca_bundle ]; then export PIP_CERT=/run/secrets/ca_bundle; fi; \
    python3 -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' \
      > /tmp/deps.txt; \
    grep -E '^(httpx|tenacity|pydantic|pydantic-settings|regex|pillow|opentelemetry-(api|sdk|exporter-otlp-proto-http))[<>=!~ ]' \
      /tmp/deps.txt > /tmp/adapter-deps.txt; \
    test "$(wc -l < /tmp/adapter-deps.txt)" -eq 9; \
    /opt/operator/bin/pip install -q -r /tmp/deps.txt; \
    /opt/adapter/bin/pip install -q -r /tmp/adapter-deps.txt
COPY operator ./operator
COPY adapters ./adapters
RUN --mount=type=secret,id=ca_bundle,required=false \
    set -eu; \
    if [ -s /run/secrets/ca_bundle ]; then export PIP_CERT=/run/secrets/ca_bundle; fi; \
    /opt/operator/bin/pip wheel -q --no-deps -w /tmp/wheels .; \
    /opt/operator/bin/pip install -q --no-deps /tmp/wheels/*.whl; \
    /opt/adapter/bin/pip install -q --no-deps /tmp/wheels/*.whl; \
    /opt/adapter/bin/python -c 'import herald_adapters.cli, herald_contract, httpx, tenacity, pydantic, pydantic_settings, regex'; \
    /opt/adapter/bin/python -c 'import opentelemetry.sdk.trace, opentelemetry.exporter.otlp.proto.http.trace_exporter'; \
    /opt/operator/bin/python -c 'import herald.handlers, herald.alerts, kopf, kubernetes'; \
    /opt/operator/bin/python -c 'from herald_adapters import discord, slack, telegram, webhook'; \
    for v in /opt/operator /opt/adapter; do \
      "$v/bin/pip" uninstall -q -y pip setuptools wheel 2>/dev/null || true; \
      rm -f "$v"/bin/pip* "$v"/bin/activate* "$v"/bin/Activate.ps1; \
    done; \
    rm -rf /opt/adapter/bin/herald-operator /opt/adapter/bin/kubectl-herald \
      /opt/adapter/lib/python3*/site-packages/herald /opt/adapter/lib/python3*/site-packages/kubectl_herald; \
    /opt/adapter/bin/python -m compileall -q /opt/adapter >/dev/null; \
    /opt/operator/bin/python -m compileall -q /opt/operator >/dev/null

# ---------------------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS adapter
# No pip, setuptools, wheel or compilers here: only the venv (removed from it in the
# builder) on top of the base's python3.
COPY --from=builder /opt/adapter /opt/adapter
ENV PATH=/opt/adapter/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
# The chart's pod security context uses the same numeric, non-root identity.
USER 65532:65532
WORKDIR /tmp
ENTRYPOINT ["herald-adapter"]

# ---------------------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS operator
COPY --from=builder /opt/operator /opt/operator
ENV PATH=/opt/operator/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
USER 65532:65532
WORKDIR /tmp
EXPOSE 8080 8081
ENTRYPOINT ["herald-operator"]
