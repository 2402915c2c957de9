"""The optional dependencies of promdrift, by use, and the one error a missing one raises.

``pip install promdrift`` brings numpy and prometheus_client: fit, save and load a baseline,
count with a monitor, serve ``/metrics``. What only some users need is an install extra
(pyproject.toml, README "Install"): ``flask``, ``asgi``, ``exporter``, ``server``, ``rules``,
``client``, ``report``, ``all``. Every import of an optional dependency goes through
:func:`require`, so a missing one names the extra to install::

    >>> require("rules", "json", "PyYAML").__name__       # installed: the module itself
    'json'
    >>> require("rules", "promdrift_not_installed", "PyYAML")
    Traceback (most recent call last):
    ...
    promdrift.extras.MissingExtra: PyYAML is not installed: pip install 'promdrift[rules]'
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["MissingExtra", "require"]


class MissingExtra(ImportError):
    """An optional dependency is not installed; the message is one line naming the extra
    that installs it (the ``promdrift`` command prints it as its error).

        >>> e = MissingExtra("client", "requests", "requests")
        >>> str(e), e.extra, e.name, isinstance(e, ImportError)
        ("requests is not installed: pip install 'promdrift[client]'", 'client', 'requests', True)
    """

    def __init__(self, extra: str, package: str, module: str):
        super().__init__(f"{package} is not installed: pip install 'promdrift[{extra}]'",
                         name=module)
        self.extra = extra
        self.package = package


def require(extra: str, module: str, package: str) -> ModuleType:
    """Import ``module`` (of the distribution ``package``, installed by the install extra
    ``extra``), or raise :class:`MissingExtra`. An installed package that fails to import one
    of its own dependencies keeps its own error."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name is None or not (module == e.name or module.startswith(e.name + ".")):
            raise
        raise MissingExtra(extra, package, module) from None
