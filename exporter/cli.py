"""The ``promdrift`` command line.

    promdrift baseline train.csv -o baseline.json --model churn --categorical plan,region \\
        --prediction score --ignore customer_id --bins 20 [--delimiter ';'] \\
        [--multivariate [K]] [--embeddings vectors.npy [--embedding-components K]]
    promdrift show baseline.json
    promdrift report --baseline baseline.json CAPTURE_DIR -o report.html [--train train.csv] \\
        [--since 2026-11-22T00:00:00Z] [--until 2026-11-23T00:00:00Z]
    promdrift exporter --baseline baseline.json --listen 127.0.0.1:9108 --workers 4
    promdrift rules -o out/ [--keep-label cluster] [--set psi_max=0.2] [--time-scale 60]
    promdrift trial --target 127.0.0.1:8000 [--until-alerts 1 --duration 300]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from typing import List, Optional

from promdrift import __version__
from promdrift.extras import MissingExtra
from promdrift.instrumentation import Baseline, BaselineError, BaselineWarning
from promdrift.instrumentation.spec import Thresholds as _Thresholds
from promdrift.instrumentation.training.baseline import CategoricalColumn

_SPEC = _Thresholds()  # the one table of thresholds (rules, landing page, report, CLI)


def _split(value: Optional[List[str]]) -> List[str]:
    out: List[str] = []
    for v in value or []:
        out += [p.strip() for p in v.split(",") if p.strip()]
    return out


def _summary(b: Baseline) -> str:
    lines = [f"model {b.model!r}: {b.rows} rows, {len(b.features)} features, "
             f"{len(b.predictions)} prediction outputs, digest {b.digest}"]
    if b.multivariate is not None:
        m = b.multivariate
        lines.append(f"multivariate: PCA of {m.dim} numeric features, {m.n_components} "
                     f"components ({m.explained_ratio:.1%} of the standardised variance)")
    if b.embedding is not None:
        e = b.embedding
        lines.append(f"embedding: {e.dim} dimensions, {e.n_components} components "
                     f"({e.explained_ratio:.1%} of the variance)")
    for role, cols in (("feature", b.features), ("derived", b.derived),
                       ("output", b.predictions)):
        for c in cols:
            if isinstance(c, CategoricalColumn):
                detail = (f"categorical, {len(c.categories)} of {c.distinct} categories kept, "
                          f"__other__ {c.counts[-1]}")
            else:
                detail = (f"numeric, {len(c.edges) + 1} buckets, min {c.min:g}, max {c.max:g}, "
                          f"mean {c.mean:g}")
            lines.append(f"  {role} {c.name}: {detail}; invalid {c.invalid}")
    return "\n".join(lines)


def _delimiter(path: str, given: Optional[str]) -> str:
    """``--delimiter`` (``\\t`` spelled out is a tab), or the one detected in ``path``."""
    from promdrift.instrumentation.training.tabular import detect_delimiter
    if given is not None:
        return "\t" if given in ("\\t", "tab", "TAB") else given
    try:
        with open(path, "rb") as f:
            found = detect_delimiter(f.read(64 << 10).decode("utf-8-sig", "replace"))
    except OSError:
        return ","  # read_csv names the file and the error
    if found != ",":
        print(f"promdrift: reading {os.path.basename(path)} with delimiter {found!r} "
              f"(detected; --delimiter to choose)", file=sys.stderr)
    return found


def _components(value: str) -> int:
    """``--multivariate K`` / ``--embedding-components K``: a positive integer."""
    try:
        k = int(value)
    except ValueError:
        k = 0
    if k < 1:
        raise argparse.ArgumentTypeError(f"must be a number of components >= 1, got {value!r}")
    return k


def load_embeddings(path: str) -> "np.ndarray":
    """A ``(rows, dim)`` matrix of training vectors: a ``.npy`` file (``numpy.save``) or a
    text file of comma-separated numbers, one vector per line, no header."""
    import numpy as np
    try:
        if path.endswith(".npy"):
            x = np.load(path, allow_pickle=False)
        else:
            x = np.loadtxt(path, delimiter=",", ndmin=2, dtype=np.float64)
    except OSError as e:
        raise BaselineError(f"cannot read embeddings {path}: {e.strerror or e}") from None
    except ValueError as e:
        raise BaselineError(f"{path}: not a matrix of numbers ({e})") from None
    if x.ndim != 2:
        raise BaselineError(f"{path}: expected a 2-D array (rows x dimensions), got "
                            f"{x.ndim} dimension(s)")
    return x


def cmd_baseline(args: argparse.Namespace) -> int:
    start = time.monotonic()
    embeddings = load_embeddings(args.embeddings) if args.embeddings else None
    if args.embedding_components is not None and embeddings is None:
        raise BaselineError("--embedding-components needs --embeddings")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", BaselineWarning)
        baseline = Baseline.fit_csv(
            args.train, model=args.model, categorical=_split(args.categorical),
            numeric=_split(args.numeric), predictions=_split(args.prediction) or None,
            ignore=_split(args.ignore), bins=args.bins, top_k=args.top_k,
            delimiter=_delimiter(args.train, args.delimiter),
            progress=False if args.quiet else None,
            multivariate=args.multivariate, embeddings=embeddings,
            embedding_components=args.embedding_components)
    for w in caught:
        if issubclass(w.category, BaselineWarning):
            print(f"promdrift: warning: {w.message}", file=sys.stderr)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
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
    p.add_argument("--numeric", action="append", metavar="COLS",
                   help="comma-separated columns to fit as numbers (integer prediction "
                        "outputs with few values are warned about unless listed here or in "
                        "--categorical); repeatable")
    p.add_argument("--prediction", action="append", metavar="COLS",
                   help="comma-separated columns holding the model's outputs (its "
                        "predictions, not the labels); repeatable")
    p.add_argument("--ignore", action="append", metavar="COLS",
                   help="comma-separated columns to skip (ids, timestamps, an index column "
                        "'Unnamed: 0'); repeatable")
    p.add_argument("--delimiter", metavar="CHAR",
                   help="field delimiter of the CSV file, one character ('\\t' for a tab); "
                        "default: detected from the first lines among , ; tab |")
    p.add_argument("--bins", type=int, default=20, help="buckets per numeric column (default 20)")
    p.add_argument("--top-k", type=int, default=50,
                   help="categories kept per categorical column, the rest is __other__ "
                        "(default 50)")
    p.add_argument("--multivariate", nargs="?", const=True, default=False, type=_components,
                   metavar="K",
                   help="also fit a PCA of the numeric features: derived features "
                        "__pca_error__ (reconstruction error) and __pca_01__ ... (component "
                        "scores); K components (default: enough for 90%% of the variance, "
                        "at most 20). See docs/multivariate.md")
    p.add_argument("--embeddings", metavar="FILE",
                   help="the training rows' embedding vectors, one per row: a .npy file "
                        "(numpy.save of a rows x dim array) or comma-separated numbers, one "
                        "vector per line; derived features __emb_error__, __emb_norm__, "
                        "__emb_cosine__, __emb_01__ ...")
    p.add_argument("--embedding-components", type=_components, metavar="K",
                   help="components of the embedding PCA (default as for --multivariate)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress or summary")
    p.set_defaults(func=cmd_baseline)

    p = sub.add_parser("show", help="summarise a baseline file")
    p.add_argument("baseline", help="baseline JSON file")
    p.add_argument("--json", action="store_true", help="print the whole file, normalised")
    p.set_defaults(func=cmd_show)

    add_report_parser(sub)
    from .service.command import add_parser as add_exporter_parser  # `promdrift exporter`
    add_exporter_parser(sub)
    from promdrift.promql.cli import add_parser as add_rules_parser  # `promdrift rules`
    add_rules_parser(sub)
    from .trial import add_parser as add_trial_parser  # `promdrift trial`
    add_trial_parser(sub)
    return parser


def cmd_report(args: argparse.Namespace) -> int:
    import os

    from promdrift.exporter.report import (ReportError, Thresholds, build_report, utc_time,
                                           write_report)
    from promdrift.instrumentation.training.tabular import Progress

    start = time.monotonic()
    violations_path = args.violations or os.path.join(
        os.path.dirname(os.path.abspath(args.output)), "violations.json")
    progress = None if args.quiet else (
        lambda total: Progress("reading capture", total, min_total=8 << 20))
    try:
        thresholds = Thresholds(
            datatype=args.datatype_threshold, completeness=args.completeness_tolerance,
            drift=args.drift_threshold, ks_alpha=args.ks_alpha, domain=args.domain_threshold,
            range_tolerance=args.range_tolerance, range_share=args.range_threshold,
            min_samples=args.min_samples)
        baseline = Baseline.load(args.baseline)
        since = utc_time(args.since, "--since") if args.since else None
        until = utc_time(args.until, "--until") if args.until else None
        report = build_report(baseline, args.capture_dir, thresholds=thresholds,
                              train=args.train, model=args.model,
                              partial=not args.complete_only, progress=progress,
                              since=since, until=until, coerce_numbers=args.coerce_numbers)
        write_report(report, args.output, violations_path)
    except (ReportError, OSError) as e:
        print(f"promdrift: error: {e}", file=sys.stderr)
        return 2
    if not args.quiet:
        window = ""
        if report.window:
            window = (f" {report.window} ({report.outside_window} rows outside skipped"
                      + (f", {report.untimed} without a time" if report.untimed else "") + ")")
        print(f"{report.rows} captured rows of model {report.model!r} from {report.files} "
              f"files{window}; {len(report.violations)} violations; KS {report.ks_method}",
              file=sys.stderr)
        print(f"wrote {args.output} and {violations_path} in {time.monotonic() - start:.1f}s",
              file=sys.stderr)
    return 1 if args.fail_on_violations and report.violations else 0


def add_report_parser(sub: "argparse._SubParsersAction") -> None:
    """The ``promdrift report`` subcommand (docs/capture.md)."""
    p = sub.add_parser(
        "report", help="drift report (HTML + violations.json) over captured rows",
        description="Compare the rows a DataCapture wrote with a baseline: exact statistics "
                    "(KS, PSI, missing / invalid / unseen rates) and constraint violations, "
                    "written as a self-contained HTML page and a violations.json file.")
    p.add_argument("capture_dir", metavar="CAPTURE_DIR", help="directory of capture files")
    p.add_argument("--baseline", required=True, help="baseline JSON file")
    p.add_argument("-o", "--output", required=True, help="HTML report to write")
    p.add_argument("--violations", metavar="PATH",
                   help="violations JSON to write (default: violations.json next to the report)")
    p.add_argument("--train", metavar="CSV",
                   help="training data (CSV with a header row) for the exact two-sample KS; "
                        "without it KS is computed at the baseline's bin edges")
    p.add_argument("--model", help="model whose rows to read (default: the baseline's)")
    p.add_argument("--complete-only", action="store_true",
                   help="read only finished .jsonl files, not .jsonl.part files")
    p.add_argument("--since", metavar="TIME",
                   help="only rows recorded at or after TIME, ISO 8601 with Z or an offset "
                        "(2026-11-22T00:00:00Z, 2026-11-22T01:00+01:00)")
    p.add_argument("--until", metavar="TIME",
                   help="only rows recorded before TIME (exclusive; same format)")
    p.add_argument("--drift-threshold", type=float, default=_SPEC.ks_min_effect,
                   help="KS minimum effect / total variation distance above its no-drift "
                        f"value that fails baseline_drift_check (default {_SPEC.ks_min_effect:g}, "
                        "as the alerts)")
    p.add_argument("--ks-alpha", type=float, default=_SPEC.ks_alpha,
                   help="level of the KS test, family-wise over the model's numeric columns "
                        f"as in the alerts (default {_SPEC.ks_alpha:g})")
    p.add_argument("--datatype-threshold", type=float, default=0.1,
                   help="share of wrong-type values for data_type_check (default 0.1)")
    p.add_argument("--completeness-tolerance", type=float, default=0.05,
                   help="allowed drop of the valid-value share below training (default 0.05)")
    p.add_argument("--domain-threshold", type=float, default=0.1,
                   help="unseen-category share above training __other__ share for "
                        "categorical_values_check (default 0.1)")
    p.add_argument("--range-tolerance", type=float, default=0.0,
                   help="widen the training [min, max] by this share of its width (default 0)")
    p.add_argument("--range-threshold", type=float, default=0.01,
                   help="share of values outside the range for range_check (default 0.01)")
    p.add_argument("--min-samples", type=int, default=_SPEC.min_samples,
                   help=f"valid values a drift check needs (default {_SPEC.min_samples}, as "
                        "the alerts)")
    p.add_argument("--no-coerce-numbers", dest="coerce_numbers", action="store_false",
                   help="count a captured string for a numeric column as wrong_type, as a "
                        "monitor with coerce_numbers=False (the exporter's "
                        "--no-coerce-numbers) counted it (default: a string spelling a "
                        "number counts as that number)")
    p.add_argument("--fail-on-violations", action="store_true",
                   help="exit with status 1 when there is any violation")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress or summary")
    p.set_defaults(func=cmd_report)


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (BaselineError, MissingExtra) as e:  # a missing extra: one line naming it
        print(f"promdrift: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("promdrift: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
