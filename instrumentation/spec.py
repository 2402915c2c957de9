"""The one table of drift statistics, their thresholds and defaults.

Every threshold promdrift judges drift by is declared here once, with its default and its
meaning, and read from here by the PromQL rule generator (``promdrift rules``), the landing
page, the offline report and the command line. A statistic is declared once too, with its
numpy implementation (``binning``); its PromQL implementation lives in
``promdrift.promql.expr`` under the same name::

    >>> from promdrift.instrumentation.spec import Thresholds, STATISTICS
    >>> Thresholds().psi_max
    0.25
    >>> Thresholds(psi_max=0.2).psi_max
    0.2
    >>> Thresholds(psi_maximum=0.2)
    Traceback (most recent call last):
    ...
    ValueError: unknown threshold 'psi_maximum' (known: attribution_ndcg_min, bias_tolerance, exporter_rejected_ratio_max, invalid_ratio_max, invalid_request_ratio_max, ks_alpha, ks_familywise, ks_min_effect, min_samples, psi_bin_floor, psi_max, quality_error_tolerance, quality_min_labels, quality_tolerance, ratio_min_count, tvd_max, unseen_share_excess)
    >>> Thresholds(psi_max=-1)
    Traceback (most recent call last):
    ...
    ValueError: threshold psi_max must be > 0, got -1
    >>> round(Thresholds().ks_c_alpha(tests=1), 4), round(Thresholds().ks_c_alpha(tests=100), 4)
    (1.6276, 2.2253)
    >>> sorted(STATISTICS)
    ['invalid_ratio', 'ks', 'psi', 'tvd', 'unseen_share']
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, Mapping, Optional, Tuple

from . import binning

__all__ = ["Setting", "SETTINGS", "Thresholds", "Statistic", "STATISTICS"]


@dataclass(frozen=True)
class Setting:
    """One tunable: its name, default, meaning and the values it accepts."""

    name: str
    default: Any
    doc: str
    #: accepted range: ``low < value`` (or ``<=`` when ``low_inclusive``), ``value <= high``
    low: float = 0.0
    low_inclusive: bool = False
    high: float = math.inf
    integer: bool = False
    boolean: bool = False

    def check(self, value: Any) -> Any:
        """``value`` converted to this setting's type; ``ValueError`` naming the setting."""
        if self.boolean:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
                return value.lower() in ("true", "yes", "1")
            raise ValueError(f"threshold {self.name} must be true or false, got {value!r}")
        if isinstance(value, bool):
            raise ValueError(f"threshold {self.name} must be a number, got {value!r}")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"threshold {self.name} must be a number, got {value!r}") from None
        if not math.isfinite(number):
            raise ValueError(f"threshold {self.name} must be finite, got {value!r}")
        if self.integer and number != int(number):
            raise ValueError(f"threshold {self.name} must be a whole number, got {value!r}")
        below = number < self.low if self.low_inclusive else number <= self.low
        if below or number > self.high:
            low = f"{'>=' if self.low_inclusive else '>'} {self.low:g}"
            rng = low if self.high == math.inf else f"{low} and <= {self.high:g}"
            raise ValueError(f"threshold {self.name} must be {rng}, got {value!r}")
        return int(number) if self.integer else number


#: Every threshold, in the order the docs list them.
SETTINGS: Tuple[Setting, ...] = (
    Setting("ks_alpha", 0.01, "significance level of the KS drift test; with ks_familywise, "
            "for the whole model (Bonferroni over its numeric features)", high=0.5),
    Setting("ks_familywise", True, "the KS critical value is family-wise per model: "
            "c(ks_alpha / F) with F the model's numeric features (false: c(ks_alpha) per "
            "feature)", boolean=True),
    Setting("ks_min_effect", 0.1, "minimum KS statistic that may alert (big windows make "
            "trivial shifts significant)", low_inclusive=True, high=1.0),
    Setting("min_samples", 500, "minimum window count of values before a distribution "
            "alert may fire", low_inclusive=True, integer=True),
    Setting("psi_bin_floor", binning.PSI_FLOOR, "probability floor of empty bins in PSI", high=0.5),
    Setting("psi_max", 0.25, "PSI above which PromdriftFeaturePSIHigh fires"),
    Setting("tvd_max", 0.1, "total variation distance minus its no-drift value above which "
            "the categorical drift alerts fire", high=1.0),
    Setting("unseen_share_excess", 0.1, "live share of __other__ minus the baseline's "
            "share that alerts", high=1.0),
    Setting("invalid_ratio_max", 0.05, "share of invalid values (fast window) that alerts",
            low_inclusive=True, high=1.0),
    Setting("invalid_request_ratio_max", 0.05, "share of a model's requests whose features "
            "could not be read (a client error; fast window) that alerts",
            low_inclusive=True, high=1.0),
    Setting("exporter_rejected_ratio_max", 0.05, "share of the exporter's ingest requests "
            "refused whole (fast window) that alerts", low_inclusive=True, high=1.0),
    Setting("ratio_min_count", 200, "minimum window count (values or requests) before a ratio alert (invalid values, refused or invalid requests) may fire", low_inclusive=True, integer=True),
    Setting("quality_tolerance", 0.05, "drop of accuracy or macro F1 below the validation "
            "value that alerts", high=1.0),
    Setting("quality_error_tolerance", 0.2, "relative rise of MAE or RMSE above the "
            "validation value that alerts"),
    Setting("quality_min_labels", 100, "minimum labels in the window before a quality or "
            "recall-difference alert fires", low_inclusive=True, integer=True),
    Setting("bias_tolerance", 0.1, "|live - validation| of a group's DPPL or recall "
            "difference that alerts", high=2.0),
    Setting("attribution_ndcg_min", 0.9, "nDCG of the live attribution ranking below which "
            "PromdriftAttributionDrift fires", high=1.0),
)

_BY_NAME: Dict[str, Setting] = {s.name: s for s in SETTINGS}


class Thresholds(Mapping):
    """The thresholds in force: the defaults of :data:`SETTINGS`, with overrides checked.

    Immutable; read as attributes or as a mapping. ``replace(**overrides)`` returns a copy.
    """

    __slots__ = ("_values",)

    def __init__(self, **overrides: Any) -> None:
        values = {s.name: s.default for s in SETTINGS}
        for name, value in overrides.items():
            if name not in _BY_NAME:
                raise ValueError(f"unknown threshold {name!r} (known: {', '.join(sorted(_BY_NAME))})")
            values[name] = _BY_NAME[name].check(value)
        object.__setattr__(self, "_values", values)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Thresholds are immutable: use replace()")

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        changed = {k: v for k, v in self._values.items() if v != _BY_NAME[k].default}
        return f"Thresholds({', '.join(f'{k}={v!r}' for k, v in changed.items())})"

    def replace(self, **overrides: Any) -> "Thresholds":
        return Thresholds(**{**self.changed(), **overrides})

    def changed(self) -> Dict[str, Any]:
        """The thresholds that differ from their defaults."""
        return {k: v for k, v in self._values.items() if v != _BY_NAME[k].default}

    def ks_c_alpha(self, tests: int = 1) -> float:
        """c of the KS critical value ``c * sqrt(1/n + 1/m)`` for a family of ``tests``
        numeric columns (one when ``ks_familywise`` is off)."""
        return binning.ks_c_alpha(self.ks_alpha, tests if self.ks_familywise else 1)

    def ks_critical(self, n: float, m: float, tests: int = 1) -> float:
        """The KS critical value at window count ``n`` and baseline count ``m``."""
        return binning.ks_critical_value(n, m, self.ks_c_alpha(tests))


@dataclass(frozen=True)
class Statistic:
    """A drift statistic: declared once, implemented in numpy (``numpy``) and PromQL
    (``promdrift.promql.expr``, same ``name``), recorded as ``rule``."""

    name: str
    columns: str  # "numeric", "categorical" or "any"
    rule: str  # the recording rule's metric part: model_feature:<rule>:<window>
    numpy: Optional[Callable[..., float]]
    thresholds: Tuple[str, ...]
    doc: str


STATISTICS: Dict[str, Statistic] = {s.name: s for s in (
    Statistic("ks", "numeric", "promdrift_ks_statistic", binning.ks_statistic,
              ("ks_alpha", "ks_familywise", "ks_min_effect", "min_samples"),
              "Kolmogorov-Smirnov distance of the binned live and baseline CDFs"),
    Statistic("psi", "numeric", "promdrift_psi", binning.psi,
              ("psi_bin_floor", "psi_max", "min_samples"),
              "population stability index over the baseline bins"),
    Statistic("tvd", "categorical", "promdrift_category_tvd", binning.total_variation,
              ("tvd_max", "min_samples"),
              "total variation distance of the category shares, judged minus its no-drift "
              "value (binning.tvd_noise)"),
    Statistic("unseen_share", "categorical", "promdrift_category_unseen", None,
              ("unseen_share_excess", "min_samples"),
              "share of values outside the training top-K (__other__)"),
    Statistic("invalid_ratio", "any", "promdrift_invalid", None, ("invalid_ratio_max",),
              "share of values that were missing, null, NaN, infinite or of the wrong type"),
)}
