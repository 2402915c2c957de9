"""The training side: what a baseline is and how it is fitted.

- ``baseline``: :class:`Baseline` (fit, save, load, digest), training's record of every
  feature's and output's distribution;
- ``columns``: one column's baseline (numeric bins, categorical top-K), read by every layer;
- ``checks``: what ``Baseline.fit`` refuses or warns about;
- ``tabular``: data frames, row dicts, arrays and CSV files as columns (no pandas needed);
- ``multivariate``: the PCA models of derived features (fitted here, applied when counting);
- ``references``: the outcomes' reference values (validation-set quality, bias per facet,
  mean attribution), the numpy maths ``Baseline.with_quality`` and friends run.

It needs numpy only (no prometheus_client, no SQLite, no web framework).
"""
