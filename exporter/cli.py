"""The ``promdrift`` command line.

    promdrift baseline train.csv -o baseline.json --model churn --categorical plan,region \\
        --prediction score --ignore customer_id --bins 20
    promdrift show baseline.json
    promdrift exporter --baseline baseline.json --listen 127.0.0.1:9108 --workers 4
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import List, Optional

from promdrift.instrumentation import Baseline, BaselineError, __version__
from promdrift.instrumentation.baseline import CategoricalColumn


def _split(value: Optional[List[str]]) -> List[str]:
    out: List[str] = []
    for v in value or []:
        out += [p.strip() for p in v.split(",") if p.strip()]
    return out


def _summary(b: Baseline) -> str:
    lines = [f"model {b.model!r}: {b.rows} rows, {len(b.features)} features, "
             f"{len(b.predictions)} prediction outputs, digest {b.digest}"]
    for role, cols in (("feature", b.features), ("output", b.predictions)):
        for c in cols:
            if isinstance(c, CategoricalColumn):
                detail = (f"categorical, {len(c.categories)} of {c.distinct} categories kept, "
                          f"__other__ {c.counts[-1]}")
            else:
                detail = (f"numeric, {len(c.edges) + 1} buckets, min {c.min:g}, max {c.max:g}, "
                          f"mean {c.mean:g}")
            lines.append(f"  {role} {c.name}: {detail}; invalid {c.invalid}")
    return "\n".join(lines)


def cmd_baseline(args: argparse.Namespace) -> int:
    start = time.monotonic()
    baseline = Baseline.fit_csv(
        args.train, model=args.model, categorical=_split(args.categorical),
        predictions=_split(args.prediction) or None, ignore=_split(args.ignore),
        bins=args.bins, top_k=args.top_k, progress=False if args.quiet else None)
    baseline.save(args.output)
    if not args.quiet:
        print(_summary(baseline), file=sys.stderr)
        print(f"wrote {args.output} in {time.monotonic() - start:.1f}s", file=sys.stderr)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    baseline = Baseline.load(args.baseline)
    if args.json:
        json.dump(baseline.to_dict(), sys.stdout, indent=1)
        print()
    else:
        print(_summary(baseline))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="promdrift",
        description="Detect model drift in production with Prometheus.")
    parser.add_argument("--version", action="version", version=f"promdrift {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("baseline", help="fit a drift baseline on a training CSV file",
                       description="Fit per-feature baseline histograms on a CSV file with a "
                                   "header row and write them as one JSON file.")
    p.add_argument("train", help="training data, CSV with a header row")
    p.add_argument("-o", "--output", required=True, help="baseline JSON file to write")
    p.add_argument("--model", required=True, help="model name (the `model` label)")
    p.add_argument("--categorical", action="append", metavar="COLS",
                   help="comma-separated categorical columns (text columns are categorical "
                        "anyway); repeatable")
    p.add_argument("--prediction", action="append", metavar="COLS",
                   help="comma-separated columns holding model outputs; repeatable")
    p.add_argument("--ignore", action="append", metavar="COLS",
                   help="comma-separated columns to skip (ids, timestamps); repeatable")
    p.add_argument("--bins", type=int, default=20, help="buckets per numeric column (default 20)")
    p.add_argument("--top-k", type=int, default=50,
                   help="categories kept per categorical column, the rest is __other__ "
                        "(default 50)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress or summary")
    p.set_defaults(func=cmd_baseline)

    p = sub.add_parser("show", help="summarise a baseline file")
    p.add_argument("baseline", help="baseline JSON file")
    p.add_argument("--json", action="store_true", help="print the whole file, normalised")
    p.set_defaults(func=cmd_show)

    from .serve import add_parser as add_exporter_parser  # `promdrift exporter`
    add_exporter_parser(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except BaselineError as e:
        print(f"promdrift: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("promdrift: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
