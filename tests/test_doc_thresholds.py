"""Every threshold value the README and docs/*.md state is the spec's default
(``promdrift.instrumentation.spec.SETTINGS``), the table the rules, alerts, landing page,
report and command line read: a change of a default fails here until the docs follow.

A value counts as stated when it stands next to its name (``ks_alpha`` 0.01, `min_samples`
(500), a table row ``| `psi_max` | 0.25 |``, ``--min-samples`` defaults to 500, ``0.05 → 0.1``
where the arrow's right side is the default) or in one of the docs' known phrasings
(α = 0.01, "by more than 0.1" of the no-drift value, "at least 500 values"). Values given
to override a default (``--set min_samples=100``, ``psi_max: 0.2``) are not statements of
it. The few deliberate mentions of another value (the changelog's previous default, the
per-feature α = 0.05 a comparison is made with) are listed in :data:`NOT_DEFAULTS`, each
checked to still be there. Critical values written as ``c(α) = x`` are checked against the
formula."""

from __future__ import annotations

import glob
import math
import os
import re
from typing import Dict, Iterator, List, Tuple

import pytest

from promdrift.instrumentation import binning
from promdrift.instrumentation.spec import SETTINGS

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
DOCS = ["README.md"] + sorted(os.path.relpath(p, ROOT)
                              for p in glob.glob(os.path.join(ROOT, "docs", "*.md")))
DEFAULTS = {s.name: s.default for s in SETTINGS}

NUM = r"[0-9]+(?:\.[0-9]+)?(?:e-?[0-9]+)?"
#: a setting's name, in backticks or not, as itself or as a command-line flag (--min-samples)
_NAMES = "|".join(sorted((re.escape(n).replace("_", "[_-]") for n in DEFAULTS),
                         key=len, reverse=True))
#: the name, then what may stand between it and its value, then the value (a number, maybe a
#: percentage, maybe "old → new"; true / false for a boolean). Not after "=", ":" or a quote
#: (an override in an example).
BY_NAME = re.compile(
    rf"(?<![\w-])`?(?:--)?(?P<name>{_NAMES})`?(?![\w=:\"'-])"
    rf"(?:\s*\|\s*|\s*\((?:default\s+|[^()`]*`[^`]*`,\s*)?|\s*,\s*|\s+(?:defaults to\s+)?)"
    rf"(?P<value>{NUM}|true|false)(?P<pct>\s*%)?(?:\s*→\s*(?P<new>{NUM}))?")
#: the docs' phrasings without the name: pattern -> setting
PHRASES = {
    re.compile(rf"(?:α|&alpha;)\s*=\s*(?P<value>{NUM})"): "ks_alpha",
    re.compile(rf"no-drift value by more than (?P<value>{NUM})"): "tvd_max",
    re.compile(rf"at least (?P<value>{NUM}) values"): "min_samples",
    re.compile(rf"no distribution alert before (?P<value>{NUM}) values"): "min_samples",
}
#: c(α) or c(α / F) = value, the KS critical value's factor
C_ALPHA = re.compile(rf"c\((?P<alpha>{NUM})(?:\s*/\s*(?P<tests>[0-9]+))?\)\s*=\s*(?P<c>{NUM})")

#: (file, text around the mention, whitespace collapsed) -> why it is not the default
NOT_DEFAULTS = {
    ("README.md", "(it was the per-feature c = 1.358, α = 0.05:"):
        "the changelog: the default before",
    ("docs/multivariate.md", "the largest 0.103, below even the per-feature α = 0.05 value"):
        "compared with the laxer per-feature test",
    ("docs/multivariate.md", "stays below even the per-feature α = 0.05 critical value"):
        "compared with the laxer per-feature test",
    ("docs/rules.md", "F = 1 and `ks_alpha` 0.05 give the classic 1.358"):
        "the classic per-feature value, for comparison",
}


def flat(path: str) -> str:
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        return " ".join(f.read().split())


def number(value: str, pct: str = "") -> object:
    if value in ("true", "false"):
        return value == "true"
    return float(value) / 100 if pct else float(value)


def mentions() -> Iterator[Tuple[str, str, object, str]]:
    """(file, setting, stated value, context) of every stated threshold value."""
    for path in DOCS:
        text = flat(path)
        found: List[Tuple[int, int, str, object]] = []
        for m in BY_NAME.finditer(text):
            name = m["name"].replace("-", "_")
            value = number(m["new"]) if m["new"] else number(m["value"], m["pct"] or "")
            found.append((m.start(), m.end(), name, value))
        for pattern, name in PHRASES.items():
            for m in pattern.finditer(text):
                found.append((m.start(), m.end(), name, number(m["value"])))
        for start, end, name, value in found:
            context = text[max(0, start - 60):end + 20]
            if any(p == path and snippet in text and text.index(snippet) <= start
                   and end <= text.index(snippet) + len(snippet)
                   for (p, snippet) in NOT_DEFAULTS):
                continue
            yield path, name, value, context


def test_every_stated_threshold_is_the_default():
    wrong = [f"{path}: {name} stated as {value!r}, the default is {DEFAULTS[name]!r}: "
             f"...{context}..." for path, name, value, context in mentions()
             if value != DEFAULTS[name]]
    assert wrong == [], "\n".join(wrong)


def test_the_scan_finds_the_docs_statements():
    """The scan reads what the docs state (a scan that finds nothing would pass anything):
    every setting's row of docs/rules.md's table, and the statements around the docs."""
    found: Dict[str, List[str]] = {}
    for path, name, _, _ in mentions():
        found.setdefault(name, []).append(path)
    assert set(found) == set(DEFAULTS), set(DEFAULTS) - set(found)
    assert {"README.md", "docs/rules.md", "docs/runbook.md", "docs/capture.md",
            "docs/landing.md"} <= {p for paths in found.values() for p in paths}
    assert sum(map(len, found.values())) >= 40


@pytest.mark.parametrize("path,snippet", sorted(NOT_DEFAULTS))
def test_each_deliberate_other_value_is_still_there(path, snippet):
    assert snippet in flat(path)


def test_overrides_in_examples_are_no_statements():
    for text in ("--set min_samples=100", 'thresholds={"psi_max": 0.2}',
                 "{psi_max: 0.2, min_samples: 2000}"):
        assert not BY_NAME.search(text), text
    assert BY_NAME.search("`min_samples` 200 → 500")["new"] == "500"
    assert BY_NAME.search("more than `invalid_ratio_max` (5 %) of")["pct"]


def test_stated_critical_values_follow_the_formula():
    checked = 0
    for path in DOCS:
        for m in C_ALPHA.finditer(flat(path)):
            c = binning.ks_c_alpha(float(m["alpha"]), int(m["tests"] or 1))
            digits = len(m["c"].split(".")[1]) if "." in m["c"] else 0
            assert math.isclose(round(c, digits), float(m["c"])), (path, m.group(0), c)
            checked += 1
    assert checked >= 2
