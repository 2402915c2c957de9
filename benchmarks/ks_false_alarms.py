"""How often the KS drift condition holds for features that did NOT drift.

    .venv/bin/python benchmarks/ks_false_alarms.py            # the table in benchmarks/README.md

``PromdriftFeatureDrift`` holds for a feature when its binned KS statistic exceeds both the
two-sample critical value ``c * sqrt(1/n + 1/m)`` and the minimum effect size, with at least
``min_samples`` values in the window. Each feature is a separate test at level alpha, so a
model with many features sees the condition hold for *some* undrifted feature far more often
than alpha, the more so when the window holds few values (then the minimum effect size, not
the critical value, is the binding threshold and the statistic's noise is large).

Simulation, per trial and feature: the baseline has ``--bins`` equal-mass bins of a training
sample of ``m`` values, so the population's mass per bin is Dirichlet(m/bins, ...); the live
window holds ``n`` values of the same population, multinomial over those bins. The table
gives the probability that at least one of F undrifted features meets the condition in one
rule evaluation (with the thresholds of promql/rules.yml's config group).
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

import numpy as np


def p_any(features: int, n: int, m: int, bins: int, c_alpha: float, min_effect: float,
          trials: int, rng: np.random.Generator) -> float:
    hits = 0
    base_cdf = np.arange(1, bins + 1) / bins
    crit = c_alpha * np.sqrt(1 / n + 1 / m)
    for _ in range(trials):
        pop = rng.dirichlet(np.full(bins, m / bins), size=features)
        live = np.array([rng.multinomial(n, p) for p in pop])
        ks = np.max(np.abs(np.cumsum(live, axis=1) / n - base_cdf), axis=1)
        hits += bool(np.any((ks > crit) & (ks > min_effect)))
    return hits / trials


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--m", type=int, default=10000, help="baseline (training) count")
    p.add_argument("--bins", type=int, default=20)
    p.add_argument("--c-alpha", type=float, default=1.358)
    p.add_argument("--min-effect", type=float, default=0.1)
    p.add_argument("--trials", type=int, default=400)
    p.add_argument("--features", default="10,100,1000")
    p.add_argument("--n", default="200,300,500,1000,2000")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    feats = [int(x) for x in args.features.split(",")]
    ns = [int(x) for x in args.n.split(",")]
    print(f"P(at least one undrifted feature meets the drift condition in one evaluation); "
          f"m = {args.m}, {args.bins} bins, c = {args.c_alpha}, minimum effect "
          f"{args.min_effect}, {args.trials} trials per cell\n")
    print("| window count n | " + " | ".join(f"{f} features" for f in feats) + " |")
    print("|---|" + "---|" * len(feats))
    for n in ns:
        cells = [p_any(f, n, args.m, args.bins, args.c_alpha, args.min_effect,
                       args.trials if f <= 100 else max(50, args.trials // 4), rng)
                 for f in feats]
        print(f"| {n} | " + " | ".join(f"{c:.3f}" for c in cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
