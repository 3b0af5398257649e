# The two commands: `make demo` runs the system's main job on the embedded default; `make test` runs the tests.
# Both bootstrap the environment first (uv from PyPI into .tools/, the locked dependencies into .venv/).
PYTHON ?= python3
TOOLS  := .tools
UV     := $(TOOLS)/bin/uv
VENV   := .venv
export UV_PROJECT_ENVIRONMENT := $(VENV)
export UV_PYTHON_DOWNLOADS := never

.PHONY: bootstrap demo test lint bench clean

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==0.13.9

$(VENV)/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --extra dev --python $(PYTHON) --quiet
	@touch $@

# What Debian provides and the project needs: the broker (the embedded runtime), WeasyPrint's Pango, the CJK
# font the reports embed, poppler's pdftotext/pdftoppm and chromium (the tests read reports and drive pages).
DEBIAN_PACKAGES := mosquitto libpango-1.0-0 libpangoft2-1.0-0 fonts-noto-cjk poppler-utils chromium
DEBIAN_PROBES   := /usr/sbin/mosquitto /usr/lib/x86_64-linux-gnu/libpango-1.0.so.0 \
                   /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc /usr/bin/pdftotext /usr/bin/chromium

bootstrap: $(VENV)/.synced
	@missing=""; for f in $(DEBIAN_PROBES); do test -e $$f || missing="$$missing $$f"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian packages: $(DEBIAN_PACKAGES)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	      $(DEBIAN_PACKAGES) >/dev/null; \
	  else \
	    echo "note: missing$$missing; install the Debian packages: $(DEBIAN_PACKAGES)"; \
	  fi; \
	fi

demo: bootstrap
	$(VENV)/bin/coldchain demo

# One pytest worker per core (pytest-xdist): each worker starts its own private PostgreSQL and brokers.
test: bootstrap
	$(VENV)/bin/python -m pytest -n auto
	$(MAKE) --no-print-directory lint

lint: bootstrap
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/python -m dashboards.build --check

clean:
	rm -rf $(VENV) $(TOOLS) .coldchain .pytest_cache .mypy_cache .ruff_cache
