"""One dashboard under construction: its variables, the matchers they make, its panels.

    >>> from promdrift.promql import RulesConfig
    >>> b = Board(RulesConfig(keep_labels=["cluster"]), "promdrift-x", "promdrift / X",
    ...           ["feature"])
    >>> [v.name for v in b.variables]
    ['cluster', 'model', 'baseline', 'feature']
    >>> b.rule("model_feature:promdrift_psi:{w}", "feature")
    'model_feature:promdrift_psi:${window:text}{cluster="$cluster", model="$model",
     baseline=~"$baseline", feature="$feature"}'
    >>> b.rule("model_feature:promdrift_psi:{w}x")
    Traceback (most recent call last):
    ...
    ValueError: dashboard promdrift-x reads model_feature:promdrift_psi:5mx, which the rules of
    this configuration do not record

The ``window`` variable lists the configured windows as Grafana ``text : value`` pairs, the
window's name as text and its range as value: ``${window:text}`` is the suffix of a recording
rule's name (``model_feature:promdrift_ks_statistic:${window:text}``), ``$window`` the range
of a fragment computed at query time (``increase(...[$window])``). Both are the same unless
the configuration scales time (``time_scale``, ``ranges``).

Every query filters by the dashboard's variables: the kept labels of the configuration
(``cluster``, ``env`` ...), ``model`` and the panel's subject (``feature``, ``output``,
``facet``). Fragments of :class:`promdrift.promql.expr.Expressions` get them as extra
matchers, after the configured target selector; recording rules (which keep only the kept
labels) get them directly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Sequence

from promdrift.extras import require
from promdrift.promql.config import RulesConfig
from promdrift.promql.expr import Expressions
from promdrift.promql.header import generated_by, options_line
from promdrift.promql.rules import recording_groups

require("rules", "grafana_foundation_sdk", "grafana-foundation-sdk")

from grafana_foundation_sdk.builders import dashboard as sdk  # noqa: E402
from grafana_foundation_sdk.cog.encoder import JSONEncoder  # noqa: E402
from grafana_foundation_sdk.models import dashboard as model  # noqa: E402

__all__ = ["Board", "Variable", "DATASOURCE", "WINDOW_TEXT", "WINDOW_RANGE", "TAG",
           "SUBJECTS", "MODEL", "BASELINE", "window_options"]

#: Every panel and query variable reads the data source chosen in the ``datasource`` variable.
DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
#: The recording rules' window suffix and the range of the selected window.
WINDOW_TEXT = "${window:text}"
WINDOW_RANGE = "$window"
#: Dashboards link to each other through this tag.
TAG = "promdrift"


@dataclass(frozen=True)
class Variable:
    """A query variable listing the values of label ``name`` found on series ``source``."""

    name: str
    label: str
    source: str
    description: str


#: The variables a dashboard can narrow its panels with, besides the kept labels and model.
SUBJECTS: Dict[str, Variable] = {v.name: v for v in (
    Variable("feature", "Feature", "promdrift_feature_invalid_total",
             "every feature of the model, numeric and categorical"),
    Variable("output", "Output", "promdrift_prediction_invalid_total",
             "every prediction output of the model"),
    Variable("facet", "Facet", "promdrift_bias_predictions_total",
             "the facets the model's monitor tracks (track_facets); empty without"),
)}
MODEL = Variable("model", "Model", "promdrift_baseline_info", "models exporting a baseline")
#: The baselines (digests) the model's replicas serve: one while every replica serves the
#: same, more during a rolling update, a canary or champion/challenger. The detail dashboards
#: repeat each row per baseline (all by default), so no panel mixes two baselines' bins.
BASELINE = Variable("baseline", "Baseline", "promdrift_baseline_info",
                    "the baselines (digests) the model's replicas serve: several during a "
                    "rolling update, a canary or champion/challenger, each with its own "
                    "statistics; the detail dashboards show one row per baseline")


def window_options(config: RulesConfig) -> List[model.VariableOption]:
    """The ``window`` variable's options: text the window's name, value its range."""
    by_range: Dict[str, str] = {}
    options = []
    for w in config.windows:
        rng = config.range(w)
        if rng in by_range:
            raise ValueError(f"ranges: windows {by_range[rng]!r} and {w!r} both cover {rng}; "
                             f"the dashboards' window variable needs one range per window")
        by_range[rng] = w
        options.append(model.VariableOption(text=w, value=rng,
                                            selected=w == config.alert_window))
    return options


def _custom_query(options: Sequence[model.VariableOption]) -> str:
    """Grafana's custom variable syntax: ``text : value`` pairs (plain values when equal)."""
    return ",".join(str(o.value) if o.text == o.value else f"{o.text} : {o.value}"
                    for o in options)


class Board:
    """A dashboard of ``config``: uid, title, its subject variables (``feature`` ...).

    ``multi``: the kept labels and ``model`` take several values (and All), as on the
    overview; otherwise one value each, as on the detail dashboards.
    """

    def __init__(self, config: RulesConfig, uid: str, title: str,
                 subjects: Sequence[str] = (), multi: bool = False, description: str = ""):
        self.config = config
        self.uid = uid
        self.multi = multi
        kept = [Variable(k, k, MODEL.source, f"target label {k!r} (kept by the rules)")
                for k in config.keep_labels]
        self.variables: List[Variable] = (kept + [MODEL, BASELINE]
                                          + [SUBJECTS[s] for s in subjects])
        #: the variable every row repeats over (the detail dashboards: one row per baseline)
        self.repeat: Optional[str] = None if multi else BASELINE.name
        self._records = {r.record for g in recording_groups(config) for r in g.rules}
        self._next_id = 1
        self.dashboard = (
            sdk.Dashboard(title).uid(uid).tags([TAG])
            .description(f"{description}. {generated_by()} from {options_line(config)}: do "
                         f"not edit, change the options and regenerate.")
            .editable().time("now-6h", "now").refresh("1m").timezone("browser")
            .tooltip(model.DashboardCursorSync.CROSSHAIR)
            .annotation(sdk.AnnotationQuery().name("Annotations & Alerts").built_in(1)
                        .type("dashboard").enable(True).hide(True)
                        .icon_color("rgba(0, 211, 255, 1)")
                        .datasource(model.DataSourceRef(type_val="grafana",
                                                        uid="-- Grafana --")))
            .link(sdk.DashboardLink("promdrift").type(model.DashboardLinkType.DASHBOARDS)
                  .tags([TAG]).as_dropdown(False).include_vars(True).keep_time(True)
                  .icon("external link").target_blank(False))
            .with_variable(sdk.DatasourceVariable("datasource").label("Data source")
                           .type("prometheus").multi(False).include_all(False))
        )
        for i, v in enumerate(self.variables):
            self.dashboard.with_variable(self._query_variable(v, self.variables[:i]))
        options = window_options(config)
        self.dashboard.with_variable(
            sdk.CustomVariable("window").label("Window").values(_custom_query(options))
            .options(options).current(next(o for o in options if o.selected))
            .multi(False).include_all(False)
            .description(f"Window of the recording rules (groups promdrift-<window>); "
                         f"the alerts read {config.alert_window}"))

    # ------------------------------------------------------------------ variables
    def _is_multi(self, v: Variable) -> bool:
        return v is BASELINE or (self.multi and v.name not in SUBJECTS)

    def _query_variable(self, v: Variable, before: Sequence[Variable]) -> sdk.QueryVariable:
        source = Expressions(self.config, [self.matcher(b) for b in before]).sel(v.source)
        query = f"label_values({source}, {v.name})"
        var = (sdk.QueryVariable(v.name).label(v.label).description(v.description)
               .datasource(DATASOURCE)
               .query({"qryType": 1, "query": query,
                       "refId": "PrometheusVariableQueryEditor-VariableQuery"})
               .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
               .sort(model.VariableSort.ALPHABETICAL_CASE_INSENSITIVE_ASC)
               .multi(self._is_multi(v)).include_all(self._is_multi(v)))
        if self._is_multi(v):
            # All: every model (they all have a name); a kept label may be missing on a
            # target, and a baseline label on the series of a promdrift older than 0.2
            var.all_value(".+" if v is MODEL else ".*")
        return var

    def matcher(self, v: Variable) -> str:
        op = "=~" if self._is_multi(v) else "="
        return f'{v.name}{op}"${v.name}"'

    def matchers(self, *subjects: str) -> List[str]:
        """The kept-label and model matchers, then those of ``subjects``."""
        names = [v.name for v in self.variables]
        for s in subjects:
            if s not in names:
                raise ValueError(f"dashboard {self.uid} has no variable {s!r}")
        return [self.matcher(v) for v in self.variables
                if v.name not in SUBJECTS or v.name in subjects]

    def e(self, *subjects: str) -> Expressions:
        """The statistics' fragments, narrowed to the dashboard's selection."""
        return Expressions(self.config, self.matchers(*subjects))

    def rule(self, template: str, *subjects: str, extra: Iterable[str] = ()) -> str:
        """A recording rule's selector: ``template`` with ``{w}`` the selected window."""
        for w in self.config.windows:
            name = template.format(w=w)
            if name not in self._records:
                raise ValueError(f"dashboard {self.uid} reads {name}, which the rules of "
                                 f"this configuration do not record")
        name = template.format(w=WINDOW_TEXT)
        return f"{name}{{{', '.join(self.matchers(*subjects) + list(extra))}}}"

    def alerts(self, names: str, *subjects: str) -> str:
        """Prometheus' ``ALERTS`` series of the alerts matching regex ``names``, firing, for
        the selection (alerts carry the rules' labels, not the target selector's)."""
        ms = [f'alertname=~"{names}"', 'alertstate="firing"'] + self.matchers(*subjects)
        return f"ALERTS{{{', '.join(ms)}}}"

    def by(self, *labels: str, per_baseline: bool = True) -> str:
        """``labels`` plus the kept labels, for ``by (...)`` (``RulesConfig.by``)."""
        return self.config.by(*labels, per_baseline=per_baseline)

    def legend(self, *labels: str) -> str:
        """A legend of ``labels``, with the kept labels where they may take several values;
        ``model`` with its version and baseline (``churn 3@7f6c461120b0``)."""
        kept = self.config.keep_labels if self.multi else ()
        text = " / ".join("{{model}} {{model_version}}@{{baseline}}" if x == "model"
                          else "{{" + x + "}}" for x in labels)
        if kept:
            text += " (" + ", ".join("{{" + k + "}}" for k in kept) + ")"
        return text

    # ------------------------------------------------------------------ panels
    def row(self, title: str, panels: Sequence[Any]) -> "Board":
        """A row and its panels, laid out left to right (widths of 24 columns per line); on
        the detail dashboards repeated per baseline (its title names the baseline)."""
        row = sdk.Row(title).id(self._take_id())
        if self.repeat:
            row.title(f"{title} (baseline ${self.repeat})").repeat(self.repeat)
        self.dashboard.with_row(row)
        for p in panels:
            self.dashboard.with_panel(p.id(self._take_id()))
        return self

    def _take_id(self) -> int:
        self._next_id += 1
        return self._next_id - 1

    def link(self, link: sdk.DashboardLink) -> "Board":
        self.dashboard.link(link)
        return self

    def alerts_annotation(self, name: str, expr: str, text: str) -> "Board":
        self.dashboard.annotation(_PrometheusAnnotation(name, expr, "{{alertname}}", text))
        return self

    def build(self) -> Dict[str, Any]:
        """The Grafana JSON model, as plain data."""
        return json.loads(JSONEncoder(sort_keys=False).encode(self.dashboard.build()))


class _PrometheusAnnotationModel(model.AnnotationQuery):
    """An annotation query of a Prometheus data source, with the title and text templates
    that the SDK's generic annotation model does not carry."""

    def __init__(self, title_format: str, text_format: str, step: str, **kwargs: Any):
        super().__init__(**kwargs)
        self.title_format, self.text_format, self.step = title_format, text_format, step

    def to_json(self) -> Dict[str, object]:
        out = super().to_json()
        out.update({"step": self.step, "titleFormat": self.title_format,
                    "textFormat": self.text_format, "useValueForTime": False})
        return out


class _PrometheusAnnotation(sdk.AnnotationQuery):
    def __init__(self, name: str, expr: str, title: str, text: str,
                 step: Optional[str] = "60s") -> None:
        self._internal = _PrometheusAnnotationModel(
            title_format=title, text_format=text, step=step or "60s", name=name,
            datasource=DATASOURCE, enable=True, hide=False, icon_color="red", expr=expr)
