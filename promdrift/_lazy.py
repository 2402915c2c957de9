"""Package attributes imported on first use (PEP 562), so that importing a package loads
none of its modules until a name of one is read.

    >>> __getattr__, __dir__ = exports("promdrift", {"Baseline": ".instrumentation.training.baseline"})
    >>> __getattr__("Baseline").__module__
    'promdrift.instrumentation.training.baseline'
    >>> "Baseline" in __dir__()
    True
    >>> __getattr__("baseline")
    Traceback (most recent call last):
    ...
    AttributeError: module 'promdrift' has no attribute 'baseline'

A package's ``__init__`` assigns the pair to its own ``__getattr__`` and ``__dir__``. The
name is looked up once: its value is then set on the package, where later reads find it.
``__getattr__.exports`` is the mapping (tests/test_layers.py follows an import of a package's
name to the module that defines it).
"""

import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import Any, Callable, List, Mapping, Tuple

__all__ = ["exports"]


def exports(package: str, names: "Mapping[str, str]"
            ) -> "Tuple[Callable[[str], Any], Callable[[], List[str]]]":
    """``(__getattr__, __dir__)`` of ``package``: its attribute ``name`` is the attribute of
    the same name of module ``names[name]`` (relative to ``package`` when it starts with a
    dot). Nothing is imported until a name is read: importing a package loads only its
    ``__init__`` and this module."""

    def __getattr__(name: str) -> "Any":
        import importlib
        try:
            module = names[name]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        value = getattr(importlib.import_module(module, package), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> "List[str]":
        return sorted(set(vars(sys.modules[package])) | set(names))

    __getattr__.exports = dict(names)  # type: ignore[attr-defined]
    return __getattr__, __dir__
