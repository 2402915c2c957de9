"""How often the distribution alerts' conditions hold for data that did NOT drift, and how
often the KS condition holds for data that did.

    .venv/bin/python benchmarks/ks_false_alarms.py            # the tables in benchmarks/README.md

(numpy and scipy, which `make venv` installs with the test extra.)

Each feature is tested on its own, so a model with F features sees a condition hold for
*some* undrifted feature far more often than for one. The tables give, for one rule
evaluation and the thresholds below (the defaults these tables chose for promql/rules.yml's
config group, benchmarks/README.md):

- ``PromdriftFeatureDrift``: binned KS > ``c * sqrt(1/n + 1/m)`` and KS > ``ks_min_effect``,
  with the family-wise ``c = ks_c_alpha(ks_alpha, F)`` of a model with F numeric features
  (``promdrift.instrumentation.binning``; Bonferroni), and, for comparison, the fixed
  per-feature c = 1.358 of earlier releases;
- ``PromdriftFeaturePSIHigh``: PSI (empty bins floored at ``psi_bin_floor``) > ``psi_max``;
- ``PromdriftCategoricalDrift``: total variation distance (TVD) minus its no-drift value
  ``0.5 * sum_i sqrt(q_i (1 - q_i)) * sqrt(2/pi * (1/n + 1/m))`` (q_i the baseline shares,
  ``model_feature:promdrift_category_tvd_noise:1h``) > ``tvd_max``, and, labelled "before",
  the uncorrected TVD > ``tvd_max`` of earlier releases;
- ``PromdriftPredictionClassDrift``: the same TVD conditions for one classifier output;
- ``PromdriftUnseenCategoryShareHigh``: live ``__other__`` share minus the baseline's >
  ``unseen_share_excess``;

as a function of the window count n (the alerts also need n >= ``min_samples``). "One
feature" is the probability for a single feature, "F features" the probability
``1 - (1 - p)^F`` that at least one of F independent undrifted features meets the
condition. Positively correlated features make the family-wise figure smaller, not larger
(and Bonferroni bounds it by alpha whatever the correlation).

Numeric features: the baseline has ``bins`` equal-mass bins of a training sample of m
values, so the population's true mass in those bins is Dirichlet(m/bins, ...) (the spacings
of uniform order statistics) while the baseline's recorded counts are m/bins each; the live
window holds n values of the same population, multinomial over the bins, so its counts are
Dirichlet-multinomial. The KS tail of that model is computed exactly (:func:`ks_tail`, a
recursion over the bins), PSI by Monte-Carlo. For the power tables the training sample is
standard normal and the live values normal with a shifted mean: the population's mass in
the training quantile bins is then ``Phi(e_j - shift) - Phi(e_(j-1) - shift)`` at the edges
e_j of the same Dirichlet spacings. tests/test_false_alarms.py checks these shortcuts
against baselines fitted by ``Baseline.fit``.

Categorical features and classes: a population with K categories (uniform shares, which give
the largest expected TVD for a given K, or Zipf shares 1/k), a baseline of m training values drawn from it
(multinomial) and a live window of n values drawn from it. The unseen share's tail is exact
(two binomials). The categorical power table is the probability that one *drifted*
categorical feature meets the condition, the live population being the baseline population
moved by a given TVD (a share of the mass moved evenly onto the less frequent half of the
categories).

Monte-Carlo cells are simulated in batches until 200 draws met the condition or the cell's
draw limit was reached (a twentieth of ``--draws`` for the single prediction output). When no
draw met the condition the table gives the 95% upper bound ``3 / draws`` ("rule of three")
and the family-wise figure of that bound, prefixed by ``<``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from scipy.special import ndtr, ndtri
from scipy.stats import binom

from promdrift.instrumentation import binning
from promdrift.instrumentation.spec import Thresholds

BATCH = 20_000
POWER_DRAWS = 20_000
STOP_HITS = 200

#: The defaults these tables justify: the spec's (promdrift.instrumentation.spec), read here.
DEFAULTS = Thresholds()
KS_ALPHA = DEFAULTS.ks_alpha             # family-wise over a model's numeric features
MIN_SAMPLES = DEFAULTS.min_samples
KS_MIN_EFFECT = DEFAULTS.ks_min_effect
PSI_FLOOR = DEFAULTS.psi_bin_floor
PSI_MAX = DEFAULTS.psi_max
TVD_MAX = DEFAULTS.tvd_max
UNSEEN_EXCESS = DEFAULTS.unseen_share_excess
#: The per-feature c of earlier releases (alpha 0.05 for each feature on its own).
C_PER_FEATURE = binning.C_ALPHA_05


# ------------------------------------------------------------------ the KS condition
def ks_threshold(n: int, m: int, features: int, alpha: Optional[float] = KS_ALPHA,
                 min_effect: float = KS_MIN_EFFECT) -> float:
    """The KS statistic must exceed this for the condition to hold: the family-wise critical
    value of a model with ``features`` numeric features, or the per-feature
    ``C_PER_FEATURE`` one when ``alpha`` is None, and the minimum effect."""
    if alpha is None:
        crit = binning.ks_critical_value(n, m, C_PER_FEATURE)
    else:
        crit = binning.ks_critical_value(n, m, alpha=alpha, tests=features)
    return max(crit, min_effect)


def _log_rising(x: float, count: int) -> np.ndarray:
    """``ln Gamma(x + k) - ln Gamma(x)`` for k = 0 .. count."""
    return np.concatenate(([0.0], np.cumsum(np.log(x + np.arange(count)))))


def ks_tail(n: int, m: int, bins: int, threshold: float) -> float:
    """Exact probability that the binned KS of one undrifted numeric feature exceeds
    ``threshold`` (live window of n values, baseline of m training values in ``bins``
    equal-mass bins, the model of :func:`numeric_draws`).

    The live counts are Dirichlet-multinomial(n, m/bins, ...), so the count of bin j given the
    K values below it is beta-binomial(n - K, m/bins, (bins - j) m/bins) (bins j+1.. hold the
    rest). The recursion carries the distribution of K (the cumulative count) bin by bin and
    removes, at each edge j, the mass whose CDF difference ``|K/n - j/bins|`` exceeds the
    threshold: the sum of what it removed is the tail, accurate also when tiny.
    """
    a = m / bins
    log_fact = _log_rising(1.0, n)
    log_a = _log_rising(a, n)
    states = np.arange(n + 1)
    prob = np.zeros(n + 1)
    prob[0] = 1.0
    tail = 0.0
    for j in range(1, bins):
        b = (bins - j) * a
        log_b, log_ab = _log_rising(b, n), _log_rising(a + b, n)
        rows = np.flatnonzero(prob)
        k = states[None, :] - rows[:, None]          # count of bin j, from K to K + k
        left = n - rows[:, None]
        ok = k >= 0
        kk, rest = np.where(ok, k, 0), np.where(ok, left - k, 0)
        logp = (log_fact[left] - log_fact[kk] - log_fact[rest]
                + log_a[kk] + log_b[rest] - log_ab[left])
        prob = prob[rows] @ np.where(ok, np.exp(logp), 0.0)
        out = np.abs(states / n - j / bins) > threshold
        tail += float(prob[out].sum())
        prob[out] = 0.0
    return tail


def numeric_draws(n: int, m: int, bins: int, size: int, rng: np.random.Generator,
                  shift: float = 0.0, floor: float = PSI_FLOOR,
                  dirichlet: bool = True) -> Tuple[np.ndarray, np.ndarray]:
    """(binned KS, PSI) of ``size`` numeric features with baselines of m values.

    ``shift``: the live values are normal with mean ``shift`` standard deviations, the
    training values standard normal (the population's mass in the training quantile bins
    moves accordingly). ``dirichlet=False`` draws the live window from the baseline's bin
    shares themselves, ignoring that the training sample only estimates them (a wrong
    shortcut, kept so the test can show that it is detectably wrong).
    """
    if dirichlet:
        mass = rng.dirichlet(np.full(bins, m / bins), size=size)
    else:
        mass = np.full((size, bins), 1.0 / bins)
    if shift:
        edges = ndtri(np.cumsum(mass[:, :-1], axis=1))
        mass = np.diff(ndtr(edges - shift), axis=1, prepend=0.0, append=1.0)
    live = rng.multinomial(n, mass)
    ks = np.max(np.abs(np.cumsum(live, axis=1) / n - np.arange(1, bins + 1) / bins), axis=1)
    p = np.maximum(live / n, floor)
    q = max(1.0 / bins, floor)
    return ks, np.sum((p - q) * np.log(p / q), axis=1)


def unbinned_ks(n: int, m: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """The exact (unbinned) two-sample KS of ``size`` pairs of continuous samples of the same
    population: it depends only on where the n live values fall among the n + m pooled ones.
    """
    out = np.empty(size)
    k = np.arange(n)
    for i in range(size):
        below = np.sort(rng.choice(n + m, n, replace=False)) - k   # baseline values below
        out[i] = max(np.max((k + 1) / n - below / m), np.max(below / m - k / n))
    return out


def population_ks(shift: float) -> float:
    """KS distance between N(0, 1) and N(shift, 1): ``2 Phi(shift / 2) - 1``."""
    return float(2 * ndtr(shift / 2) - 1)


# ------------------------------------------------------------------ categorical features
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


def unseen_tail(n: int, m: int, q: float, excess: float) -> float:
    """Exact probability that the live ``__other__`` share of an undrifted feature exceeds the
    baseline's by more than ``excess`` (live count binomial(n, q), baseline binomial(m, q))."""
    y = np.arange(m + 1)
    py = binom.pmf(y, m, q)
    # the smallest live count x with x/n - y/m > excess, as the rule computes it
    x = np.floor(n * (excess + y / m))
    x = np.where((x - 1) / n - y / m > excess, x - 1, x)
    x = np.where(x / n - y / m > excess, x, x + 1)
    return float(np.sum(py * binom.sf(x - 1, n, q)))


# ------------------------------------------------------------------ Monte-Carlo cells, tables
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
        return family(self.bound(), features)

    def per_feature_text(self) -> str:
        if self.hits == 0:
            return f"< {3.0 / self.draws:.1e} (0/{self.draws:,})"
        return f"{self.p:.1e} ({self.hits:,}/{self.draws:,})"

    def family_text(self, features: int) -> str:
        return ("< " if self.hits == 0 else "") + prob_text(self.family(features))


def family(p: float, features: int) -> float:
    """Probability that at least one of ``features`` independent features meets a condition
    that one meets with probability p."""
    return 1.0 if p >= 1 else float(-np.expm1(features * np.log1p(-p)))


def prob_text(p: float) -> str:
    if p > 0.9995:
        return "1.000"
    if p < 1e-12:
        return "< 1e-12"
    return f"{p:.3f}" if p >= 0.01 else f"{p:.1e}"


def run_cells(draw: Callable[[int], Sequence[np.ndarray]], ncells: int,
              max_draws: int) -> List[Cell]:
    """Draw batches until every condition has STOP_HITS hits or max_draws draws."""
    cells = [Cell() for _ in range(ncells)]
    while True:
        for cell, cond in zip(cells, draw(BATCH)):
            cell.add(cond)
        if cells[0].draws >= max_draws or all(c.hits >= STOP_HITS for c in cells):
            return cells


def table(title: str, head: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    print(f"\n**{title}**\n")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for row in rows:
        print("| " + " | ".join(str(x) for x in row) + " |")


def print_table(title: str, rows: Dict[int, Cell], families: Sequence[int]) -> None:
    table(title, ["window count n", "one feature (draws)"] + [f"{f} features" for f in families],
          [[n, cell.per_feature_text()] + [cell.family_text(f) for f in families]
           for n, cell in rows.items()])


def zipf(k: int) -> np.ndarray:
    s = 1.0 / np.arange(1, k + 1)
    return s / s.sum()


# ------------------------------------------------------------------ the report
def numeric_false_alarms(args: argparse.Namespace, ns: Sequence[int], fams: Sequence[int],
                         rng: np.random.Generator) -> None:
    m, bins = args.m, args.bins
    settings = [(None, f"per feature c = {C_PER_FEATURE} (earlier releases)"),
                (0.05, "family-wise alpha 0.05"), (args.alpha, f"family-wise alpha {args.alpha}")]
    if args.alpha == 0.05:
        settings.pop(1)
    for alpha, label in settings:
        rows = []
        for n in ns:
            cells = []
            for f in fams:
                t = ks_threshold(n, m, f, alpha, args.min_effect)
                cells.append(f"{prob_text(family(ks_tail(n, m, bins, t), f))} (KS > {t:.3f})")
            rows.append([n] + cells)
        table(f"PromdriftFeatureDrift (KS), {label}: P that an undrifted model with F numeric "
              f"features meets the condition (exact; the KS threshold in brackets)",
              ["window count n"] + [f"{f} features" for f in fams], rows)

    rows = []
    for alpha in sorted({0.05, args.alpha}, reverse=True):
        for f in (1,) + tuple(fams):
            rows.append([alpha, f] + [
                f"{family(ks_tail(n, m, bins, binning.ks_critical_value(n, m, alpha=alpha, tests=f)), f) / alpha:.2f}"
                for n in ns])
    table("The critical value alone (ks_min_effect 0): P that an undrifted model meets it, "
          "as a share of alpha (exact)",
          ["alpha", "F features"] + [f"n = {n}" for n in ns], rows)

    if args.unbinned_draws:
        n = MIN_SAMPLES
        ks = unbinned_ks(n, m, args.unbinned_draws, rng)
        rows = []
        for alpha in sorted({0.05, args.alpha}, reverse=True):
            crit = binning.ks_critical_value(n, m, alpha=alpha)
            hits = int(np.count_nonzero(ks > crit))
            rows.append([alpha, f"{crit:.4f}",
                         f"{hits / ks.size:.4f} ± {math.sqrt(hits * (1 - hits / ks.size)) / ks.size:.4f}",
                         f"{ks_tail(n, m, bins, crit):.4f}"])
        table(f"One feature, n = {n}, the critical value alone: the exact (unbinned) KS of the "
              f"samples ({args.unbinned_draws:,} simulated pairs, ± one standard error) and the "
              f"binned KS of {bins} bins (exact)",
              ["alpha", "critical value", "unbinned KS", f"binned KS, {bins} bins"], rows)

    # PSI on its own, and PSI without KS for the "any condition" table.
    psi_rows: Dict[int, Cell] = {}
    psi_only: Dict[int, List[Cell]] = {}
    for n in ns:
        thresholds = [ks_threshold(n, m, f, args.alpha, args.min_effect) for f in fams]

        def draw(size: int) -> List[np.ndarray]:
            ks, psi = numeric_draws(n, m, bins, size, rng)
            high = psi > args.psi_max
            return [high] + [high & (ks <= t) for t in thresholds]

        cells = run_cells(draw, 1 + len(fams), args.numeric_draws)
        psi_rows[n], psi_only[n] = cells[0], cells[1:]
    print_table(f"PromdriftFeaturePSIHigh (PSI > {args.psi_max}), numeric features, {bins} bins "
                f"(Monte-Carlo)", psi_rows, fams)

    rows = []
    for n in ns:
        cells = []
        for f, cell in zip(fams, psi_only[n]):
            t = ks_threshold(n, m, f, args.alpha, args.min_effect)
            p = family(ks_tail(n, m, bins, t) + cell.bound(), f)
            cells.append(("< " if cell.hits == 0 else "") + prob_text(p))
        rows.append([n] + cells)
    table(f"Any numeric distribution alert (KS with family-wise alpha {args.alpha} or PSI): P that "
          f"an undrifted model with F numeric features meets a condition (KS exact, PSI without "
          f"KS by Monte-Carlo)", ["window count n"] + [f"{f} features" for f in fams], rows)


def caught_from(ns: Sequence[int], powers: Sequence[float], level: float) -> str:
    """The smallest n from which on (for it and every larger n) the power is at least
    ``level``: noise alone can meet the condition in small windows, so the first n with
    enough power is not enough."""
    first = f"> {ns[-1]}"
    for n, p in zip(reversed(ns), reversed(powers)):
        if p < level:
            break
        first = str(n)
    return first


def power_tables(args: argparse.Namespace, ns: Sequence[int], fams: Sequence[int],
                 rng: np.random.Generator) -> None:
    m, bins = args.m, args.bins
    shifts = [float(x) for x in args.shifts.split(",")]
    caught: Dict[Tuple[float, object], List[str]] = {}
    cols: List[object] = sorted({1, *fams}) + ["per"]
    heads = [f"{f} feature{'s' if f != 1 else ''}, alpha {args.alpha}" for f in cols[:-1]] + [
        f"per feature c = {C_PER_FEATURE}"]
    for shift in shifts:
        rows = []
        powers: Dict[object, List[float]] = {key: [] for key in cols}
        for n in ns:
            ks = numeric_draws(n, m, bins, POWER_DRAWS, rng, shift=shift)[0]
            row = [n]
            for key in cols:
                t = (ks_threshold(n, m, 1, None, args.min_effect) if key == "per"
                     else ks_threshold(n, m, key, args.alpha, args.min_effect))
                p = float(np.mean(ks > t))
                powers[key].append(p)
                row.append(f"{p:.3f}")
            rows.append(row)
        table(f"Power: P that the KS condition holds in one evaluation for a normal feature whose "
              f"mean moved by {shift} sd (population KS {population_ks(shift):.3f}; "
              f"{POWER_DRAWS:,} draws per cell)",
              ["window count n"] + heads, rows)
        for key, ps in powers.items():
            caught[(shift, key)] = [caught_from(ns, ps, level) for level in (0.5, 0.9)]
    table("Caught: the smallest window count n (of those above) from which on the KS "
          "condition holds in at least 50% / 90% of evaluations",
          ["shift"] + heads,
          [[f"{s} sd"] + [" / ".join(caught[(s, key)]) for key in cols] for s in shifts])


def categorical_tables(args: argparse.Namespace, ns: Sequence[int], ncs: Sequence[int],
                       fams: Sequence[int], rng: np.random.Generator) -> None:
    m = args.m
    for label, shares in (("10 categories, uniform shares", np.full(10, 0.1)),
                          ("50 categories, uniform shares", np.full(50, 0.02)),
                          ("50 categories, Zipf shares 1/k", zipf(50))):
        cells = {n: run_cells(lambda size: tvd_conditions(n, m, shares, args.tvd_max,
                                                          size, rng), 2, args.draws)
                 for n in ncs}
        print_table(f"PromdriftCategoricalDrift (TVD - no-drift TVD > {args.tvd_max}), {label}",
                    {n: c[1] for n, c in cells.items()}, fams)
        print_table(f"before: uncorrected TVD > tvd_max, {label}",
                    {n: c[0] for n, c in cells.items()}, fams)

    classes = (("2 classes 60/40", np.array([0.6, 0.4])),
               ("3 classes uniform", np.full(3, 1 / 3)),
               ("10 classes uniform", np.full(10, 0.1)))
    rows = []
    for n in ncs:
        cells = [run_cells(lambda size: tvd_conditions(n, m, s, args.tvd_max, size, rng),
                           2, args.draws // 20) for _, s in classes]
        rows.append([n] + [c[1].per_feature_text() for c in cells]
                    + [c[0].per_feature_text() for c in cells])
    table("PromdriftPredictionClassDrift (class TVD - no-drift TVD; before: uncorrected), "
          "one output: P per evaluation (draws)",
          ["window count n"] + [c for c, _ in classes] + [f"before: {c}" for c, _ in classes],
          rows)

    shifts = [float(x) for x in args.power_tvd.split(",")]
    cols = [(label, shares, t) for label, shares in
            (("50 uniform", np.full(50, 0.02)), ("50 Zipf", zipf(50))) for t in shifts]
    rows = []
    for n in ncs:
        texts = []
        for _, shares, t in cols:
            hit = tvd_conditions(n, m, shares, args.tvd_max, POWER_DRAWS, rng,
                                 drifted(shares, t))
            texts.append(f"{np.mean(hit[1]):.3f} / {np.mean(hit[0]):.3f}")
        rows.append([n] + texts)
    table(f"Detection power: P that one DRIFTED categorical feature meets the condition in "
          f"one evaluation ({POWER_DRAWS:,} draws per cell), corrected / before",
          ["window count n"] + [f"{lab}, TVD {t}" for lab, _, t in cols], rows)

    for excess in [float(x) for x in args.unseen_excess.split(",")]:
        rows = []
        for q in (0.05, 0.1, 0.2, 0.3):
            for n in ns:
                p = unseen_tail(n, m, q, excess)
                rows.append([q, n, prob_text(p)] + [prob_text(family(p, f)) for f in fams])
        table(f"PromdriftUnseenCategoryShareHigh (live __other__ share - baseline share > "
              f"{excess}, no correction), undrifted features, by the baseline's __other__ "
              f"share q (exact)",
              ["__other__ share q", "window count n", "one feature"]
              + [f"{f} features" for f in fams], rows)


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--m", type=int, default=10000, help="baseline (training) count")
    p.add_argument("--bins", type=int, default=20)
    p.add_argument("--alpha", type=float, default=KS_ALPHA,
                   help="family-wise alpha of the KS critical value")
    p.add_argument("--min-effect", type=float, default=KS_MIN_EFFECT)
    p.add_argument("--psi-max", type=float, default=PSI_MAX)
    p.add_argument("--tvd-max", type=float, default=TVD_MAX)
    p.add_argument("--draws", type=int, default=1_000_000,
                   help="most categorical features simulated per cell (rare events)")
    p.add_argument("--numeric-draws", type=int, default=2_000_000,
                   help="most numeric features simulated per PSI cell")
    p.add_argument("--unbinned-draws", type=int, default=100_000,
                   help="simulated sample pairs of the unbinned KS table (0: leave it out)")
    p.add_argument("--features", default="10,100,1000")
    p.add_argument("--n", default="200,300,500,1000,2000")
    p.add_argument("--n-categorical", default="200,500,1000,1500,2000,3000")
    p.add_argument("--shifts", default="0.2,0.3,0.5",
                   help="mean shifts (in standard deviations) of the KS power tables")
    p.add_argument("--power-tvd", default="0.15,0.2",
                   help="drift sizes (TVD of the populations) of the categorical power table")
    p.add_argument("--unseen-excess", default=f"{UNSEEN_EXCESS},0.05",
                   help="unseen_share_excess values, one table each")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--only", choices=["numeric", "power", "categorical"],
                   help="print one part of the report")
    args = p.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    fams = [int(x) for x in args.features.split(",")]
    ns = [int(x) for x in args.n.split(",")]
    ncs = [int(x) for x in args.n_categorical.split(",")]
    t0 = time.perf_counter()
    print(f"One rule evaluation; m = {args.m} training values, {args.bins} bins, family-wise "
          f"KS alpha {args.alpha}, ks_min_effect {args.min_effect}, psi_max {args.psi_max} "
          f"(floor {PSI_FLOOR}), tvd_max {args.tvd_max}; Monte-Carlo cells: up to "
          f"{args.numeric_draws:,} numeric and {args.draws:,} categorical features.")
    if args.only in (None, "numeric"):
        numeric_false_alarms(args, ns, fams, rng)
    if args.only in (None, "power"):
        power_tables(args, ns, fams, rng)
    if args.only in (None, "categorical"):
        categorical_tables(args, ns, ncs, fams, rng)
    print(f"\n({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
