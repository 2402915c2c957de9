"""How often the distribution alerts' conditions hold for data that did NOT drift.

    .venv/bin/python benchmarks/ks_false_alarms.py            # the tables in benchmarks/README.md

Each feature is tested on its own, so a model with F features sees a condition hold for
*some* undrifted feature far more often than for one. The tables give, for one rule
evaluation and the thresholds of promql/rules.yml's config group:

- ``PromdriftFeatureDrift``: binned KS > ``c * sqrt(1/n + 1/m)`` and KS > ``ks_min_effect``;
- ``PromdriftFeaturePSIHigh``: PSI (empty bins floored at ``psi_bin_floor``) > ``psi_max``;
- ``PromdriftCategoricalDrift``: total variation distance (TVD) minus its no-drift value
  ``0.5 * sum_i sqrt(q_i (1 - q_i)) * sqrt(2/pi * (1/n + 1/m))`` (q_i the baseline shares,
  ``model_feature:promdrift_category_tvd_noise:1h``) > ``tvd_max``, and, labelled "before",
  the uncorrected TVD > ``tvd_max`` of earlier releases;
- ``PromdriftPredictionClassDrift``: the same TVD conditions for one classifier output;

as a function of the window count n (the alerts also need n >= ``min_samples``). The
columns are the probability for one feature (with its Monte-Carlo count) and the
family-wise probability ``1 - (1 - p)^F`` that at least one of F independent undrifted
features meets the condition. Positively correlated features make the family-wise figure
smaller, not larger. When no draw met the condition the table gives the 95% upper bound ``3 / draws``
("rule of three") and the family-wise figure of that bound, prefixed by ``<``.

Numeric features: the baseline has ``bins`` equal-mass bins of a training sample of m
values, so the population's true mass in those bins is Dirichlet(m/bins, ...) (the spacings
of uniform order statistics) while the baseline's recorded counts are m/bins each; the live
window holds n values of the same population, multinomial over the bins.
tests/test_false_alarms.py checks this shortcut against a direct simulation with real
quantile edges fitted by ``Baseline``.

Categorical features and classes: a population with K categories (uniform shares, which give
the largest expected TVD for a given K, or Zipf shares 1/k), a baseline of m training values drawn from it
(multinomial) and a live window of n values drawn from it.

``PromdriftUnseenCategoryShareHigh`` (live ``__other__`` share minus the baseline's >
``unseen_share_excess``, not corrected for noise) gets its own last table, by the baseline's
``__other__`` share q: the difference has sd sqrt(q (1 - q) (1/n + 1/m)).

The power table is the other side: the probability that one *drifted* categorical feature
meets the condition, the live population being the baseline population moved by a given TVD
(a share of the mass moved evenly onto the less frequent half of the categories).

Cells are simulated in batches until 200 draws met the condition or ``--draws`` draws were
made (a twentieth of that for the single prediction output), so rare events get the most
draws.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

BATCH = 20_000
POWER_DRAWS = 20_000
STOP_HITS = 200

#: Thresholds of promql/rules.yml's promdrift-config group.
C_ALPHA = 1.358
KS_MIN_EFFECT = 0.1
PSI_FLOOR = 1e-4
PSI_MAX = 0.25
TVD_MAX = 0.1
UNSEEN_EXCESS = 0.05


# ------------------------------------------------------------------ the statistics, vectorised
def ks_psi_numeric(n: int, m: int, bins: int, size: int, rng: np.random.Generator,
                   c_alpha: float = C_ALPHA, min_effect: float = KS_MIN_EFFECT,
                   floor: float = PSI_FLOOR, psi_max: float = PSI_MAX,
                   dirichlet: bool = True) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``size`` undrifted numeric features: (KS statistics, KS condition, PSI > psi_max).

    ``dirichlet=False`` draws the live window from the baseline's bin shares themselves,
    ignoring that the training sample only estimates them (a wrong shortcut, kept so the test
    can show that it is detectably wrong).
    """
    if dirichlet:
        pop = rng.dirichlet(np.full(bins, m / bins), size=size)
    else:
        pop = np.full((size, bins), 1.0 / bins)
    live = rng.multinomial(n, pop)
    ks = np.max(np.abs(np.cumsum(live, axis=1) / n - np.arange(1, bins + 1) / bins), axis=1)
    crit = c_alpha * np.sqrt(1 / n + 1 / m)
    p = np.maximum(live / n, floor)
    q = max(1.0 / bins, floor)
    psi = np.sum((p - q) * np.log(p / q), axis=1)
    return ks, (ks > crit) & (ks > min_effect), psi > psi_max


def tvd_noise(base: np.ndarray, n: int, m: int) -> np.ndarray:
    """Expected TVD without drift, as the recording rule computes it from baseline shares."""
    return 0.5 * np.sum(np.sqrt(base * (1 - base)), axis=-1) * np.sqrt(
        2 / np.pi * (1 / n + 1 / m))


def tvd_categorical(n: int, m: int, shares: np.ndarray, size: int,
                    rng: np.random.Generator,
                    live_shares: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray]:
    """(TVD, no-drift TVD) of ``size`` categorical features with population ``shares``.

    The live window is drawn from ``live_shares`` (a drifted population) when given.
    """
    base = rng.multinomial(m, shares, size=size) / m
    live = rng.multinomial(n, shares if live_shares is None else live_shares, size=size) / n
    return 0.5 * np.sum(np.abs(live - base), axis=1), tvd_noise(base, n, m)


def drifted(shares: np.ndarray, tvd: float) -> np.ndarray:
    """``shares`` moved by total variation ``tvd`` towards its less frequent half."""
    k = len(shares)
    low = np.argsort(shares, kind="stable")[: k // 2]
    target = np.zeros(k)
    target[low] = 1.0 / len(low)
    eps = tvd / (0.5 * np.abs(target - shares).sum())
    if not 0 < eps <= 1:
        raise ValueError(f"cannot move these shares by {tvd}")
    return (1 - eps) * shares + eps * target


def tvd_conditions(n: int, m: int, shares: np.ndarray, tvd_max: float, size: int,
                   rng: np.random.Generator,
                   live_shares: Optional[np.ndarray] = None) -> List[np.ndarray]:
    """[uncorrected TVD > tvd_max, TVD - no-drift TVD > tvd_max] for ``size`` features."""
    tvd, noise = tvd_categorical(n, m, shares, size, rng, live_shares)
    return [tvd > tvd_max, tvd - noise > tvd_max]


# ------------------------------------------------------------------ Monte-Carlo cells
class Cell:
    """Hits and draws of one condition in one table cell."""

    def __init__(self) -> None:
        self.hits = 0
        self.draws = 0

    def add(self, condition: np.ndarray) -> None:
        self.hits += int(np.count_nonzero(condition))
        self.draws += int(condition.size)

    @property
    def p(self) -> float:
        return self.hits / self.draws

    def bound(self) -> float:
        """The estimate, or the 95% upper bound 3/draws when there was no hit."""
        return self.p if self.hits else 3.0 / self.draws

    def family(self, features: int) -> float:
        return 1.0 - (1.0 - self.bound()) ** features

    def per_feature_text(self) -> str:
        if self.hits == 0:
            return f"< {3.0 / self.draws:.1e} (0/{self.draws:,})"
        return f"{self.p:.1e} ({self.hits:,}/{self.draws:,})"

    def family_text(self, features: int) -> str:
        f = self.family(features)
        text = "1.000" if f > 0.9995 else f"{f:.3f}" if f >= 0.001 else f"{f:.0e}"
        return ("< " if self.hits == 0 else "") + text


def run_cells(draw: Callable[[int], Sequence[np.ndarray]], ncells: int,
              max_draws: int) -> List[Cell]:
    """Draw batches until every condition has STOP_HITS hits or max_draws draws."""
    cells = [Cell() for _ in range(ncells)]
    while True:
        for cell, cond in zip(cells, draw(BATCH)):
            cell.add(cond)
        if cells[0].draws >= max_draws or all(c.hits >= STOP_HITS for c in cells):
            return cells


def print_table(title: str, rows: Dict[int, Cell], families: Sequence[int]) -> None:
    print(f"\n{title}\n")
    print("| window count n | one feature (draws) | "
          + " | ".join(f"{f} features" for f in families) + " |")
    print("|---|---|" + "---|" * len(families))
    for n, cell in rows.items():
        print(f"| {n} | {cell.per_feature_text()} | "
              + " | ".join(cell.family_text(f) for f in families) + " |")


def zipf(k: int) -> np.ndarray:
    s = 1.0 / np.arange(1, k + 1)
    return s / s.sum()


def print_unseen_table(ns: Sequence[int], m: int, excess: float, draws: int,
                       families: Sequence[int], rng: np.random.Generator) -> None:
    """Family-wise false-alarm rate of the unseen-share excess, one row per (q, n)."""
    print("| __other__ share q | window count n | one feature (draws) | "
          + " | ".join(f"{f} features" for f in families) + " |")
    print("|---|---|---|" + "---|" * len(families))
    for q in (0.1, 0.2, 0.3):
        for n in ns:
            if n < 1000:
                continue
            cell = run_cells(lambda size: [rng.binomial(n, q, size) / n
                                           - rng.binomial(m, q, size) / m > excess],
                             1, draws)[0]
            print(f"| {q} | {n} | {cell.per_feature_text()} | "
                  + " | ".join(cell.family_text(f) for f in families) + " |")


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--m", type=int, default=10000, help="baseline (training) count")
    p.add_argument("--bins", type=int, default=20)
    p.add_argument("--c-alpha", type=float, default=C_ALPHA)
    p.add_argument("--min-effect", type=float, default=KS_MIN_EFFECT)
    p.add_argument("--psi-max", type=float, default=PSI_MAX)
    p.add_argument("--tvd-max", type=float, default=TVD_MAX)
    p.add_argument("--draws", type=int, default=400_000,
                   help="most features simulated per cell (rare events)")
    p.add_argument("--features", default="10,100,1000")
    p.add_argument("--n", default="200,300,500,1000,2000")
    p.add_argument("--n-categorical", default="200,500,1000,1500,2000,3000")
    p.add_argument("--power-tvd", default="0.15,0.2",
                   help="drift sizes (TVD of the populations) of the power table")
    p.add_argument("--unseen-excess", type=float, default=UNSEEN_EXCESS)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    fams = [int(x) for x in args.features.split(",")]
    ns = [int(x) for x in args.n.split(",")]
    ncs = [int(x) for x in args.n_categorical.split(",")]
    t0 = time.perf_counter()
    print(f"Undrifted data, one rule evaluation; m = {args.m} training values, "
          f"c = {args.c_alpha}, ks_min_effect {args.min_effect}, psi_max {args.psi_max} "
          f"(floor {PSI_FLOOR}), tvd_max {args.tvd_max}; up to {args.draws:,} simulated "
          f"features per cell.")

    ks_rows: Dict[int, Cell] = {}
    psi_rows: Dict[int, Cell] = {}
    for n in ns:
        ks_rows[n], psi_rows[n] = run_cells(
            lambda size: ks_psi_numeric(n, args.m, args.bins, size, rng, c_alpha=args.c_alpha,
                                        min_effect=args.min_effect,
                                        psi_max=args.psi_max)[1:], 2, args.draws)
    print_table(f"PromdriftFeatureDrift (KS), numeric features, {args.bins} bins", ks_rows, fams)
    print_table(f"PromdriftFeaturePSIHigh (PSI), numeric features, {args.bins} bins",
                psi_rows, fams)

    for label, shares in (("10 categories, uniform shares", np.full(10, 0.1)),
                          ("50 categories, uniform shares", np.full(50, 0.02)),
                          ("50 categories, Zipf shares 1/k", zipf(50))):
        cells = {n: run_cells(lambda size: tvd_conditions(n, args.m, shares, args.tvd_max,
                                                          size, rng), 2, args.draws)
                 for n in ncs}
        print_table(f"PromdriftCategoricalDrift (TVD - no-drift TVD), {label}",
                    {n: c[1] for n, c in cells.items()}, fams)
        print_table(f"before: uncorrected TVD > tvd_max, {label}",
                    {n: c[0] for n, c in cells.items()}, fams)

    print("\nPromdriftPredictionClassDrift (class TVD - no-drift TVD; before: uncorrected), "
          "one output: P per evaluation (draws)\n")
    classes = (("2 classes 60/40", np.array([0.6, 0.4])),
               ("3 classes uniform", np.full(3, 1 / 3)),
               ("10 classes uniform", np.full(10, 0.1)))
    print("| window count n | " + " | ".join(c for c, _ in classes)
          + " | " + " | ".join(f"before: {c}" for c, _ in classes) + " |")
    print("|---|" + "---|" * 2 * len(classes))
    for n in ncs:
        cells = [run_cells(lambda size: tvd_conditions(n, args.m, s, args.tvd_max, size, rng),
                           2, args.draws // 20) for _, s in classes]
        print(f"| {n} | " + " | ".join(c[1].per_feature_text() for c in cells)
              + " | " + " | ".join(c[0].per_feature_text() for c in cells) + " |")

    print(f"\nDetection power: P that one DRIFTED categorical feature meets the condition in "
          f"one evaluation ({POWER_DRAWS:,} draws per cell), corrected / before\n")
    shifts = [float(x) for x in args.power_tvd.split(",")]
    cols = [(label, shares, t) for label, shares in
            (("50 uniform", np.full(50, 0.02)), ("50 Zipf", zipf(50))) for t in shifts]
    print("| window count n | " + " | ".join(f"{lab}, TVD {t}" for lab, _, t in cols) + " |")
    print("|---|" + "---|" * len(cols))
    for n in ncs:
        texts = []
        for _, shares, t in cols:
            hit = tvd_conditions(n, args.m, shares, args.tvd_max, POWER_DRAWS, rng,
                                 drifted(shares, t))
            texts.append(f"{np.mean(hit[1]):.3f} / {np.mean(hit[0]):.3f}")
        print(f"| {n} | " + " | ".join(texts) + " |")
    print(f"\nPromdriftUnseenCategoryShareHigh (live __other__ share - baseline share > "
          f"{args.unseen_excess}, no correction), undrifted features, by the baseline's "
          f"__other__ share q\n")
    print_unseen_table(ncs, args.m, args.unseen_excess, args.draws, fams, rng)
    print(f"\n({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
