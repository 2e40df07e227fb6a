# The two commands of README.md: `make run` and `make test`. Each installs what it needs first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# What the service needs to run: softhsm2, the PKCS#11 module behind the simulated USBKeys;
# fonts-wqy-zenhei, the CJK font (TrueType outlines) embedded in certificate PDFs;
# curl and jq, for the README's certification round by hand (and its test).
RUN_PACKAGES := softhsm2 fonts-wqy-zenhei curl jq
# What the tests and benchmarks add: opensc (pkcs11-tool) and openssl check keys, signatures and
# chains; zbar-tools (zbarimg) is a second QR decoder; chromium + fonts-noto-cjk render the
# verification page as a phone would; poppler-utils (pdfsig, pdftoppm) + libnss3-tools
# (certutil, vfychain) check signed PDFs; wrk loads the server in bench/verify.py; postgresql
# (initdb, pg_ctl, pg_basebackup) and nginx stand up the DMZ of docs/public-side.md (a public
# primary, its hot standby, nginx balancing the public nodes) in a temporary directory, for
# tests/test_verify/test_public_cluster.py and bench/public_cluster.py; nodejs and npm install
# axe-core (tests/js, pinned by its package-lock.json), the console's accessibility check. npm
# is installed only when no npm is on the PATH: NodeSource's nodejs carries its own and refuses
# Debian's npm package beside it.
TEST_PACKAGES := opensc openssl zbar-tools chromium fonts-noto-cjk poppler-utils libnss3-tools wrk \
  postgresql nginx nodejs

# The Chinese holiday calendar: pinned to the newest release (`pip index versions
# chinese-calendar`), 1.11.0 on 2026-12-02, which covers years up to 2026. Bump it when a release
# carries a new year; `certsvc status` then names any imported schedule it contradicts.
CHINESE_CALENDAR := 1.11.0

.PHONY: run test install deps lint bench clean

# `make run HOST=0.0.0.0 PORT=8080` to listen elsewhere.
HOST ?= 127.0.0.1
PORT ?= 8000

run: DEB_PACKAGES = $(RUN_PACKAGES)
run: install
	$(BIN)/certsvc init
	$(BIN)/certsvc serve --host $(HOST) --port $(PORT)

# Test workers spend most of their time waiting on subprocesses, tokens and databases: twice
# as many workers as cores measured faster than one per core on the 2-core CI machine.
TEST_WORKERS ?= $(shell echo $$(( $$(nproc) * 2 )))

test: DEB_PACKAGES = $(RUN_PACKAGES) $(TEST_PACKAGES)
test: install
	@command -v npm >/dev/null || $(MAKE) --no-print-directory deps DEB_PACKAGES=npm
	[ -d tests/js/node_modules/axe-core ] || npm ci --prefix tests/js --no-audit --no-fund
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest -n $(TEST_WORKERS) --dist worksteal --durations=25

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

$(STAMP): pyproject.toml Makefile
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "certsvc needs Python 3.11 or newer as $(PYTHON)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]' 'chinese-calendar==$(CHINESE_CALENDAR)'
	touch $(STAMP)

# Every benchmark, short form: each prints `RESULT <name> ratio=… target=…` last. Then issuing
# and tokenising again on PostgreSQL (lines `issue_pg`, `tokenise_pg`): each creates and drops
# databases of its own on the server BENCH_POSTGRES_URL names.
BENCH_POSTGRES_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/postgres

bench: DEB_PACKAGES = $(RUN_PACKAGES) $(TEST_PACKAGES)
bench: install
	@for script in bench/[!_]*.py; do $(BIN)/python $$script --quick || exit 1; done
	@for name in issue tokenise; do \
	  $(BIN)/python bench/$$name.py --quick --database-url $(BENCH_POSTGRES_URL) || exit 1; \
	done

lint: DEB_PACKAGES = $(RUN_PACKAGES)
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
