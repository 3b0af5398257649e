# Deploy: one image for every Python service of the cold-chain system; the entrypoint is `coldchain`
# (docker-compose.yml runs `coldchain db migrate`, `coldchain run gateway|rules|ledger|api`, `coldchain sim run`).
FROM python:3.11.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv \
    PATH=/app/.venv/bin:$PATH

# From Debian: WeasyPrint's Pango and the CJK font the PDF reports embed (the reports are in Chinese).
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpango-1.0-0 libpangoft2-1.0-0 fonts-noto-cjk \
    && rm -rf /var/lib/apt/lists/*

# uv from PyPI, pinned to the version that wrote uv.lock.
RUN pip install --no-cache-dir uv==0.13.9

WORKDIR /app

# Dependencies first, in their own layer: only pyproject.toml and uv.lock decide what is installed.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project

# Then the project itself (the stage packages carry their SQL migrations as package data).
COPY registry ./registry
COPY coldchain ./coldchain
COPY gateway ./gateway
COPY rules ./rules
COPY traceability ./traceability
COPY firmware_sim ./firmware_sim
COPY dashboards ./dashboards
RUN uv sync --frozen --no-dev --no-editable

# Run as an unprivileged user. COLDCHAIN_HOME holds the embedded mode's data, the gateway's spool and the
# ledger's Ed25519 signing key (keys/, a volume in compose: it must outlive the container). The keys folder
# exists in the image, owned by that user, so a new named volume mounted there is created writable by it.
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/coldchain --create-home coldchain \
    && install -d -m 0700 -o coldchain -g coldchain /var/lib/coldchain/keys
USER coldchain
ENV COLDCHAIN_HOME=/var/lib/coldchain

ENTRYPOINT ["coldchain"]
CMD ["--help"]
