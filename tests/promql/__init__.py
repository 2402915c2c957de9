"""Tests of the PromQL layer: the generator, the generated files, their promtool tests."""

import os
import shutil

_ROOT = os.path.join(os.path.dirname(__file__), "..", "..")

#: Every promtool to run the rule tests with: Debian's (Prometheus 2.42) and Prometheus 3's
#: when fetched into .cache/engines.
PROMTOOLS = [p for p in (shutil.which("promtool"),
                         os.path.join(_ROOT, ".cache", "engines", "root", "usr", "bin", "promtool"))
             if p and os.path.exists(p)]
