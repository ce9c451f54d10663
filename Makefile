# ocpp_gw developer entry points. On a fresh Debian 12:
#   make run        install what is missing (RUN_DEPS), start a local Mosquitto and the gateway on
#                   ws://0.0.0.0:33033/ocpp/
#   make test-fast  install what is missing for the fast tiers (FAST_DEPS), run pytest -m "not slow"
#   make test       install what is missing for every tier (TEST_DEPS, the .deb's build dependencies), run every test;
#                   the packaging tier builds the .deb and installs it on this machine (creating the ocpp-gw user)
# README.md says what each installs; tests/unit/test_make_targets.py keeps the two in step.
# Each target is safe to run again: installs happen only when something is missing or changed.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.ONESHELL:
.DEFAULT_GOAL := help

PYTHON    ?= python3
VENV      ?= .venv
RUN_DIR   ?= .run
MQTT_PORT ?= 1883
WS_PORT   ?= 33033
ADMIN_PORT ?= 33080
NODE_DIR  := tests/e2e/node
SUDO      := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

VENV_PY      := $(VENV)/bin/python
INSTALLED    := $(VENV)/.ocpp-gw-installed
TEST_INSTALL := $(VENV)/.ocpp-gw-test-installed
NODE_MODULES := $(NODE_DIR)/node_modules/.package-lock.json

# "what to look for:Debian package" pairs; see deps-% below.
RUN_DEPS  := python3:python3 venv:python3-venv mosquitto:mosquitto
# The fast tiers (unit, bench_tools, security, integration, e2e): mosquitto_sub/_pub and stdbuf for the README
# walkthrough test, openssl for the test PKI, node and npm for the ocpp-rpc charge point.
FAST_DEPS := $(RUN_DEPS) mosquitto_sub:mosquitto-clients stdbuf:coreutils openssl:openssl node:nodejs npm:npm
# The slow tiers add: systemd-analyze (packaging), Chromium and its driver (browser), HAProxy and RabbitMQ (cluster).
TEST_DEPS := $(FAST_DEPS) systemd-analyze:systemd chromium:chromium chromedriver:chromium-driver haproxy:haproxy rabbitmq-server:rabbitmq-server
DEPS_run  := $(RUN_DEPS)
DEPS_fast := $(FAST_DEPS)
DEPS_test := $(TEST_DEPS)
DEPS_browser := $(FAST_DEPS) chromium:chromium chromedriver:chromium-driver

.PHONY: help run test test-fast bench clean distclean deps-run deps-fast deps-test deps-browser deb deps-deb \
	test-packaging console-screenshot

help:
	@echo "make run                - local Mosquitto + the gateway in the foreground (Ctrl-C stops both);"
	echo "                          ports: make run WS_PORT=33033 ADMIN_PORT=33080 MQTT_PORT=1883"
	echo "make test-fast          - the fast tiers (pytest -m 'not slow'): no Chromium, HAProxy, RabbitMQ, .deb"
	echo "make test               - every test; installs Chromium, HAProxy, RabbitMQ and the .deb on this machine"
	echo "make console-screenshot - refresh docs/img/console.png with the browser test"
	echo "make bench              - benchmarks (python -m bench), not part of make test"
	echo "make deb                - the Debian package, built in a copy of the tree, into dist/"
	echo "make clean              - remove build output, caches, node_modules and $(RUN_DIR)/ (distclean: $(VENV) too)"

# Install the Debian packages whose command is missing; nothing (not even apt-get update) when all are there.
deps-run deps-fast deps-test deps-browser: deps-%:
	@missing=""
	for pair in $(DEPS_$*); do
		what=$${pair%%:*}; package=$${pair#*:}
		case $$what in
			venv)      $(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || missing="$$missing $$package" ;;
			mosquitto) command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || missing="$$missing $$package" ;;
			*)         command -v $$what >/dev/null || missing="$$missing $$package" ;;
		esac
	done
	if [ -n "$$missing" ]; then
		echo "installing:$$missing"
		$(SUDO) apt-get update -q
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing
	fi

$(VENV_PY):
	@$(PYTHON) -m venv $(VENV)

$(INSTALLED): setup.py pyproject.toml | $(VENV_PY)
	@$(VENV_PY) -m pip install -q -e .
	touch $@

$(TEST_INSTALL): setup.py pyproject.toml | $(VENV_PY)
	@$(VENV_PY) -m pip install -q -e '.[test]'
	touch $@ $(INSTALLED)

$(NODE_MODULES): $(NODE_DIR)/package.json $(NODE_DIR)/package-lock.json
	@cd $(NODE_DIR) && npm ci --no-audit --no-fund

test: deps-test deps-deb $(TEST_INSTALL) $(NODE_MODULES)
	@$(VENV_PY) -m pytest -q

# The fast tiers only (tests/conftest.py marks the slow ones): what a change is checked with before make test.
test-fast: deps-fast $(TEST_INSTALL) $(NODE_MODULES)
	@$(VENV_PY) -m pytest -q -m "not slow"

# The README's picture of the console, taken by the browser test into a temporary directory and copied here;
# test runs never write into docs/.
console-screenshot: deps-browser $(TEST_INSTALL)
	@shots=$$(mktemp -d)
	trap 'rm -rf "$$shots"' EXIT
	OCPP_GW_SCREENSHOTS=$$shots $(VENV_PY) -m pytest -q \
		"tests/browser/test_console.py::test_kick_closes_the_connection_and_the_page_shows_it_gone"
	cp "$$shots/console-readme.png" docs/img/console.png
	echo "docs/img/console.png refreshed"

# The dev setup lives in $(RUN_DIR)/: a config derived from etc/ocpp.conf (regenerated each time), a credentials
# file (made once, its CP001 password printed once), and a Mosquitto with Nagle off that stops with the gateway.
run: deps-run $(INSTALLED)
	@mkdir -p $(RUN_DIR)
	{
		echo "# Generated by 'make run' from etc/ocpp.conf; edit that file (or run ocpp-gw -c on your own copy)."
		grep -Ev '^[[:space:]]*(auth\.file|mqtt\.server|ocpp\.listener\.ws|admin\.listener)[[:space:]]*=' etc/ocpp.conf
		echo "auth.file = $(abspath $(RUN_DIR))/passwd"
		echo "mqtt.server = 127.0.0.1:$(MQTT_PORT)"
		echo "ocpp.listener.ws = 0.0.0.0:$(WS_PORT)"
		echo "admin.listener = 127.0.0.1:$(ADMIN_PORT)"
	} > $(RUN_DIR)/ocpp.conf
	if [ ! -s $(RUN_DIR)/passwd ]; then
		password=$$($(VENV_PY) -c 'import secrets; print(secrets.token_urlsafe(12))')
		if ! problem=$$(echo "$$password" | $(VENV)/bin/ocpp-gw passwd add CP001 --password-stdin \
				--file $(RUN_DIR)/passwd 2>&1); then echo "$$problem"; exit 1; fi
		echo "dev credentials (shown once; delete $(RUN_DIR)/passwd for new ones): CP001 / $$password"
	fi
	broker_pid=""
	trap '[ -z "$$broker_pid" ] || kill $$broker_pid 2>/dev/null || true' EXIT
	mqtt_listening() { (exec 3<>/dev/tcp/127.0.0.1/$(MQTT_PORT)) 2>/dev/null; }
	if mqtt_listening; then
		echo "note: a broker already listens on 127.0.0.1:$(MQTT_PORT); using it (make run MQTT_PORT=... for our own)"
	else
		printf '%s\n' "listener $(MQTT_PORT) 127.0.0.1" "allow_anonymous true" "set_tcp_nodelay true" \
			"persistence false" "max_queued_messages 100000" "log_dest stderr" > $(RUN_DIR)/mosquitto.conf
		$$(command -v mosquitto || echo /usr/sbin/mosquitto) -c $(RUN_DIR)/mosquitto.conf 2>$(RUN_DIR)/mosquitto.log &
		broker_pid=$$!
		for _ in $$(seq 100); do mqtt_listening && break; kill -0 $$broker_pid 2>/dev/null || break; sleep 0.05; done
		mqtt_listening || { echo "mosquitto did not start:"; cat $(RUN_DIR)/mosquitto.log; exit 1; }
		echo "mosquitto on 127.0.0.1:$(MQTT_PORT) (log: $(RUN_DIR)/mosquitto.log)"
	fi
	$(VENV)/bin/ocpp-gw -c $(RUN_DIR)/ocpp.conf

# The Build-Depends of debian/control (and build-essential), installed only when dpkg-checkbuilddeps misses some.
deps-deb:
	@if ! command -v dpkg-checkbuilddeps >/dev/null || ! dpkg-checkbuilddeps >/dev/null 2>&1; then
		echo "installing the build dependencies of debian/control"
		$(SUDO) apt-get update -q
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get build-dep -y -q --no-install-recommends ./
	fi

deb: deps-deb
	@debian/build-deb dist

# Builds, installs on this machine, runs and purges the package (needs root or sudo); also part of make test.
test-packaging: deps-test deps-deb $(TEST_INSTALL)
	@$(VENV_PY) -m pytest -q tests/packaging

# Benchmarks of issue 7 (docs/performance.md), not part of `make test`: gateway vs a mobilityhouse `ocpp`
# central system, same load, same run. `make bench BENCH_ARGS=--quick` is a smoke check under a minute.
# Then the storm with and without per-CP credentials on the gateway (issue 17), with --quick and
# --update-doc passed on.
BENCH_ARGS ?=
bench: deps-run $(TEST_INSTALL)
	@[ -x $(VENV)/bin/py-spy ] || $(VENV_PY) -m pip install -q -e '.[test,bench]'
	$(VENV_PY) -m bench $(BENCH_ARGS)
	$(VENV_PY) -m bench.storm_auth --rounds 2 --set storm_timeout=300 $(filter --quick --update-doc,$(BENCH_ARGS))

clean:
	@rm -rf build dist ./*.egg-info .pytest_cache .hypothesis $(RUN_DIR) $(NODE_DIR)/node_modules
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	@rm -rf $(VENV)
