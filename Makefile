# The two commands of README.md: `make run` and `make test`. Each installs what it needs first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# softhsm2: the PKCS#11 module behind the simulated USBKeys; opensc: pkcs11-tool, used by tests;
# openssl: the command line the tests check signatures and chains with; zbar-tools: zbarimg,
# a second QR decoder the tests read certificate QR codes with; chromium + fonts-noto-cjk:
# the verification page rendered as a phone would; wrk: the load generator of bench/verify.py;
# fonts-wqy-zenhei: the CJK font (TrueType outlines) embedded in certificate PDFs; poppler-utils
# (pdfsig, pdftoppm) + libnss3-tools (certutil, vfychain): the tests check signed PDFs with them.
DEB_PACKAGES := softhsm2 opensc openssl zbar-tools chromium fonts-noto-cjk wrk fonts-wqy-zenhei poppler-utils libnss3-tools

.PHONY: run test install deps lint bench clean

run: install
	$(BIN)/certsvc init
	$(BIN)/certsvc serve

test: install
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/pytest

install: deps $(STAMP)

deps:
	@missing=""; \
	for pkg in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$pkg 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	  sudo=""; [ "$$(id -u)" -eq 0 ] || sudo=sudo; \
	  echo "installing Debian packages:$$missing"; \
	  $$sudo apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $$missing; \
	fi

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "certsvc needs Python 3.11 or newer as $(PYTHON)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
