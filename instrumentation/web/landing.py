"""The landing page: live traffic vs the training baseline, per model, as one HTML page.

    >>> from prometheus_client import CollectorRegistry
    >>> from promdrift.instrumentation import Baseline, DriftMonitor, landing_page
    >>> baseline = Baseline.fit({"age": [23, 35, 41, 58], "plan": ["a", "b", "a", "c"]},
    ...                         model="churn", bins=2)
    >>> monitor = DriftMonitor(baseline, registry=CollectorRegistry())
    >>> monitor.observe([{"age": 70, "plan": "a"}, {"age": None, "plan": "<b>"}])
    >>> page = landing_page(monitor)
    >>> page.startswith("<!DOCTYPE html>"), page.count('<svg class="hist"')
    (True, 2)
    >>> import re
    >>> re.search(r'data-category="__other__"[^>]*data-live="([0-9.]+)"', page).group(1)
    '0.5'

One picture per column. The live value ``"<b>"`` is not a baseline category, so it was
counted under ``__other__`` (half of the live rows); every name that reaches the page
(models, features, categories, versions) is escaped.

For every model: inferences, requests refused as unreadable (a client's error), internal
errors, which baseline is served, then one table row
per feature and per prediction output with its live count, its distance to the baseline
(the binned Kolmogorov-Smirnov distance for numeric columns, with the two-sample critical
value, family-wise over the model's numeric columns as in the alerts; the total variation distance for categorical ones), its invalid
values by reason, and an inline SVG of the baseline (wide blue bars) and live (narrow
vermillion bars) probability of every bin or category. No JavaScript, no external resource.

Numbers come from one ``snapshot`` of each monitor's counter store: everything the store
counted since it started (with the default in-process store, this process's traffic). No
time window and no other replica: the Prometheus rules are where those are combined.

Every bar group carries its numbers as data attributes (``data-baseline`` / ``data-live``
probabilities, ``data-n-baseline`` / ``data-n-live`` counts, ``data-lower`` / ``data-upper``
edges or ``data-category``), so the page can be checked or scraped without reading pixels.
"""

from __future__ import annotations

import datetime as _dt
import html
import threading
import weakref
from typing import Any, Iterable, List, Optional, Sequence

import numpy as np

from ..binning import ks_statistic, total_variation, tvd_noise
from ..counting.store import FEATURE, PREDICTION, REASONS, Layout
from ..spec import Thresholds
from ..training.baseline import CategoricalColumn, NumericColumn
from ..values import REQUEST_REASONS

#: The thresholds the page highlights by: the defaults of the one table the alerts use
#: (``spec``). A numeric column is highlighted when its KS distance is above the two-sample
#: critical value (family-wise over the model's numeric columns of its role, like the
#: alerts), a categorical one when its total variation distance exceeds its no-drift value
#: (``binning.tvd_noise``) by more than ``tvd_max``.
THRESHOLDS = Thresholds()

__all__ = ["landing_page", "landing_monitors", "CONTENT_TYPE"]

#: What a landing page is served as.
CONTENT_TYPE = "text/html; charset=utf-8"

# Picture geometry (CSS pixels) and colours: Okabe-Ito sky blue and vermillion, told apart
# by colour-blind readers too, and by bar width (baseline wide, live narrow) without colour.
_W, _H, _TOP = 280, 56, 4
_BASE_COLOUR, _LIVE_COLOUR = "#56B4E9", "#D55E00"

_CSS = f"""
:root {{ color-scheme: light; }}
body {{ font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0;
  color: #1b1b1b; background: #fff; }}
header, main, footer {{ padding: 0 24px; }}
header {{ border-bottom: 1px solid #ddd; padding-bottom: 8px; }}
h1 {{ font-size: 22px; margin: 16px 0 4px; }}
h2 {{ font-size: 18px; margin: 24px 0 4px; }}
.version {{ color: #555; font-weight: normal; }}
.legend {{ display: flex; gap: 16px; align-items: center; margin: 4px 0; }}
.legend span {{ display: inline-flex; gap: 6px; align-items: center; }}
dl.facts {{ display: flex; flex-wrap: wrap; gap: 4px 20px; margin: 4px 0 8px; }}
dl.facts div {{ display: flex; gap: 6px; }}
dl.facts dt {{ color: #555; }}
dl.facts dd {{ margin: 0; font-variant-numeric: tabular-nums; }}
table {{ border-collapse: collapse; }}
caption {{ text-align: left; color: #555; padding: 4px 0; }}
th, td {{ border-bottom: 1px solid #e6e6e6; padding: 4px 10px; text-align: left;
  vertical-align: middle; }}
thead th {{ border-bottom: 2px solid #bbb; font-weight: 600; white-space: nowrap; }}
tbody th {{ font-weight: 600; max-width: 260px; overflow-wrap: break-word; }}
.inv {{ white-space: nowrap; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }}
td.over {{ background: #fde0cf; }}
.crit, .axis, .none {{ color: #666; font-size: 12px; }}
.axis {{ display: flex; justify-content: space-between; width: {_W}px; }}
.axis .cat {{ flex: 1 1 0; min-width: 0; text-align: center; overflow: hidden;
  text-overflow: ellipsis; white-space: nowrap; }}
.role {{ color: #666; font-size: 12px; display: block; font-weight: normal; }}
svg.hist {{ display: block; }}
svg .b {{ fill: {_BASE_COLOUR}; }}
svg .l {{ fill: {_LIVE_COLOUR}; }}
svg .x {{ stroke: #999; stroke-width: 1; }}
footer {{ color: #666; font-size: 12px; margin: 24px 0; }}
"""

_LEGEND = (
    '<div class="legend">'
    f'<span><svg role="img" aria-label="baseline" width="22" height="12"><title>baseline'
    f'</title><rect width="22" height="12" fill="{_BASE_COLOUR}"/></svg>baseline (training)'
    '</span>'
    f'<span><svg role="img" aria-label="live" width="22" height="12"><title>live</title>'
    f'<rect x="6" width="10" height="12" fill="{_LIVE_COLOUR}"/></svg>live (since start)'
    '</span>'
    '<span class="crit">bar height: probability of the bin or category</span></div>')

_esc = html.escape


def _monitors(monitors: Any) -> List[Any]:
    """A flat list of DriftMonitors from a monitor, a collector, a registry or an iterable."""
    from prometheus_client import CollectorRegistry

    from ..counting.exposition import PromdriftCollector, collector_for
    if isinstance(monitors, CollectorRegistry):
        coll = collector_for(monitors, create=False)
        return coll.monitors if coll is not None else []
    if isinstance(monitors, PromdriftCollector):
        return monitors.monitors
    if hasattr(monitors, "store") and hasattr(monitors, "layout"):
        return [monitors]
    if isinstance(monitors, (str, bytes)) or not isinstance(monitors, Iterable):
        raise TypeError(f"landing_page expects DriftMonitors, not {type(monitors).__name__}")
    out = list(monitors)
    for m in out:
        if not (hasattr(m, "store") and hasattr(m, "layout")):
            raise TypeError(f"landing_page expects DriftMonitors, not {type(m).__name__}")
    return out


def _fmt_count(v: float) -> str:
    return f"{int(v):,}" if float(v).is_integer() else f"{v:,.1f}"


def _probabilities(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total > 0 else np.zeros_like(counts, dtype=np.float64)


class _Column:
    """The parts of one column's table row that never change (names, edges, baseline bars),
    prepared once per model so that a page only formats the live numbers."""

    def __init__(self, role: str, col: Any, tests: int = 1):
        self.numeric = isinstance(col, NumericColumn)
        self.tests = tests  # numeric columns of this role: F of the family-wise test
        self.base_n = np.asarray(col.counts, dtype=np.float64)
        self.base_p = _probabilities(self.base_n)
        self.m = float(self.base_n.sum())
        name = _esc(col.name)
        k = len(self.base_n)
        if self.numeric:
            les = col.labels
            lowers = ["-Inf"] + les[:-1]
            attrs = [f'data-lower="{lo}" data-upper="{up}"' for lo, up in zip(lowers, les)]
            titles = [f"({lo}, {up}]" for lo, up in zip(lowers, les)]
            label = (f"{name}: probability per bin, baseline vs live, {k} bins from "
                     f"{les[0] if k > 1 else '+Inf'} to +Inf")
            axis = (f'<div class="axis"><span>&le; {les[0] if k > 1 else "+Inf"}</span>'
                    f'<span>&gt; {les[-2] if k > 1 else "+Inf"}</span></div>')
        else:
            cats = [_esc(c) for c in col.labels]
            attrs = [f'data-category="{c}"' for c in cats]
            titles = cats
            label = (f"{name}: probability per category, baseline vs live, {k - 1} "
                     f"categories and __other__")
            if k <= 8:  # a name under each bar
                axis = "".join(f'<span class="cat" title="{c}">{c}</span>' for c in cats)
            else:
                axis = "<span>" + ", ".join(cats[:3] + ["…", cats[-1]]) + "</span>"
            axis = f'<div class="axis">{axis}</div>'
        kind = "numeric" if self.numeric else "categorical"
        self.open = (f'<tr data-column="{name}" data-role="{role}" data-kind="{kind}">'
                     f'<th scope="row">{name}<span class="role">{role}</span></th>'
                     f'<td>{kind}</td>')
        self.svg_open = (f'<svg class="hist" role="img" aria-label="{label}" width="{_W}" '
                         f'height="{_H}" viewBox="0 0 {_W} {_H}"><title>{label}</title>')
        self.svg_close = (f'<line class="x" x1="0" y1="{_H - 0.5}" x2="{_W}" '
                          f'y2="{_H - 0.5}"/></svg>{axis}')
        step = _W / k
        self.heads = [f'<g data-bin="{i}" {a} data-baseline="{bp:.6g}" '
                      f'data-n-baseline="{bn:.0f}" '
                      for i, (a, bp, bn) in enumerate(zip(attrs, self.base_p.tolist(),
                                                          self.base_n.tolist()))]
        self.titles = [f'<title>{t}: baseline {bp:.1%} ({bn:,.0f}), live '
                       for t, bp, bn in zip(titles, self.base_p.tolist(),
                                            self.base_n.tolist())]
        self.base_rects = [f'<rect class="b" x="{i * step + step * 0.05:.2f}" '
                           f'width="{step * 0.9:.2f}" ' for i in range(k)]
        self.live_rects = [f'<rect class="l" x="{i * step + step * 0.275:.2f}" '
                           f'width="{step * 0.45:.2f}" ' for i in range(k)]

    def svg(self, live_n: np.ndarray) -> str:
        """Bars of baseline (wide) and live (narrow) probabilities, one ``<g>`` per bin,
        heights on one scale (the tallest bar of either side fills the picture)."""
        live_p = _probabilities(live_n)
        top = max(float(self.base_p.max()), float(live_p.max()), 1e-12)
        scale = (_H - _TOP) / top
        bh = self.base_p * scale
        lh = live_p * scale
        out = [self.svg_open]
        for head, title, brect, lrect, b, yb, l, yl, lp, ln in zip(
                self.heads, self.titles, self.base_rects, self.live_rects, bh.tolist(),
                (_H - bh).tolist(), lh.tolist(), (_H - lh).tolist(), live_p.tolist(),
                live_n.tolist()):
            out.append(f'{head}data-live="{lp:.6g}" data-n-live="{ln:.0f}">{title}{lp:.1%} '
                       f'({ln:,.0f})</title>{brect}y="{yb:.2f}" height="{b:.2f}"/>{lrect}'
                       f'y="{yl:.2f}" height="{l:.2f}"/></g>')
        out.append(self.svg_close)
        return "".join(out)

    def row(self, live_n: np.ndarray, invalid: np.ndarray) -> str:
        n = float(live_n.sum())
        if n <= 0:
            attr = "data-ks" if self.numeric else "data-tv"
            dist = f'<td class="num" {attr}=""><span class="none">no live data</span></td>'
        elif self.numeric:
            ks = ks_statistic(live_n, self.base_n)
            crit = THRESHOLDS.ks_critical(n, self.m, tests=self.tests)
            dist = (f'<td class="num{" over" if ks > crit else ""}" data-ks="{ks:.6g}" '
                    f'data-critical="{crit:.6g}">KS {ks:.3f}<br><span class="crit">critical '
                    f'{crit:.3f}</span></td>')
        else:
            tv = total_variation(live_n, self.base_n)
            noise = tvd_noise(self.base_n, n)
            dist = (f'<td class="num{" over" if tv - noise > THRESHOLDS.tvd_max else ""}" '
                    f'data-tv="{tv:.6g}" data-tv-noise="{noise:.6g}">TV {tv:.3f}<br>'
                    f'<span class="crit">no drift {noise:.3f}</span></td>')
        return (f'{self.open}<td class="num" data-live-count="{n:.0f}">{_fmt_count(n)}</td>'
                f'{dist}<td>{_invalid_cell(invalid)}</td><td>{self.svg(live_n)}</td></tr>')


def _invalid_cell(counts: np.ndarray) -> str:
    parts = [f'<span class="inv" data-reason="{r}">{r} {_fmt_count(v)}</span>'
             for r, v in zip(REASONS, counts.tolist()) if v]
    return "<br>".join(parts) if parts else '<span class="none">none</span>'


class _Model:
    """The parts of a model's section that never change, with its columns in page order."""

    def __init__(self, lay: Layout):
        baseline = lay.baseline
        self.digest = _esc(baseline.digest)
        # (numeric?, index in its block, prepared column), in baseline order.
        where = {(r, c.name): (True, i) for i, (r, c) in enumerate(lay.numeric)}
        where.update({(r, c.name): (False, j) for j, (r, c) in enumerate(lay.categorical)})
        cols = {(r, c.name): c for r, c in lay.numeric + lay.categorical}
        order = ([(FEATURE, c.name) for c in baseline.features]
                 + [(FEATURE, c.name) for c in baseline.derived]
                 + [(PREDICTION, c.name) for c in baseline.predictions])
        tests = {role: sum(1 for r, _ in lay.numeric if r == role) for role in (FEATURE, PREDICTION)}
        self.columns = [(where[k][0], where[k][1], _Column(k[0], cols[k], tests[k[0]]))
                        for k in order]


_prepared: "weakref.WeakKeyDictionary[Layout, _Model]" = weakref.WeakKeyDictionary()
_prepared_lock = threading.Lock()


def _prepare(lay: Layout) -> _Model:
    with _prepared_lock:
        model = _prepared.get(lay)
    if model is None:
        model = _Model(lay)
        with _prepared_lock:
            _prepared[lay] = model
    return model


def _model_section(index: int, monitor: Any) -> str:
    lay: Layout = monitor.layout
    prepared = _prepare(lay)
    counts = monitor.store.snapshot()
    baseline = lay.baseline
    fn = len(lay.numeric)
    cum_t = counts[lay.bucket_base:lay.bucket_base + fn * lay.width].reshape(lay.width, fn)
    live_t = np.diff(cum_t, axis=0, prepend=0.0)  # per-bin counts, (width, columns)
    nr = len(REASONS)
    invalid = counts[lay.invalid_base:lay.invalid_base + (fn + len(lay.categorical)) * nr
                     ].reshape(-1, nr)
    body = []
    for numeric, i, col in prepared.columns:
        if numeric:
            body.append(col.row(live_t[:len(col.base_n), i], invalid[i]))
        else:
            off = lay.cat_offsets[i]
            body.append(col.row(counts[off:off + len(col.base_n)], invalid[fn + i]))
    model = _esc(monitor.model)
    version = getattr(monitor, "model_version", None)
    ver = f' <span class="version">version {_esc(str(version))}</span>' if version else ""
    facts = [("inferences", _fmt_count(counts[Layout.INFERENCES]), "inferences"),
             ("invalid requests", _fmt_count(counts[Layout.REQUEST_INVALID:Layout.REQUEST_INVALID
                                                     + len(REQUEST_REASONS)].sum()),
              "invalid-requests"),
             ("instrumentation errors", _fmt_count(counts[Layout.ERRORS]), "errors"),
             ("baseline rows", f"{baseline.rows:,}", "baseline-rows"),
             ("baseline created", _esc(baseline.created or "unknown"), "created"),
             ("baseline digest", prepared.digest, "digest")]
    dl = "".join(f'<div><dt>{k}</dt><dd data-fact="{a}">{v}</dd></div>' for k, v, a in facts)
    return (f'<section class="model" id="model-{index}" data-model="{model}">'
            f'<h2>{model}{ver}</h2><dl class="facts">{dl}</dl>'
            f'<table><caption>{len(body)} columns of {model}: live traffic since start '
            f'against the training baseline</caption><thead><tr><th scope="col">column</th>'
            f'<th scope="col">kind</th><th scope="col">live count</th>'
            f'<th scope="col">distance</th><th scope="col">invalid</th>'
            f'<th scope="col">baseline vs live</th></tr></thead><tbody>{"".join(body)}'
            f'</tbody></table></section>')


def landing_monitors(monitors: Any) -> List[Any]:
    """The monitors a landing page shows: every model of each monitor's registry (what its
    ``/metrics`` serves), or the monitor alone when it has no registry; no duplicates."""
    from ..counting.exposition import collector_for
    out: List[Any] = []
    seen = set()
    for m in monitors:
        coll = collector_for(m.registry, create=False) if m.registry is not None else None
        for shown in (coll.monitors if coll is not None else [m]):
            if id(shown) not in seen:
                seen.add(id(shown))
                out.append(shown)
    return out


def landing_page(monitors: Any, title: str = "promdrift",
                 metrics_path: Optional[str] = "/metrics") -> str:
    """A complete HTML5 document (no JavaScript, no external resources) showing, for each
    model, every feature and prediction output against its baseline.

    ``monitors``: a ``DriftMonitor``, an iterable of them, a ``CollectorRegistry`` (every
    model registered in it) or a ``PromdriftCollector``. ``title`` heads the page;
    ``metrics_path``, when not ``None``, is linked as where the metrics are. Cost:
    O(columns x bins), about 10 ms for 100 features x 20 bins (benchmarks/landing.py).
    """
    models = _monitors(monitors)
    t = _esc(str(title))
    sections = "".join(_model_section(i, m) for i, m in enumerate(models))
    if not models:
        sections = '<p class="none">No model is monitored yet.</p>'
    link = (f' Metrics for Prometheus: <a href="{_esc(metrics_path)}">'
            f'{_esc(metrics_path)}</a>.' if metrics_path else "")
    now = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>{t}</title><style>{_CSS}</style></head><body>'
            f'<header><h1>{t}</h1><p>Live traffic since this server started against the '
            f'training baseline, per model.{link}</p>{_LEGEND}</header>'
            f'<main>{sections}</main><footer>Generated {now.replace("+00:00", "Z")} by '
            f'promdrift. KS: binned Kolmogorov-Smirnov distance, highlighted above the '
            f'two-sample critical value at &alpha; = {THRESHOLDS.ks_alpha:g}'
            f'{" for the whole model" if THRESHOLDS.ks_familywise else ""}; TV: total '
            f'variation distance, highlighted when it exceeds its no-drift value by more '
            f'than {THRESHOLDS.tvd_max:g}.'
            f'</footer></body></html>\n')
