"""Benchmark: the multivariate / embedding transforms alone (inside observe:
``benchmarks/observe.py --part derived``).

    python benchmarks/multivariate.py            # cost tables (markdown)
    python benchmarks/multivariate.py --quick    # fewer repetitions
    python benchmarks/multivariate.py --bias     # why error and cosine are cross-fitted
    python benchmarks/multivariate.py --proof    # KS values of the real-data scenarios
                                                 # (Baseline.fit, observe, /metrics)

The transforms run interleaved with today's ``DriftMonitor.observe`` of the same columns in
one process, so their ratio is meaningful on a shared, noisy machine. Each model is fitted
once (the fit table times that fit). On a shared 2-core machine run it with
``OPENBLAS_NUM_THREADS=1``: the BLAS threads of a multi-threaded fit otherwise compete with
the timed loops and with the other jobs (one such run fitted the 1024-dim model in 107 s
instead of 5-18 s).
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import statistics
import sys
import time
from typing import Callable, Dict, List, Tuple

import numpy as np
from prometheus_client import CollectorRegistry

from promdrift.instrumentation import Baseline, DriftMonitor, NumericColumn, binning
from promdrift.instrumentation.training.multivariate import Embedding, Multivariate

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
from observe import per_call_us  # noqa: E402


def interleaved(fns: Dict[str, Callable[[], object]], calls: int, repeats: int
                ) -> Dict[str, Tuple[float, float]]:
    """{name: (p50, best)} microseconds per call; every repeat runs each function once in
    turn, so all of them see the same machine state."""
    times: Dict[str, List[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            times[k] += per_call_us(fn, calls, 1)
    return {k: (statistics.median(v), min(v)) for k, v in times.items()}


def cycling(items: List[object]) -> Callable[[], object]:
    """Each call returns the next item (round robin), so no call sees a warm repeat."""
    it = iter(range(10 ** 12))
    return lambda: items[next(it) % len(items)]


@functools.lru_cache(maxsize=None)
def tabular(features: int = 100, components: int = 10, rows: int = 20_000, seed: int = 0):
    """Correlated training rows (a random mixing of independent normals), the fitted model,
    today's monitor of the same columns and live rows."""
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(features, features))
    train = rng.normal(size=(rows, features)) @ mixing
    names = [f"f{i}" for i in range(features)]
    t0 = time.perf_counter()
    model = Multivariate.fit(train, names, n_components=components)
    fit_s = time.perf_counter() - t0
    monitor = DriftMonitor(Baseline.fit(train, names=names, model="bench"),
                           registry=CollectorRegistry())
    live = rng.normal(size=(10_000, features)) @ mixing
    return model, monitor, names, live, fit_s


@functools.lru_cache(maxsize=None)
def embedding(dim: int, rows: int = 20_000, seed: int = 0):
    """Embedding-like vectors: a common offset, a decaying spectrum."""
    rng = np.random.default_rng(seed)
    basis = rng.normal(size=(dim, dim)) / np.sqrt(dim)
    spectrum = 1.0 / np.arange(1, dim + 1) ** 0.7
    train = (rng.normal(size=(rows, dim)) * spectrum) @ basis + 0.3
    t0 = time.perf_counter()
    model = Embedding.fit(train)
    fit_s = time.perf_counter() - t0
    live = (rng.normal(size=(10_000, dim)) * spectrum) @ basis + 0.3
    return model, live, fit_s


def bench_rows(repeats: int) -> List[Dict]:
    model, monitor, names, live, _ = tabular()
    row = cycling([dict(zip(names, r.tolist())) for r in live[:1000]])
    arr = cycling(list(live[:1000]))
    fns = {"observe": lambda: monitor.observe(row()),
           "100 numeric features, 10 components: transform_row(float64 row)":
           lambda: model.transform_row(arr())}
    for dim in (384, 1024):
        emb, vecs, _ = embedding(dim)
        forms = {"float64 array": list(vecs[:1000]),
                 "float32 array": list(vecs[:1000].astype(np.float32)),
                 "list of floats (JSON)": [v.tolist() for v in vecs[:200]]}
        for form, vs in forms.items():
            fns[f"{dim}-dim embedding, {emb.n_components} components: "
                f"transform_vector({form})"] = (
                lambda e=emb, v=cycling(vs): e.transform_vector(v()))
    res = interleaved(fns, 1000, repeats)
    observe = res.pop("observe")
    return [{"what": k, "p50": p, "best": b, "observe": observe if k.startswith("100 ") else None}
            for k, (p, b) in res.items()]


def breakdown(repeats: int) -> List[Dict]:
    """The steps of one row's transform, timed one by one on the same arrays."""
    model, _, _, live, _ = tabular()
    x = live[0].copy()
    z = (x - model.mean) * model._inv_scale
    r = np.dot(model._mt, z)
    emb, vecs, _ = embedding(384)
    v = vecs[0].copy()
    vl = v.tolist()
    re = np.dot(emb._mt, v)
    steps = {("tabular 100/10", "z = x - mean"): lambda: x - model.mean,
             ("tabular 100/10", "z *= 1/scale"):
             lambda: np.multiply(z, model._inv_scale, out=z),
             ("tabular 100/10", "|z|^2 (vdot)"): lambda: float(np.vdot(z, z)),
             ("tabular 100/10", "[0; components] @ z (11 x 100)"): lambda: np.dot(model._mt, z),
             ("tabular 100/10", "|scores|^2 (vdot)"): lambda: float(np.vdot(r, r)),
             ("tabular 100/10", "whole transform_row"): lambda: model.transform_row(x),
             ("embedding 384", "check type / shape / dtype"): lambda: emb._vector(v),
             ("embedding 384", "|x|^2 (vdot, also the finiteness check)"):
             lambda: float(np.vdot(v, v)),
             ("embedding 384", f"[mean; 0; 0; components] @ x ({len(emb._mt)} x 384)"):
             lambda: np.dot(emb._mt, v),
             ("embedding 384", "scores -= mean's scores"):
             lambda: np.subtract(re, emb._b, out=re),
             ("embedding 384", "whole transform_vector(float64 array)"):
             lambda: emb.transform_vector(v),
             ("embedding 384", "(JSON input only) list of 384 floats -> array"):
             lambda: np.asarray(vl)}
    res = interleaved(steps, 2000, repeats)
    return [{"model": m, "step": st, "p50": p, "best": b} for (m, st), (p, b) in res.items()]


def bench_batch(repeats: int) -> List[Dict]:
    model, monitor, _, live, _ = tabular()
    emb384, v384, _ = embedding(384)
    emb1024, v1024, _ = embedding(1024)
    fns = {"observe": lambda: monitor.observe(live),
           ("10,000 rows x 100 numeric features, 10 components: transform", len(live)):
           lambda: model.transform(live)}
    for e, vecs in ((emb384, v384), (emb1024, v1024[:5000])):
        fns[(f"{len(vecs):,} x {e.dim}-dim embeddings, {e.n_components} components: "
             f"transform_vectors", len(vecs))] = lambda e=e, v=vecs: e.transform_vectors(v)
    res = interleaved(fns, 2, repeats)
    observe = res.pop("observe")
    return [{"what": what, "rows": rows, "ms": p / 1e3, "best_ms": b / 1e3,
             "observe_ms": observe[0] / 1e3 if rows == len(live) and "numeric" in what else None}
            for (what, rows), (p, b) in res.items()]


def bench_fit() -> List[Dict]:
    out = []
    _, _, _, _, s = tabular()
    out.append({"what": "Multivariate.fit, 20,000 rows x 100 columns, 10 components", "s": s})
    for dim, rows in ((384, 20_000), (1024, 20_000)):
        emb, _, s = embedding(dim, rows=rows)
        out.append({"what": f"Embedding.fit, {rows:,} x {dim} (default: "
                            f"{emb.n_components} components)", "s": s})
    return out


def _ks_ratio(column: NumericColumn, live: np.ndarray) -> float:
    counts = binning.bin_counts(np.asarray(column.edges), live)
    ks = binning.ks_statistic(np.asarray(column.counts), counts)
    return ks / binning.ks_critical_value(live.size, column.count)


def bias(reps: int, n: int = 50_000) -> List[Dict]:
    """Undrifted live windows of ``n`` rows against derived baselines binned from the
    training rows themselves ("in-sample") and cross-fitted (what ``fit`` writes for the
    error and the cosine distance)."""
    rng = np.random.default_rng(5)
    settings = [("tabular", 100, 10, 1000), ("tabular", 100, 10, 10_000),
                ("tabular", 30, 7, 380), ("embedding", 384, 10, 300)]
    out = []
    for kind, dim, comps, m in settings:
        q, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
        if kind == "tabular":
            spectrum = np.r_[np.linspace(10, 3, comps), np.full(dim - comps, 0.5)]
        else:
            spectrum = 1.0 / np.arange(1, dim + 1)
        mix = q * np.sqrt(spectrum)
        offset = 0.0 if kind == "tabular" else rng.normal(size=dim) * 0.05
        ratios: Dict[str, List[float]] = {}
        for _ in range(reps):
            train = rng.normal(size=(m, dim)) @ mix.T + offset
            live = rng.normal(size=(n, dim)) @ mix.T + offset
            if kind == "tabular":
                model = Multivariate.fit(train, [f"c{i}" for i in range(dim)],
                                         n_components=comps)
            else:
                model = Embedding.fit(train, n_components=comps)
            own = model.transform(train)[0]
            values = model.transform(live)[0]
            for j, col in enumerate(model.features):
                name = col.name if j < model._n_lead else "scores (every component)"
                short = name.replace(model.prefix, "").strip("_")
                ratios.setdefault((short, "in-sample"), []).append(
                    _ks_ratio(NumericColumn.fit(col.name, own[:, j], 20), values[:, j]))
                if j < model._n_lead:
                    ratios.setdefault((short, "cross-fitted (fit)"), []).append(
                        _ks_ratio(col, values[:, j]))
        for (feature, baseline), r in ratios.items():
            if feature == "norm":
                continue  # model-free: the same values either way
            r = np.array(r)
            out.append({"setting": f"{kind}, {dim} dims, {comps} components, m = {m:,}",
                        "feature": feature, "baseline": baseline, "p": float((r > 1).mean()),
                        "draws": len(r), "ratio": float(np.median(r))})
    return out


def random_splits(splits: int) -> List[Dict]:
    """Undrifted held-out thirds of seeded random splits: the share of derived and of
    univariate KS above their critical values, and of splits with at least one above."""
    from drift_scenarios import binned_ks, breast_cancer, derived_ks, digits
    rng = np.random.default_rng(99)
    out = []
    for label, (x, names), fit in (
            ("breast cancer", breast_cancer(), lambda t, nm: Multivariate.fit(t, nm)),
            ("digits", (digits()[0], None), lambda t, nm: Embedding.fit(t))):
        derived, univariate, any_derived = [], [], 0
        for _ in range(splits):
            order = rng.permutation(len(x))
            test, train = x[order[:len(x) // 3]], x[order[len(x) // 3:]]
            model = fit(train, names)
            above = [ks > crit for ks, crit in
                     derived_ks(model, model.transform(test)[0]).values()]
            derived += above
            any_derived += any(above)
            univariate += [binned_ks(NumericColumn.fit("u", train[:, j], 20), test[:, j])
                           for j in range(x.shape[1]) if np.ptp(train[:, j]) > 0]
        out.append({"data": label, "derived": float(np.mean(derived)),
                    "n_derived": len(model.names), "any": any_derived / splits,
                    "univariate": float(np.mean([k > c for k, c in univariate])),
                    "splits": splits})
    return out


def proof(splits: int) -> None:
    from drift_scenarios import SPEC, scenarios
    component = re.compile(r"__(pca|emb)_[0-9]+__")
    print(f"| scenario | feature | n | KS | rules' critical value (family-wise, ks_alpha "
          f"{SPEC.ks_alpha:g} over F) | per-feature critical value, alpha 0.05 | above the "
          f"rules' / the per-feature one |")
    print("|---|---|---|---|---|---|---|")
    for label, res in scenarios().items():
        univariate = {k: v for k, v in res.items() if not k.startswith(("__pca_", "__emb_"))}
        components = {k: v for k, v in res.items() if component.fullmatch(k)}
        shown = {k: v for k, v in res.items() if k not in univariate and k not in components}
        for group, what in ((components, "components"), (univariate, "univariate")):
            if group:
                top = max(group, key=lambda k: group[k]["ks"] / group[k]["critical"])
                shown[f"{top} (largest of {len(group)} {what})"] = group[top]
        for name, r in shown.items():
            print(f"| {label} | {name} | {r['n']:.0f} | {r['ks']:.3f} | {r['critical']:.3f} "
                  f"(F = {r['tests']}) | {r['critical_05']:.3f} | "
                  f"{'yes' if r['ks'] > r['critical'] else 'no'} / "
                  f"{'yes' if r['ks'] > r['critical_05'] else 'no'} |")
    print()
    print("| undrifted, random splits | derived KS above critical | at least one derived | "
          "univariate KS above critical |")
    print("|---|---|---|---|")
    for r in random_splits(splits):
        print(f"| {r['data']}, {r['splits']} seeded splits | {r['derived']:.1%} | "
              f"{r['any']:.0%} (of {r['n_derived']}) | {r['univariate']:.1%} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--bias", action="store_true")
    ap.add_argument("--proof", action="store_true")
    args = ap.parse_args()
    if args.proof:
        proof(20 if args.quick else 60)
        return
    if args.bias:
        print("| training | derived feature | baseline | P(KS > critical), n = 50,000 | "
              "median KS / critical |")
        print("|---|---|---|---|---|")
        for r in bias(20 if args.quick else 100):
            print(f"| {r['setting']} | {r['feature']} | {r['baseline']} | {r['p']:.2f} "
                  f"({r['draws']} draws) | {r['ratio']:.2f} |")
        return
    repeats = 3 if args.quick else 7
    print("| one row | p50 (best) | today's observe(dict row), same columns, p50 (best) |")
    print("|---|---|---|")
    for r in bench_rows(repeats):
        obs = "{:.1f} µs ({:.1f})".format(*r["observe"]) if r["observe"] else "—"
        print(f"| {r['what']} | {r['p50']:.1f} µs ({r['best']:.1f}) | {obs} |")
    print()
    print("| where the time of one row goes | step | p50 (best) |")
    print("|---|---|---|")
    for r in breakdown(repeats):
        print(f"| {r['model']} | {r['step']} | {r['p50']:.2f} µs ({r['best']:.2f}) |")
    print()
    print("| batch | p50 (best) | per row | today's observe(batch), same columns, p50 |")
    print("|---|---|---|---|")
    for r in bench_batch(repeats):
        obs = f"{r['observe_ms']:.1f} ms" if r["observe_ms"] else "—"
        print(f"| {r['what']} | {r['ms']:.1f} ms ({r['best_ms']:.1f}) | "
              f"{r['ms'] * 1e3 / r['rows']:.2f} µs | {obs} |")
    print()
    print("| fit (10 cross-fitted folds included) | seconds |")
    print("|---|---|")
    for r in bench_fit():
        print(f"| {r['what']} | {r['s']:.1f} |")


if __name__ == "__main__":
    main()
