# promdrift developer commands.  `make test` and `make demo` work on a fresh Debian machine:
# they install what they need (Debian packages via apt-get as root, Python deps in .venv).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# Debian packages installed when missing (see system-deps): prometheus and
# prometheus-alertmanager for the demo and the tests; docker-compose and chromium for the tests.
# The tests run the rules on an engine matrix (docs/engines.md): the system's Prometheus 2, and
# Prometheus 3 + Alertmanager 0.33 and VictoriaMetrics + vmalert from Debian unstable, which
# `make engines` (scripts/fetch-engines) unpacks into .cache/engines/.

.PHONY: test pytest check-rules system-deps engines venv bench demo clean generate

# Under `make test` an engine whose binaries are missing fails its tests instead of skipping.
test: TEST_DEPS = 1
test: export PROMDRIFT_REQUIRE_ENGINES = 1
test: system-deps engines venv pytest

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# Installs Debian's Prometheus and Alertmanager when a binary is missing (the demo and the
# tests run against them). With TEST_DEPS=1 (as `make test` sets it) also docker-compose (the
# tests validate docker-compose.yml with `docker-compose config`; no engine needed) and
# Chromium (the landing page's browser test). With BENCH_DEPS=1 (`make bench`) also
# apache2-utils, whose `ab` loads the servers of benchmarks/request_path.py.
system-deps:
	@missing=""; \
	command -v promtool >/dev/null || missing="$$missing prometheus"; \
	command -v prometheus >/dev/null || missing="$$missing prometheus"; \
	command -v prometheus-alertmanager >/dev/null || missing="$$missing prometheus-alertmanager"; \
	if [ -n "$(TEST_DEPS)" ]; then \
	  command -v docker-compose >/dev/null || missing="$$missing docker-compose"; \
	  command -v chromium >/dev/null || missing="$$missing chromium"; \
	fi; \
	if [ -n "$(BENCH_DEPS)" ]; then \
	  command -v ab >/dev/null || missing="$$missing apache2-utils"; \
	fi; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# The rules, alerts, PrometheusRule manifest and dashboards are generated (never edited by
# hand): `make generate` after changing promdrift.promql, promdrift.grafana or the spec.
generate: venv
	$(BIN)/promdrift rules -o promql --dashboards-dir grafana/dashboards

# Prometheus 3.5, Alertmanager 0.33 and VictoriaMetrics from Debian unstable, once (a stamp
# keeps the versions; `scripts/fetch-engines --refresh` takes sid's newest).
engines:
	scripts/fetch-engines

# promtool check/test rules with both promtools, vmalert -dryRun, vmalert-tool unittest.
check-rules: venv
	$(BIN)/python -m pytest -q tests/promql/test_rule_engines.py

# The rule-engine tests run in a second pytest beside the rest (scripts/run-tests says why);
# PROMDRIFT_SERIAL_TESTS=1 runs one pytest over everything.
pytest: venv
	scripts/run-tests $(BIN)/python

# The whole loop on this machine, no Docker: `make demo ARGS=--keep-running` leaves it up.
demo: system-deps venv
	$(BIN)/python demo/run.py $(ARGS)

bench: BENCH_DEPS = 1
bench: system-deps venv
	OPENBLAS_NUM_THREADS=1 $(BIN)/python benchmarks/observe.py
	$(BIN)/python benchmarks/exporter.py
	$(BIN)/python benchmarks/landing.py
	OPENBLAS_NUM_THREADS=1 $(BIN)/python benchmarks/multivariate.py
	$(BIN)/python benchmarks/request_path.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis artifacts .demo
