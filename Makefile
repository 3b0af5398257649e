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

bootstrap: $(VENV)/.synced
	@# The broker binary comes from Debian's packages; the embedded runtime (logins always) needs it.
	@command -v mosquitto >/dev/null 2>&1 || test -x /usr/sbin/mosquitto || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto >/dev/null) ; } || \
	  echo "note: no mosquitto binary (apt-get install mosquitto); the embedded broker cannot start and the tests stop without it"

demo: bootstrap
	$(VENV)/bin/coldchain demo

test: bootstrap
	$(VENV)/bin/python -m pytest
	$(MAKE) --no-print-directory lint

lint: bootstrap
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/python -m dashboards.build --check

clean:
	rm -rf $(VENV) $(TOOLS) .coldchain .pytest_cache .mypy_cache .ruff_cache
