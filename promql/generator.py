"""Write the rule files, the PrometheusRule manifest and the dashboards of a configuration.

    >>> import tempfile, os
    >>> from promdrift.promql import RulesConfig, generate
    >>> out = tempfile.mkdtemp()
    >>> sorted(os.path.relpath(p, out) for p in generate(RulesConfig(), out, dashboards=False))
    ['alerts.yml', 'prometheusrule.yaml', 'rules.yml']

``promdrift rules -o DIR`` calls :func:`generate`; the committed ``promql/*.yml`` and
``grafana/dashboards/*.json`` are its output for the default configuration (``make
generate``), and a test regenerates them and compares.
"""

from __future__ import annotations

import json
import os
from typing import Dict, List, Optional

from promdrift.instrumentation.files import atomic_write
from promdrift.instrumentation.spec import SETTINGS

from .alerts import alert_group
from .config import ALERT_NAMES, RulesConfig
from .header import generated_by, options_line
from .rules import Group, recording_groups
from .yamlout import scalar, write_groups, write_mapping

__all__ = ["generate", "rules_yaml", "alerts_yaml", "prometheus_rule_yaml", "outputs"]

def _header(config: RulesConfig, what: str) -> List[str]:
    t = config.thresholds
    lines = [
        f"# promdrift {what}. {generated_by()} from",
        f"# {options_line(config)}.",
        "# DO NOT EDIT: change the options (`promdrift rules --help`, docs/metrics.md, \"Generating",
        "# rules and dashboards\") and regenerate.",
        "#",
        "# Every recording rule is computed from promdrift's raw series (docs/metrics.md) and never",
        "# reads another rule, so it is right whatever the order of evaluation and on every engine",
        "# (Prometheus 2 and 3, VictoriaMetrics + vmalert, Thanos and Mimir rulers). Replicas are",
        "# summed before anything is divided; nothing is recorded for a column without baseline.",
        "# Kept labels: " + (", ".join(config.keep_labels) or "none (every target serving a model is pooled)")
        + "; selector: " + (config.selector or "none") + ".",
        f"# Windows: {', '.join(config.windows)} (alerts read {config.alert_window}; invalid values "
        f"and errors {config.fast_window}).",
        "#",
        "# Thresholds in force (promdrift.instrumentation.spec; override with --set NAME=VALUE):",
    ]
    width = max(len(s.name) for s in SETTINGS)
    for s in SETTINGS:
        lines.append(f"#   {s.name.ljust(width)}  {str(t[s.name]).ljust(7)} {s.doc}"[:200])
    lines.append("#")
    lines.append("# Pending durations (for:): " + ", ".join(
        f"{a} {config.pending_for(a)}" for a in ALERT_NAMES))
    return lines


def _document(header: List[str], groups: List[Group]) -> str:
    return "\n".join(header + [""] + write_groups(groups)) + "\n"


def rules_yaml(config: RulesConfig) -> str:
    """``rules.yml``: every recording rule group."""
    return _document(_header(config, "recording rules"), recording_groups(config))


def alerts_yaml(config: RulesConfig) -> str:
    """``alerts.yml``: the alert group (it reads the recording rules of rules.yml)."""
    return _document(_header(config, "alerts"), [alert_group(config)])


def prometheus_rule_yaml(config: RulesConfig) -> str:
    """A prometheus-operator ``PrometheusRule`` with every group of both files."""
    meta = {"name": config.manifest["name"]}
    if config.manifest.get("namespace"):
        meta["namespace"] = config.manifest["namespace"]
    labels = {"app.kubernetes.io/name": "promdrift", "app.kubernetes.io/component": "rules",
              **{str(k): str(v) for k, v in dict(config.manifest.get("labels") or {}).items()}}
    meta["labels"] = labels
    lines = _header(config, "PrometheusRule (prometheus-operator)") + [
        "",
        "apiVersion: monitoring.coreos.com/v1",
        "kind: PrometheusRule",
        "metadata:",
        *write_mapping(meta, 2),
        "spec:",
        *write_groups(recording_groups(config) + [alert_group(config)], indent=2),
    ]
    return "\n".join(lines) + "\n"


def outputs(config: RulesConfig, dashboards: bool = True) -> Dict[str, str]:
    """Relative path -> content of every generated file."""
    out = {
        "rules.yml": rules_yaml(config),
        "alerts.yml": alerts_yaml(config),
        "prometheusrule.yaml": prometheus_rule_yaml(config),
    }
    if dashboards:
        from promdrift.grafana import dashboards as build

        for name, board in build(config).items():
            out[f"dashboards/{name}.json"] = json.dumps(board, indent=2, sort_keys=False) + "\n"
    return out


def generate(config: RulesConfig, outdir: str, dashboards: bool = True,
             dashboards_dir: Optional[str] = None, check: bool = False) -> List[str]:
    """Write every output of ``config`` under ``outdir`` (dashboards under
    ``dashboards_dir``, default ``outdir/dashboards``); return the paths written.

    With ``check``, write nothing and return the paths whose content differs from what
    would be written (missing files included).
    """
    written = []
    for rel, content in outputs(config, dashboards).items():
        if rel.startswith("dashboards/") and dashboards_dir is not None:
            path = os.path.join(dashboards_dir, rel.split("/", 1)[1])
        else:
            path = os.path.join(outdir, rel)
        if check:
            try:
                with open(path, encoding="utf-8") as f:
                    same = f.read() == content
            except OSError:
                same = False
            if not same:
                written.append(path)
            continue
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        atomic_write(path, content, shared=True)
        written.append(path)
    return written
