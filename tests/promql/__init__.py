"""Tests of the PromQL layer: the generator, the generated files, their promtool tests."""

from integration.engines import ENGINES, PROMETHEUS_ENGINES

#: Every promtool to check rules with: Debian's (Prometheus 2) and Prometheus 3's when
#: fetched into .cache/engines (tests/integration/engines.py knows where).
PROMTOOLS = [p for p in (ENGINES[e].binaries["promtool"] for e in PROMETHEUS_ENGINES) if p]
