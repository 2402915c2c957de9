"""The serving core: count every inference into counter slots and expose them.

- ``monitor``: :class:`DriftMonitor` (``observe``, plugins, lifecycle);
- ``store``: the counter slots of a model (``Layout``) and their in-memory store;
- ``multiprocess``: the same slots in per-process files, summed across workers at scrape;
- ``derived``: derived features (multivariate, embeddings) counted as numeric features;
- ``plugins``: the base class of what plugs into a monitor (outcomes, capture);
- ``exposition``: ``/metrics`` (the collector, ``metrics_text``, ``make_wsgi_app``,
  ``make_asgi_app``, ``start_http_server``).

It needs numpy and prometheus_client only, and imports no outcome, capture or web module at
import time (``DriftMonitor``'s builder methods import the one they plug in when called).
"""
