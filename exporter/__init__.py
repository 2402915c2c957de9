"""promdrift exporter: the ``promdrift`` command line and the standalone exporter service."""

from promdrift.instrumentation import __version__

__all__ = ["__version__"]
