"""PromQL implementations of promdrift's statistics, as text built from the raw series.

Every expression here reads only the metric families of docs/metrics.md, never another
recording rule, so a rule's value does not depend on the order in which an engine evaluates
the rules of a group (vmalert evaluates a rule that reads another rule of its group against
that rule's previous evaluation) nor on a baseline group having run first. Baseline series
are joined in every expression, so nothing is recorded for a feature whose baseline is not
exported. Replicas are summed (``sum by``) before anything is divided; baseline series,
identical on every replica, are taken once (``max by``). The kept labels of the
configuration (``cluster``, ``env`` ...) are part of every ``by`` / ``on`` list, and its
selector is part of every series selector::

    >>> from promdrift.promql.config import RulesConfig
    >>> e = Expressions(RulesConfig(selector='job="m"'))
    >>> print(e.numeric_count(FEATURE, "5m"))
    sum by (model, model_version, baseline, feature) (increase(promdrift_feature_value_bucket{job="m", le="+Inf"}[5m]))

The dashboards are built from the same fragments (``promdrift.grafana``), so a panel shows
exactly what the rules record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Sequence

from promdrift.instrumentation.binning import format_le

from .config import RulesConfig

__all__ = ["Expressions", "Kind", "FEATURE", "OUTPUT", "indent", "PROMQL"]


def indent(text: str, spaces: int) -> str:
    """``text`` with every line but the first indented by ``spaces``."""
    pad = " " * spaces
    return text.replace("\n", "\n" + pad)


@dataclass(frozen=True)
class Kind:
    """Features or prediction outputs: the names their series and rules use."""

    key: str  # label: feature / output
    level: str  # rule level prefix: model_feature / model_output
    value: str  # live numeric histogram
    base_value: str  # baseline numeric histogram
    base_bin: str  # baseline bin gauge
    cat_total: str  # live categorical counter (with _total)
    cat_label: str  # category / class
    base_cat: str  # baseline categorical gauge
    invalid: str  # invalid counter (with _total)
    # metric part of the recording rules
    count_rule: str
    ks_rule: str
    crit_rule: str
    cat_count_rule: str
    tvd_rule: str
    noise_rule: str


FEATURE = Kind(
    key="feature", level="model_feature",
    value="promdrift_feature_value", base_value="promdrift_baseline_feature_value",
    base_bin="promdrift_baseline_feature_bin",
    cat_total="promdrift_feature_category_total", cat_label="category",
    base_cat="promdrift_baseline_feature_category",
    invalid="promdrift_feature_invalid_total",
    count_rule="promdrift_feature_value_count", ks_rule="promdrift_ks_statistic",
    crit_rule="promdrift_ks_critical", cat_count_rule="promdrift_feature_category",
    tvd_rule="promdrift_category_tvd", noise_rule="promdrift_category_tvd_noise",
)
OUTPUT = Kind(
    key="output", level="model_output",
    value="promdrift_prediction_value", base_value="promdrift_baseline_prediction_value",
    base_bin="promdrift_baseline_prediction_bin",
    cat_total="promdrift_prediction_class_total", cat_label="class",
    base_cat="promdrift_baseline_prediction_class",
    invalid="promdrift_prediction_invalid_total",
    count_rule="promdrift_prediction_value_count", ks_rule="promdrift_prediction_ks_statistic",
    crit_rule="promdrift_prediction_ks_critical", cat_count_rule="promdrift_prediction_class",
    tvd_rule="promdrift_prediction_class_tvd", noise_rule="promdrift_prediction_class_tvd_noise",
)

_INF = format_le(float("inf"))
_NEG_INF = format_le(float("-inf"))
_LE_INF = f'le="{_INF}"'
_LOWER_NOT_NEG_INF = f'lower!="{_NEG_INF}"'
_OTHER = 'category="__other__"'
_HIGHER_BETTER = 'metric=~"accuracy|macro_f1"'
_LOWER_BETTER = 'metric=~"mae|rmse"'


class Expressions:
    """The PromQL text of every statistic for one :class:`RulesConfig`."""

    def __init__(self, config: RulesConfig, matchers: Sequence[str] = ()) -> None:
        """``matchers`` (``'model=~"$model"'`` ...) are added to every series selector,
        after the configured selector: dashboards use them to narrow a panel."""
        self.config = config
        self.t = config.thresholds
        self.matchers = list(matchers)

    # ------------------------------------------------------------------ building blocks
    def sel(self, metric: str, *matchers: str) -> str:
        """A series selector with the configured selector, the expression's matchers and
        ``matchers``."""
        ms = (([self.config.selector] if self.config.selector else []) + self.matchers
              + list(matchers))
        return f"{metric}{{{', '.join(ms)}}}" if ms else metric

    def by(self, *labels: str) -> str:
        return self.config.by(*labels)

    def rng(self, window: str) -> str:
        """The range selector of ``window``; a Grafana variable (``$window``,
        ``$__rate_interval``) is kept as is, so that dashboards reuse the fragments."""
        return window if window.startswith("$") else self.config.range(window)

    def summed(self, fn: str, metric: str, labels: Sequence[str], w: str, *matchers: str) -> str:
        """``sum by (labels + kept) (fn(metric{selector, matchers}[range of w]))``: a counter
        over the window, every replica summed."""
        return (f"sum by ({self.by(*labels)}) "
                f"({fn}({self.sel(metric, *matchers)}[{self.rng(w)}]))")

    @staticmethod
    def num(x: float) -> str:
        """A threshold as a PromQL number literal (shortest round-trip form)."""
        return repr(float(x)) if not float(x).is_integer() else str(int(x))

    # ------------------------------------------------------------------ numeric columns
    def numeric_cumulative(self, k: Kind, w: str) -> str:
        """Live cumulative count at every ``le`` over the window, all replicas."""
        return self.summed('increase', k.value + '_bucket', ('model', k.key, 'le'), w)

    def numeric_count(self, k: Kind, w: str) -> str:
        """n: valid values of the window (the ``+Inf`` bucket), all replicas."""
        return self.summed('increase', k.value + '_bucket', ('model', k.key), w, _LE_INF)

    def baseline_count(self, k: Kind) -> str:
        """m: training count of valid values (absent when 0)."""
        return f"max by ({self.by('model', k.key)}) ({self.sel(k.base_value + '_count')}) > 0"

    def baseline_cdf(self, k: Kind) -> str:
        """Training CDF at every ``le``."""
        return (f"max by ({self.by('model', k.key, 'le')}) ({self.sel(k.base_value + '_bucket')})\n"
                f"/ on ({self.by('model', k.key)}) group_left ()\n"
                f"({self.baseline_count(k)})")

    def live_cdf(self, k: Kind, w: str) -> str:
        """Live CDF at every ``le`` (absent while the window holds no value)."""
        return (f"{self.numeric_cumulative(k, w)}\n"
                f"/ on ({self.by('model', k.key)}) group_left ()\n"
                f"({self.numeric_count(k, w)} > 0)")

    def ks(self, k: Kind, w: str) -> str:
        """KS = max over ``le`` of |live CDF - baseline CDF|."""
        return (f"max by ({self.by('model', k.key)}) (\n"
                f"  abs(\n"
                f"      {indent(self.live_cdf(k, w), 6)}\n"
                f"    - on ({self.by('model', k.key, 'le')})\n"
                f"      {indent(self.baseline_cdf(k), 6)}\n"
                f"  )\n"
                f")")

    def ks_c_alpha(self, k: Kind) -> str:
        """c(alpha / F) per model, F its numeric columns of this kind (Bonferroni), or the
        literal c(alpha) when the test is not family-wise."""
        alpha = self.num(self.t.ks_alpha)
        if not self.t.ks_familywise:
            return self.num(round(self.t.ks_c_alpha(1), 12))
        return (f"sqrt(-ln({alpha} / (2 * count by ({self.by('model')}) "
                f"({indent(self.baseline_count(k), 4)}))) / 2)")

    def ks_critical(self, k: Kind, w: str) -> str:
        """Two-sample critical value c * sqrt(1/n + 1/m)."""
        core = (f"sqrt(\n"
                f"    1 / ({self.numeric_count(k, w)} > 0)\n"
                f"  + on ({self.by('model', k.key)})\n"
                f"    1 / ({self.baseline_count(k)})\n"
                f")")
        if not self.t.ks_familywise:
            return f"{self.ks_c_alpha(k)} * {core}"
        return (f"{core}\n"
                f"* on ({self.by('model')}) group_left\n"
                f"{self.ks_c_alpha(k)}")

    def bin_edge_signs(self, k: Kind) -> str:
        """The baseline bins as edge signs: +1 at ``le`` = a bin's upper edge, -1 at ``le`` =
        its lower edge (none for the first bin, whose lower edge is -Inf). Summing the live
        cumulative counts times these per ``upper`` gives each bin's count."""
        g = self.by("model", k.key, "upper")
        return (f"label_replace(max by ({g}) ({self.sel(k.base_bin)}) * 0 + 1, "
                f"\"le\", \"$1\", \"upper\", \"(.*)\")\n"
                f"or\n"
                f"label_replace(max by ({g}, lower) "
                f"({self.sel(k.base_bin, _LOWER_NOT_NEG_INF)}) * 0 - 1, "
                f"\"le\", \"$1\", \"lower\", \"(.*)\")")

    def live_bin_ratio(self, k: Kind, w: str) -> str:
        """Live probability of each baseline bin (lower, upper], floored for PSI."""
        return (f"clamp_min(\n"
                f"    sum by ({self.by('model', k.key, 'upper')}) (\n"
                f"        (\n"
                f"          {indent(self.bin_edge_signs(k), 10)}\n"
                f"        )\n"
                f"      * on ({self.by('model', k.key, 'le')}) group_left\n"
                f"        {indent(self.numeric_cumulative(k, w), 8)}\n"
                f"    )\n"
                f"  / on ({self.by('model', k.key)}) group_left ()\n"
                f"    ({self.numeric_count(k, w)} > 0),\n"
                f"  {self.num(self.t.psi_bin_floor)}\n"
                f")")

    def baseline_bin_ratio(self, k: Kind) -> str:
        """Training probability of each bin, floored for PSI."""
        return (f"clamp_min(\n"
                f"    max by ({self.by('model', k.key, 'upper')}) ({self.sel(k.base_bin)})\n"
                f"  / on ({self.by('model', k.key)}) group_left ()\n"
                f"    ({self.baseline_count(k)}),\n"
                f"  {self.num(self.t.psi_bin_floor)}\n"
                f")")

    def psi(self, k: Kind, w: str) -> str:
        """PSI = sum over bins of (p_live - p_base) * ln(p_live / p_base)."""
        p, q = self.live_bin_ratio(k, w), self.baseline_bin_ratio(k)
        on = f"on ({self.by('model', k.key, 'upper')})"
        return (f"sum by ({self.by('model', k.key)}) (\n"
                f"    (\n"
                f"        {indent(p, 8)}\n"
                f"      - {on}\n"
                f"        {indent(q, 8)}\n"
                f"    )\n"
                f"  * {on}\n"
                f"    ln(\n"
                f"        {indent(p, 8)}\n"
                f"      / {on}\n"
                f"        {indent(q, 8)}\n"
                f"    )\n"
                f")")

    # ------------------------------------------------------------------ categorical columns
    def category_increase(self, k: Kind, w: str) -> str:
        return self.summed('increase', k.cat_total, ('model', k.key, k.cat_label), w)

    def category_count(self, k: Kind, w: str) -> str:
        """n of a categorical column (absent when 0)."""
        return self.summed('increase', k.cat_total, ('model', k.key), w) + " > 0"

    def category_ratio(self, k: Kind, w: str) -> str:
        """Live share of every category over the window."""
        return (f"{self.category_increase(k, w)}\n"
                f"/ on ({self.by('model', k.key)}) group_left ()\n"
                f"({self.category_count(k, w)})")

    def baseline_category_count(self, k: Kind) -> str:
        return (f"sum by ({self.by('model', k.key)}) "
                f"(max by ({self.by('model', k.key, k.cat_label)}) ({self.sel(k.base_cat)})) > 0")

    def baseline_category_ratio(self, k: Kind) -> str:
        """Training share of every category (``__other__`` included)."""
        return (f"max by ({self.by('model', k.key, k.cat_label)}) ({self.sel(k.base_cat)})\n"
                f"/ on ({self.by('model', k.key)}) group_left ()\n"
                f"({self.baseline_category_count(k)})")

    def tvd(self, k: Kind, w: str) -> str:
        """TVD = 0.5 * sum |p_live - p_base|; a category on one side only counts its share
        (baseline-only ones while the column has live values). Absent without a baseline."""
        live, base = self.category_ratio(k, w), self.baseline_category_ratio(k)
        return (f"0.5 * sum by ({self.by('model', k.key)}) (\n"
                f"    abs(\n"
                f"        {indent(live, 8)}\n"
                f"      -\n"
                f"        {indent(base, 8)}\n"
                f"    )\n"
                f"  or\n"
                f"    {indent(live, 4)}\n"
                f"  or\n"
                f"    (\n"
                f"        {indent(base, 8)}\n"
                f"      and on ({self.by('model', k.key)})\n"
                f"        ({self.category_count(k, w)})\n"
                f"    )\n"
                f")\n"
                f"and on ({self.by('model', k.key)})\n"
                f"({self.baseline_category_count(k)})")

    def tvd_noise(self, k: Kind, w: str) -> str:
        """Expected TVD of an undrifted column from sampling noise alone:
        0.5 * sqrt(2/pi) * sum_i sqrt(q_i (1 - q_i)) * sqrt(1/n + 1/m)."""
        base = self.baseline_category_ratio(k)
        return (f"0.5 * sum by ({self.by('model', k.key)}) (\n"
                f"  sqrt(\n"
                f"      (\n"
                f"        {indent(base, 8)}\n"
                f"      )\n"
                f"    * (\n"
                f"        1 - (\n"
                f"          {indent(base, 10)}\n"
                f"        )\n"
                f"      )\n"
                f"  )\n"
                f")\n"
                f"* sqrt(\n"
                f"    2 / pi() * (\n"
                f"        1 / ({self.category_count(k, w)})\n"
                f"      + 1 / ({self.baseline_category_count(k)})\n"
                f"    )\n"
                f"  )")

    def unseen_ratio(self, w: str) -> str:
        """Live share of ``__other__`` (values outside the training top-K)."""
        k = FEATURE
        return (f"{self.summed('increase', k.cat_total, ('model', k.key), w, _OTHER)}\n"
                f"/ on ({self.by('model', k.key)})\n"
                f"({self.category_count(k, w)})")

    def baseline_unseen_ratio(self) -> str:
        """Training share of ``__other__``."""
        k = FEATURE
        return (f"max by ({self.by('model', k.key)}) "
                f"({self.sel(k.base_cat, _OTHER)})\n"
                f"/ on ({self.by('model', k.key)})\n"
                f"({self.baseline_category_count(k)})")

    # ------------------------------------------------------------------ invalid values
    def invalid_rate(self, w: str, by_reason: bool, fn: str = "rate") -> str:
        """Invalid values per second of a feature (``fn`` ``increase``: in the window)."""
        extra = ("reason",) if by_reason else ()
        return self.summed(fn, FEATURE.invalid, ('model', 'feature', *extra), w)

    def valid_rate(self, k: Kind, w: str, fn: str = "rate") -> str:
        """Valid values per second of a column, numeric (histogram count) or categorical
        (``fn`` ``increase``: in the window)."""
        labels = ("model", k.key)
        return (f"(\n"
                f"    {self.summed(fn, k.value + '_count', labels, w)}\n"
                f"  or\n"
                f"    {self.summed(fn, k.cat_total, labels, w)}\n"
                f")")

    def observed_rate(self, w: str, fn: str = "rate") -> str:
        """Valid + invalid values per second (``fn`` ``increase``: in the window; absent
        when 0)."""
        f = self.by("model", "feature")
        return (f"(\n"
                f"  (\n"
                f"      {indent(self.valid_rate(FEATURE, w, fn), 6)}\n"
                f"    + on ({f})\n"
                f"      {self.invalid_rate(w, False, fn)}\n"
                f"  ) > 0\n"
                f")")

    def invalid_ratio(self, w: str, by_reason: bool) -> str:
        """Invalid share of all values (by reason, or all reasons together), while a replica
        serves the baseline."""
        group = " group_left ()" if by_reason else ""
        return self.serving(f"{self.invalid_rate(w, by_reason)}\n"
                            f"/ on ({self.by('model', 'feature')}){group}\n"
                            f"{self.observed_rate(w)}")

    def instrumentation_errors(self, w: str) -> str:
        """Errors inside promdrift's observe() in the window, while a replica serves the
        baseline."""
        return self.serving(self.summed('increase', 'promdrift_instrumentation_errors_total',
                                        ('model',), w))

    def serving(self, expr: str) -> str:
        """``expr`` while some replica serves its baseline: a version's statistics end with
        its traffic, not a window later. (The distribution statistics join the baseline
        series themselves and need no such condition.)"""
        return (f"(\n  {indent(expr, 2)}\n)\n"
                f"and on ({self.by('model')})\n"
                f"group by ({self.by('model')}) ({self.sel('promdrift_baseline_info')})")

    def exporter_requests(self, fn: str, w: str) -> str:
        """The standalone exporter's ingest requests by route: ``rate`` or ``increase``."""
        return self.summed(fn, 'promdrift_exporter_requests_total', ('route',), w,
                           'route=~"observations|labels"')

    def requests(self, w: str) -> str:
        """Requests handed to a model's monitors over the window (tracked requests, exporter
        ingest requests, ``observe`` calls), every replica summed."""
        return self.summed('increase', 'promdrift_requests_total', ('model',), w)

    def invalid_request_ratio(self, w: str, by_reason: bool) -> str:
        """Share of a model's requests whose features could not be read (a client error),
        by reason or all reasons together (absent without requests)."""
        extra = ("reason",) if by_reason else ()
        group = " group_left ()" if by_reason else ""
        return (f"{self.summed('rate', 'promdrift_requests_invalid_total', ('model', *extra), w)}\n"
                f"/ on ({self.by('model')}){group}\n"
                f"({self.summed('rate', 'promdrift_requests_total', ('model',), w)} > 0)")

    def exporter_rejected_ratio(self, w: str) -> str:
        """Share of the standalone exporter's ingest requests refused whole, by route (absent
        without ingest requests)."""
        return (f"{self.summed('rate', 'promdrift_exporter_rejected_total', ('route',), w)}\n"
                f"/ on ({self.by('route')})\n"
                f"({self.exporter_requests('rate', w)} > 0)")

    # ------------------------------------------------------------------ quality
    def _o(self, *extra: str) -> str:
        return self.by('model', 'output', *extra)

    def confusion(self, w: str) -> str:
        return self.summed('increase', 'promdrift_quality_confusion_total', ('model', 'output', 'actual', 'predicted'), w)

    def confusion_count(self, w: str) -> str:
        """Labelled pairs of a categorical output (absent when 0)."""
        return self.summed('increase', 'promdrift_quality_confusion_total', ('model', 'output'), w) + " > 0"

    def _confusion_by(self, w: str, label: str) -> str:
        return (f"sum by ({self._o('class')}) (\n"
                f"  label_replace(\n"
                f"    {indent(self.confusion(w), 4)},\n"
                f"    \"class\", \"$1\", \"{label}\", \"(?s)(.*)\"\n"
                f"  )\n"
                f")")

    def true_positives(self, w: str) -> str:
        """The diagonal of the confusion counts (actual = predicted), per class: the cells
        whose actual class is the predicted class of some cell, found by copying
        ``predicted`` into ``actual`` and joining."""
        c = self.confusion(w)
        return (f"sum by ({self._o('class')}) (\n"
                f"  label_replace(\n"
                f"      {indent(c, 6)}\n"
                f"    and on ({self._o('actual', 'predicted')})\n"
                f"      label_replace(\n"
                f"        group by ({self._o('predicted')}) ({indent(c, 8)}),\n"
                f"        \"actual\", \"$1\", \"predicted\", \"(?s)(.*)\"\n"
                f"      ),\n"
                f"    \"class\", \"$1\", \"actual\", \"(?s)(.*)\"\n"
                f"  )\n"
                f")")

    def precision(self, w: str) -> str:
        return (f"{self.true_positives(w)}\n/ on ({self._o('class')})\n"
                f"({self._confusion_by(w, 'predicted')} > 0)")

    def recall(self, w: str) -> str:
        return (f"{self.true_positives(w)}\n/ on ({self._o('class')})\n"
                f"({self._confusion_by(w, 'actual')} > 0)")

    def f1(self, w: str) -> str:
        """2 TP / (actual + predicted), which equals 2PR / (P + R)."""
        return (f"2 * {self.true_positives(w)}\n/ on ({self._o('class')})\n"
                f"(\n    (\n        {indent(self._confusion_by(w, 'actual'), 8)}\n"
                f"      + on ({self._o('class')})\n"
                f"        {indent(self._confusion_by(w, 'predicted'), 8)}\n    ) > 0\n)")

    def accuracy(self, w: str) -> str:
        return (f"sum by ({self._o()}) (\n  {indent(self.true_positives(w), 2)}\n)\n"
                f"/ on ({self._o()})\n({self.confusion_count(w)})")

    def macro_f1(self, w: str) -> str:
        """Mean F1 of the classes that occur as actual or predicted in the window."""
        return f"avg by ({self._o()}) (\n  {indent(self.f1(w), 2)}\n)"

    def error_count(self, w: str) -> str:
        return self.summed('increase', 'promdrift_quality_error_count', ('model', 'output'), w) + " > 0"

    def mae(self, w: str) -> str:
        return (f"{self.summed('increase', 'promdrift_quality_error_sum', ('model', 'output'), w)}\n"
                f"/ on ({self._o()})\n({self.error_count(w)})")

    def rmse(self, w: str) -> str:
        return (f"sqrt(\n"
                f"    sum by ({self._o()}) (increase("
                f"{self.sel('promdrift_quality_squared_error_sum_total')}[{self.rng(w)}]))\n"
                f"  / on ({self._o()})\n"
                f"    ({self.error_count(w)})\n"
                f")")

    def quality_labels(self, w: str) -> str:
        """Labelled pairs of either kind of output (absent when 0)."""
        return f"(\n  {indent(self.confusion_count(w), 2)}\n)\nor\n(\n  {indent(self.error_count(w), 2)}\n)"

    def _metric(self, expr: str, metric: str) -> str:
        return f"label_replace(\n  {indent(expr, 2)},\n  \"metric\", \"{metric}\", \"\", \"\"\n)"

    def quality_higher_better(self, w: str) -> str:
        return (f"{self._metric(self.accuracy(w), 'accuracy')}\nor\n"
                f"{self._metric(self.macro_f1(w), 'macro_f1')}")

    def quality_lower_better(self, w: str) -> str:
        return (f"{self._metric(self.mae(w), 'mae')}\nor\n"
                f"{self._metric(self.rmse(w), 'rmse')}")

    def quality(self, w: str) -> str:
        """accuracy, macro_f1, mae and rmse as one family (label ``metric``)."""
        return f"{self.quality_higher_better(w)}\nor\n{self.quality_lower_better(w)}"

    def quality_degradation(self, w: str) -> str:
        """validation - live for accuracy / macro F1, (live - validation) / validation for
        MAE / RMSE."""
        om = self._o("metric")
        base_hi = f"max by ({om}) ({self.sel('promdrift_baseline_quality', _HIGHER_BETTER)})"
        base_lo = f"max by ({om}) ({self.sel('promdrift_baseline_quality', _LOWER_BETTER)})"
        return (f"(\n"
                f"    {base_hi}\n"
                f"  - on ({om})\n"
                f"    (\n"
                f"      {indent(self.quality_higher_better(w), 6)}\n"
                f"    )\n"
                f")\n"
                f"or\n"
                f"(\n"
                f"    (\n"
                f"        (\n"
                f"          {indent(self.quality_lower_better(w), 10)}\n"
                f"        )\n"
                f"      - on ({om})\n"
                f"        {base_lo}\n"
                f"    )\n"
                f"  / on ({om})\n"
                f"    ({base_lo} > 0)\n"
                f")")

    # ------------------------------------------------------------------ bias
    @staticmethod
    def _labels_b(*extra: str, group: bool = True) -> tuple:
        return ("model", "facet") + (("group",) if group else ()) + ("output",) + extra

    def _b(self, *extra: str, group: bool = True) -> str:
        return self.by(*self._labels_b(*extra, group=group))

    def bias_predictions(self, w: str) -> str:
        return self.summed("increase", "promdrift_bias_predictions_total",
                           self._labels_b("class"), w)

    def bias_group_predictions(self, w: str) -> str:
        """Predictions of a facet group (absent when 0)."""
        return self.summed("increase", "promdrift_bias_predictions_total", self._labels_b(), w) + " > 0"

    def bias_labels(self, w: str) -> str:
        return self.summed("increase", "promdrift_bias_labels_total", self._labels_b("class"), w)

    def bias_true_positives(self, w: str) -> str:
        return self.summed("increase", "promdrift_bias_true_positives_total",
                           self._labels_b("class"), w)

    def _rest(self, expr: str, *extra: str) -> str:
        """Sum over all other groups of the facet: sum over every group minus this group."""
        rest = self._b(*extra, group=False)
        return (f"(\n"
                f"    sum by ({rest}) (\n      {indent(expr, 6)}\n    )\n"
                f"  - on ({rest}) group_right ()\n"
                f"    {indent(expr, 4)}\n"
                f")")

    def bias_dppl(self, w: str) -> str:
        """Share of the class in the group minus its share in every other group."""
        p, pg = self.bias_predictions(w), f"({self.bias_group_predictions(w)})"
        return (f"    {p}\n"
                f"  / on ({self._b()}) group_left ()\n"
                f"    {pg}\n"
                f"- on ({self._b('class')})\n"
                f"  (\n"
                f"      {indent(self._rest(p, 'class'), 6)}\n"
                f"    / on ({self._b()}) group_left ()\n"
                f"      (\n"
                f"        {indent(self._rest(pg), 8)} > 0\n"
                f"      )\n"
                f"  )")

    def bias_recall_difference(self, w: str) -> str:
        """Recall of the class in the group minus in every other group."""
        tp, lab = self.bias_true_positives(w), self.bias_labels(w)
        return (f"    {tp}\n"
                f"  / on ({self._b('class')})\n"
                f"    ({lab} > 0)\n"
                f"- on ({self._b('class')})\n"
                f"  (\n"
                f"      {indent(self._rest(tp, 'class'), 6)}\n"
                f"    / on ({self._b('class')})\n"
                f"      (\n"
                f"        {indent(self._rest(lab, 'class'), 8)} > 0\n"
                f"      )\n"
                f"  )")

    def bias_change(self, w: str) -> str:
        """|live - validation| of both group differences (label ``metric``)."""
        bm = self._b("class", "metric")
        return (f"abs(\n"
                f"    (\n"
                f"        {indent(self._metric(self.bias_dppl(w), 'dppl'), 8)}\n"
                f"      or\n"
                f"        {indent(self._metric(self.bias_recall_difference(w), 'recall_difference'), 8)}\n"
                f"    )\n"
                f"  - on ({bm})\n"
                f"    max by ({bm}) ({self.sel('promdrift_baseline_bias')})\n"
                f")")

    # ------------------------------------------------------------------ attributions
    def attribution_abs_mean(self, w: str) -> str:
        f = self.by("model", "feature")
        fl = ("model", "feature")
        return (f"{self.summed('increase', 'promdrift_attribution_abs_sum_total', fl, w)}\n"
                f"/ on ({f})\n"
                f"({self.summed('increase', 'promdrift_attribution_values_total', fl, w)} > 0)")

    def attribution_ndcg_min(self) -> str:
        """The worst replica's nDCG among those whose window holds min_samples rows."""
        return (f"min by ({self.by('model')}) (\n"
                f"    {self.sel('promdrift_attribution_ndcg')}\n"
                f"  and\n"
                f"    {self.sel('promdrift_attribution_window_rows')} >= {self.num(self.t.min_samples)}\n"
                f")")


#: PromQL implementation of each statistic of ``promdrift.instrumentation.spec.STATISTICS``
#: (the same names), for a feature over a window.
PROMQL: Dict[str, Callable[[Expressions, str], str]] = {
    "ks": lambda e, w: e.ks(FEATURE, w),
    "psi": lambda e, w: e.psi(FEATURE, w),
    "tvd": lambda e, w: e.tvd(FEATURE, w),
    "unseen_share": lambda e, w: e.unseen_ratio(w),
    "invalid_ratio": lambda e, w: e.invalid_ratio(w, by_reason=False),
}
