"""promdrift exporter: the standalone exporter service, its client, and the ``promdrift``
command line with its tools.

- ``service``: the ingest service of ``promdrift exporter`` (model servers in any language
  POST their rows, Prometheus scrapes the same families an in-process monitor exposes);
- ``client``: :class:`ExporterClient`, the Python client of that service (``requests``);
- ``cli``: the ``promdrift`` command (``baseline``, ``show``, and the subcommands below);
- ``report``: ``promdrift report``, the offline report over captured rows;
- ``trial``: ``promdrift trial``, promdrift's alerts against your model server, with
  ``stack``, the local Prometheus, Alertmanager and webhook receiver it starts.

Names are imported on first use: ``from promdrift.exporter.client import ExporterClient``
loads neither numpy nor the monitor.
"""

from __future__ import annotations

from promdrift._lazy import exports as _exports

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from promdrift import __version__
    from .client import ExporterClient

__all__ = ["ExporterClient", "__version__"]

__getattr__, __dir__ = _exports(__name__, {"ExporterClient": ".client", "__version__": "promdrift"})
