"""``promdrift rules``: write the rules, alerts, PrometheusRule manifest and dashboards.

    promdrift rules -o out/                                   # the defaults (as shipped)
    promdrift rules -o out/ --keep-label cluster --selector 'job="model-server"'
    promdrift rules -o out/ --window 5m --window 1h --window 1d --set psi_max=0.2
    promdrift rules -o out/ --config rules-config.yaml --for PromdriftFeatureDrift=30m
    promdrift rules -o /tmp/trial --time-scale 60 --set min_samples=100   # alerts in minutes
    promdrift rules -o promql --dashboards-dir grafana/dashboards --check  # CI: up to date?

Options given as flags override those of ``--config`` (a YAML or JSON file of the options
in ``promdrift.promql.config.OPTIONS``).
"""

from __future__ import annotations

import argparse
import sys

from promdrift.instrumentation.spec import SETTINGS

from .config import OPTIONS, RulesConfig, config_from_args
from .generator import generate

__all__ = ["add_parser", "cmd_rules"]


def cmd_rules(args: argparse.Namespace) -> int:
    try:
        base = RulesConfig.load(args.config) if args.config else RulesConfig()
        config = config_from_args(
            base, windows=args.window or (), keep_labels=args.keep_label or (),
            settings=args.set or (), pending=args.pending or (), intervals=args.interval or (),
            ranges=args.range or (), selector=args.selector, runbook_url=args.runbook_url,
            time_scale=args.time_scale, alert_window=args.alert_window,
            fast_window=args.fast_window)
        paths = generate(config, args.output, dashboards=not args.no_dashboards,
                         dashboards_dir=args.dashboards_dir, check=args.check)
    except (ValueError, OSError) as e:
        print(f"promdrift: error: {e}", file=sys.stderr)
        return 2
    if args.check:
        for p in paths:
            print(f"promdrift: {p} is not what `promdrift rules` generates", file=sys.stderr)
        return 1 if paths else 0
    if not args.quiet:
        for p in paths:
            print(f"wrote {p}", file=sys.stderr)
    return 0


def add_parser(sub: "argparse._SubParsersAction") -> None:
    thresholds = ", ".join(f"{s.name} ({s.default})" for s in SETTINGS)
    p = sub.add_parser(
        "rules", help="generate the recording rules, alerts, PrometheusRule and dashboards",
        description="Write rules.yml, alerts.yml, prometheusrule.yaml and dashboards/*.json "
                    "for the given options (defaults: the files promdrift ships).",
        epilog=f"Thresholds for --set: {thresholds}. Config file keys: {', '.join(OPTIONS)}.")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="directory to write to")
    p.add_argument("--config", metavar="FILE", help="YAML or JSON file of options")
    p.add_argument("--window", action="append", metavar="DURATION",
                   help="a window to record statistics for (repeatable; default 5m and 1h)")
    p.add_argument("--alert-window", metavar="DURATION",
                   help="window the distribution alerts read (default 1h)")
    p.add_argument("--fast-window", metavar="DURATION",
                   help="window the invalid-value and error alerts read (default 5m)")
    p.add_argument("--keep-label", action="append", metavar="LABEL",
                   help="target label kept besides model/feature, e.g. cluster (repeatable)")
    p.add_argument("--selector", metavar="MATCHERS",
                   help="label matchers added to every selector, e.g. 'job=\"model\"'")
    p.add_argument("--set", action="append", metavar="NAME=VALUE", help="a threshold (repeatable)")
    p.add_argument("--for", dest="pending", action="append", metavar="ALERT=DURATION",
                   help="pending duration of an alert, '*' for all (repeatable)")
    p.add_argument("--interval", action="append", metavar="WINDOW=DURATION",
                   help="evaluation interval of a window's groups ('global' for none)")
    p.add_argument("--range", action="append", metavar="WINDOW=DURATION",
                   help="explicit range of a window (overrides --time-scale for it)")
    p.add_argument("--runbook-url", metavar="PATTERN",
                   help="runbook link pattern; {alert} and {anchor} are filled in")
    p.add_argument("--time-scale", type=float, metavar="X",
                   help="divide every duration by X (60: an hour becomes a minute)")
    p.add_argument("--dashboards-dir", metavar="DIR",
                   help="where the dashboards go (default DIR/dashboards)")
    p.add_argument("--no-dashboards", action="store_true", help="rules and manifest only")
    p.add_argument("--check", action="store_true",
                   help="write nothing; exit 1 if any file differs from what would be written")
    p.add_argument("-q", "--quiet", action="store_true", help="do not list the files written")
    p.set_defaults(func=cmd_rules)
