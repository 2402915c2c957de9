"""Panel factories on Grafana's SDK, in promdrift's house style.

    >>> p = timeseries("PSI", "Population stability index.",
    ...                [query("model_feature:promdrift_psi:1h", "PSI")], threshold=0.25)
    >>> panel = p.build()
    >>> steps = panel.field_config.defaults.thresholds.steps
    >>> panel.type_val, panel.targets[0].ref_id, steps[1].value
    ('timeseries', 'A', 0.25)

Time series read recording rules (a long time range never scans every histogram bucket) or
``rate()`` of a few counters at ``$__rate_interval``; their threshold lines are the
configuration's literal thresholds. Tables and bar charts are instant queries, so they may
compute what no rule records (bin and category shares, CDFs) from the raw series at the
selected window; their queries are merged on equal labels by Grafana's *merge*
transformation.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple, Union

from promdrift.extras import require
from promdrift.promql.expr import indent

from .board import DATASOURCE

require("rules", "grafana_foundation_sdk", "grafana-foundation-sdk")

from grafana_foundation_sdk.builders import barchart as sdk_barchart  # noqa: E402
from grafana_foundation_sdk.builders import common as sdk_common  # noqa: E402
from grafana_foundation_sdk.builders import dashboard as sdk  # noqa: E402
from grafana_foundation_sdk.builders import prometheus as sdk_prometheus  # noqa: E402
from grafana_foundation_sdk.builders import stat as sdk_stat  # noqa: E402
from grafana_foundation_sdk.builders import table as sdk_table  # noqa: E402
from grafana_foundation_sdk.builders import timeseries as sdk_timeseries  # noqa: E402
from grafana_foundation_sdk.models import common  # noqa: E402
from grafana_foundation_sdk.models import dashboard as model  # noqa: E402
from grafana_foundation_sdk.models import prometheus as prom  # noqa: E402

__all__ = ["query", "table_query", "timeseries", "stat", "table", "bars", "plus_infinity",
           "threshold_steps", "feature_link"]

Query = sdk_prometheus.Dataquery
Threshold = Union[float, Tuple[float, str]]
_DASHED = {"fill": "dash", "dash": [10, 10]}


def query(expr: str, legend: Optional[str] = None) -> Query:
    """A range query (time series, stat)."""
    q = Query().expr(expr).range().editor_mode(prom.QueryEditorMode.CODE)
    return q.legend_format(legend) if legend else q


def instant(expr: str) -> Query:
    """An instant query (a stat of the latest value)."""
    return Query().expr(expr).instant().editor_mode(prom.QueryEditorMode.CODE)


def table_query(expr: str) -> Query:
    """An instant query returned as a table (one row per series, labels as columns)."""
    return instant(expr).format(prom.PromQueryFormat.TABLE)


def plus_infinity(expr: str, label: str) -> str:
    """``expr`` with the bucket edge ``+Inf`` of ``label`` written ``+Infinity``, a number
    JavaScript parses, so that Grafana can sort the bins numerically."""
    return (f"label_replace(\n  {indent(expr, 2)},\n"
            f"  \"{label}\", \"+Infinity\", \"{label}\", \"[+]Inf\"\n)")


def threshold_steps(*steps: Threshold, base: str = "transparent") -> sdk.ThresholdsConfig:
    """Absolute thresholds: ``value`` (red) or ``(value, color)`` pairs, ascending."""
    out = [model.Threshold(value=None, color=base)]
    for s in steps:
        value, color = s if isinstance(s, tuple) else (s, "red")
        out.append(model.Threshold(value=float(value), color=color))
    return sdk.ThresholdsConfig().mode(model.ThresholdsMode.ABSOLUTE).steps(out)


def _with_targets(panel, title: str, description: str, targets: Sequence[Query],
                  width: int, height: int):
    panel.title(title).description(description).datasource(DATASOURCE).span(width)
    panel.height(height)
    for i, t in enumerate(targets):
        panel.with_target(t.ref_id(chr(ord("A") + i)))
    return panel


def _legend(calcs: Sequence[str] = ("lastNotNull", "max")) -> sdk_common.VizLegendOptions:
    return (sdk_common.VizLegendOptions().display_mode(common.LegendDisplayMode.TABLE)
            .placement(common.LegendPlacement.BOTTOM).show_legend(True).calcs(list(calcs)))


def timeseries(title: str, description: str, targets: Sequence[Query], *,
               unit: str = "short", width: int = 12, height: int = 8,
               threshold: Optional[Threshold] = None, thresholds: Sequence[Threshold] = (),
               min_val: Optional[float] = None, max_val: Optional[float] = None,
               stacked: bool = False, dashed: Optional[Dict[str, str]] = None
               ) -> sdk_timeseries.Panel:
    """A time series; ``threshold(s)`` draw dashed horizontal lines, ``dashed`` maps series
    names (legends) to the color of a dashed line (reference values such as a critical
    value or a validation score)."""
    p = _with_targets(sdk_timeseries.Panel(), title, description, targets, width, height)
    p.unit(unit).line_width(1).fill_opacity(10 if stacked else 0)
    p.show_points(common.VisibilityMode.NEVER).span_nulls(False).axis_soft_min(0)
    p.draw_style(common.GraphDrawStyle.LINE)
    p.stacking(sdk_common.StackingConfig().mode(
        common.StackingMode.NORMAL if stacked else common.StackingMode.NONE).group("A"))
    p.color_scheme(sdk.FieldColor().mode(model.FieldColorModeId.PALETTE_CLASSIC))
    p.legend(_legend()).tooltip(sdk_common.VizTooltipOptions()
                                .mode(common.TooltipDisplayMode.MULTI)
                                .sort(common.SortOrder.DESCENDING))
    steps = ([threshold] if threshold is not None else []) + list(thresholds)
    if steps:
        p.thresholds(threshold_steps(*steps))
        p.thresholds_style(sdk_common.GraphThresholdsStyleConfig()
                           .mode(common.GraphThresholdsStyleMode.DASHED))
    if min_val is not None:
        p.min(min_val)
    if max_val is not None:
        p.max(max_val)
    for name, color in (dashed or {}).items():
        p.override_by_name(name, [
            model.DynamicConfigValue(id_val="custom.lineStyle", value=_DASHED),
            model.DynamicConfigValue(id_val="color", value={"mode": "fixed", "fixedColor": color})])
    return p


def stat(title: str, description: str, target: Query, *, unit: str = "short",
         steps: Sequence[Threshold] = (), base: str = "green", no_value: Optional[str] = "0",
         decimals: Optional[int] = None, width: int = 4, height: int = 4) -> sdk_stat.Panel:
    """A single number (the latest value), colored by ``steps``."""
    p = _with_targets(sdk_stat.Panel(), title, description, [target], width, height)
    p.unit(unit).thresholds(threshold_steps(*steps, base=base))
    p.color_scheme(sdk.FieldColor().mode(model.FieldColorModeId.THRESHOLDS))
    p.reduce_options(sdk_common.ReduceDataOptions().calcs(["lastNotNull"]).values(False)
                     .fields(""))
    p.color_mode(common.BigValueColorMode.VALUE).graph_mode(common.BigValueGraphMode.AREA)
    p.justify_mode(common.BigValueJustifyMode.AUTO).text_mode(common.BigValueTextMode.AUTO)
    if no_value is not None:
        p.no_value(no_value)
    if decimals is not None:
        p.decimals(decimals)
    return p


def _merge(columns: Dict[str, str], hidden: Sequence[str]) -> List[model.DataTransformerConfig]:
    """Grafana's merge of the queries' tables on equal labels, columns renamed."""
    return [
        model.DataTransformerConfig(id_val="merge", options={}),
        model.DataTransformerConfig(id_val="organize", options={
            "excludeByName": {"Time": True, **{h: True for h in hidden}},
            "renameByName": {f"Value #{ref}": name for ref, name in columns.items()},
            "indexByName": {}}),
    ]


def _sort(field: str, desc: bool) -> model.DataTransformerConfig:
    return model.DataTransformerConfig(id_val="sortBy", options={
        "fields": {}, "sort": [{"field": field, "desc": desc}]})


def _convert(field: str, to: str) -> model.DataTransformerConfig:
    return model.DataTransformerConfig(id_val="convertFieldType", options={
        "fields": {}, "conversions": [{"targetField": field, "destinationType": to}]})


def feature_link(board_labels: Sequence[str]) -> model.DashboardLink:
    """A data link from a table row to the feature detail dashboard, keeping the row's
    model, feature and kept labels, the window, the data source and the time range."""
    params = "&".join(f"var-{x}=${{__data.fields.{x}}}" for x in board_labels)
    return sdk.DashboardLink("Feature detail").url(
        f"/d/promdrift-feature/promdrift-feature?{params}&var-window=${{window}}"
        f"&${{datasource:queryparam}}&${{__url_time_range}}").build()


def table(title: str, description: str, targets: Sequence[Query], columns: Sequence[str], *,
          rank: str, rank_decimals: int = 2, link: Optional[model.DashboardLink] = None,
          width: int = 12, height: int = 12, hidden: Sequence[str] = (),
          decimals: Optional[int] = None) -> sdk_table.Panel:
    """One row per series, the queries' values side by side (``columns``, in query order),
    sorted by the column ``rank`` (worst first, colored green / yellow 0.8 / red 1)."""
    p = _with_targets(sdk_table.Panel(), title, description, targets, width, height)
    refs = {chr(ord("A") + i): c for i, c in enumerate(columns)}
    p.transformations(_merge(refs, hidden) + [_sort(rank, True)])
    p.filterable(True).cell_options(common.TableAutoCellOptions())
    p.align(common.FieldTextAlignment.AUTO)
    p.show_header(True).cell_height(common.TableCellHeight.SM)
    p.sort_by([sdk_common.TableSortByFieldState().display_name(rank).desc(True)])
    if decimals is not None:
        p.decimals(decimals)
    p.override_by_name(rank, [
        model.DynamicConfigValue(id_val="custom.cellOptions",
                                 value={"type": "color-background", "mode": "basic"}),
        model.DynamicConfigValue(id_val="thresholds", value=threshold_steps(
            (0.8, "yellow"), (1, "red"), base="green").build()),
        model.DynamicConfigValue(id_val="decimals", value=rank_decimals)])
    if link is not None:
        p.override_by_name("feature", [model.DynamicConfigValue(id_val="links", value=[link])])
    return p


def bars(title: str, description: str, targets: Sequence[Query], columns: Sequence[str], *,
         x: str, numeric_x: bool = False, sort_by: Optional[str] = None, desc: bool = False,
         hidden: Sequence[str] = (), unit: str = "percentunit", width: int = 12,
         height: int = 9) -> sdk_barchart.Panel:
    """Bars of the queries' values (``columns``) side by side for each value of label ``x``
    (bins, categories, classes, features). A numeric ``x`` (bucket edges) is sorted as a
    number, then shown as text."""
    p = _with_targets(sdk_barchart.Panel(), title, description, targets, width, height)
    refs = {chr(ord("A") + i): c for i, c in enumerate(columns)}
    steps = _merge(refs, hidden)
    if numeric_x:
        steps += [_convert(x, "number"), _sort(x, False), _convert(x, "string")]
    else:
        steps.append(_sort(sort_by or x, desc))
    p.transformations(steps)
    p.x_field(x).orientation(common.VizOrientation.VERTICAL).group_width(0.75).bar_width(0.9)
    p.show_value(common.VisibilityMode.NEVER).stacking(common.StackingMode.NONE)
    p.x_tick_label_rotation(-45).x_tick_label_spacing(0)
    p.unit(unit).fill_opacity(80).line_width(1).axis_soft_min(0)
    p.color_scheme(sdk.FieldColor().mode(model.FieldColorModeId.PALETTE_CLASSIC))
    p.legend(sdk_common.VizLegendOptions().display_mode(common.LegendDisplayMode.LIST)
             .placement(common.LegendPlacement.BOTTOM).show_legend(True))
    p.tooltip(sdk_common.VizTooltipOptions().mode(common.TooltipDisplayMode.MULTI)
              .sort(common.SortOrder.NONE))
    return p
