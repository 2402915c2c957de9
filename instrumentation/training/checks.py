"""What ``Baseline.fit`` refuses, and what it fits but warns about, before any value is
binned: the mistakes that would otherwise give a baseline that looks fine and drifts, or
alerts, for no reason.

    >>> import warnings
    >>> try:
    ...     refuse({"Unnamed: 0": np.arange(3.0), "x": np.ones(3)}, numeric=())
    ... except BaselineError as e:
    ...     print(str(e)[:56])
    column 'Unnamed: 0' has no name: an empty CSV header, as

**Refused** (one ``BaselineError`` naming every such column and the fix):

- a column without a name (an empty header, or pandas' ``Unnamed: 0``): the index that
  pandas' ``df.to_csv()`` writes;
- a column of values promdrift cannot bin or count: datetimes, timedeltas, bytes, nested
  values (lists, dicts, arrays), other objects;
- a column without a single valid value (all missing, NaN or infinite): live values would
  have nothing to be compared with;
- a column listed as numeric that holds text.

**Warned about** (:class:`BaselineWarning`; the baseline is fitted as it is):

- a numeric prediction output holding only a few integers (a classifier's class indices,
  such as scikit-learn's ``0 / 1 / 2``): fitted as numbers unless listed as categorical;
- a text column of ISO dates or times: every later date is an unseen category.

Each message says how to choose: ``categorical`` / ``numeric`` / ``ignore`` (``--categorical``
/ ``--numeric`` / ``--ignore`` on the command line).
"""

from __future__ import annotations

import datetime as _dt
import re
import shlex
import warnings
from collections.abc import Mapping, Set
from typing import Any, Collection, Dict, Iterable, List, Optional

import numpy as np

from ..values import NUMBER_TYPES
from .columns import OTHER, BaselineError, CategoricalColumn, Column, NumericColumn
from .tabular import numeric_column, unnamed

__all__ = ["BaselineWarning", "CLASS_LIKE_MAX", "refuse", "warn", "unsupported"]

#: A numeric prediction output with at most this many distinct values, all integers, is
#: most likely a class index: :func:`warn` says so.
CLASS_LIKE_MAX = 20

_DATE_TEXT = re.compile(r"^\d{4}-\d{2}-\d{2}")


class BaselineWarning(UserWarning):
    """A baseline fitted as asked, but probably not as meant (see the module's list)."""


def _skip(names: Iterable[str]) -> str:
    """How to skip columns, on the command line and in Python."""
    names = list(names)
    cli = ",".join(names)
    return f"--ignore {shlex.quote(cli)} (ignore={names!r})"


#: (numpy dtype kind, what it holds, what to do instead)
_KINDS = {
    "M": ("datetimes", "derive numbers from it (an age in days, an hour of day) and fit those"),
    "m": ("time differences (timedelta)", "convert it to a number of seconds or days"),
    "S": ("bytes", "decode it to text"),
    "V": ("raw binary records", "split it into columns of numbers or text"),
    "c": ("complex numbers", "split it into real numbers"),
}
_NESTED = "flatten it into columns of numbers or text"


def unsupported(values: np.ndarray) -> Optional[str]:
    """What a column holds that promdrift cannot bin or count, and what to do instead (one
    phrase), or ``None``::

        >>> unsupported(np.array(["2024-01-01"], dtype="datetime64[D]"))[:9]
        'datetimes'
        >>> unsupported(np.array([[1, 2], None, [3]], dtype=object))[:14]
        'lists (row 0: '
        >>> unsupported(np.array([1.0, None, "a"], dtype=object)) is None
        True
    """
    kind = values.dtype.kind
    if kind in _KINDS:
        what, fix = _KINDS[kind]
        return f"{what} (numpy {values.dtype}): {fix}"
    if kind != "O":
        return None
    for i, v in enumerate(values.tolist()):
        if v is None or type(v) in NUMBER_TYPES or isinstance(v, (str, int, float,
                                                                   np.number, np.bool_)):
            continue
        if isinstance(v, _dt.datetime):
            what, fix = "datetimes", _KINDS["M"][1]
        elif isinstance(v, _dt.date):
            what, fix = "dates", _KINDS["M"][1]
        elif isinstance(v, _dt.time):
            what, fix = "times of day", "convert it to a number (seconds since midnight)"
        elif isinstance(v, (_dt.timedelta, np.timedelta64)):
            what, fix = _KINDS["m"]
        elif isinstance(v, np.datetime64):
            what, fix = "datetimes", _KINDS["M"][1]
        elif isinstance(v, (bytes, bytearray, memoryview)):
            what, fix = _KINDS["S"]
        elif isinstance(v, Mapping):
            what, fix = "dicts (nested objects)", _NESTED
        elif isinstance(v, (list, tuple, np.ndarray, Set)):
            what, fix = f"{type(v).__name__}s", _NESTED
        else:
            what, fix = (f"objects of type {type(v).__module__}.{type(v).__qualname__}",
                         "convert it to numbers or text")
        shown = repr(v)
        if len(shown) > 40:
            shown = shown[:39] + "…"
        return f"{what} (row {i}: {shown}): {fix}"
    return None


def _empty(values: np.ndarray, numeric: bool) -> bool:
    if numeric:
        return not np.isfinite(values).any()
    return all(v is None or (isinstance(v, float) and not np.isfinite(v))
               for v in values.tolist())


def refuse(columns: Mapping[str, np.ndarray], numeric: Collection[str]) -> None:
    """Raise one ``BaselineError`` naming every column that cannot be fitted and the fix.
    ``numeric``: the columns listed as numeric."""
    problems: List[str] = []
    skip: List[str] = []
    for name, values in columns.items():
        if unnamed(name):
            problems.append(
                f"column {name!r} has no name: an empty CSV header, as pandas' df.to_csv(path) "
                f"writes for the index (pandas reads it back as 'Unnamed: 0'); it would be "
                f"fitted as a feature that live rows never send. Write the CSV with "
                f"df.to_csv(path, index=False) (or read it with pd.read_csv(path, "
                f"index_col=0)), or skip the column: {_skip([name])}")
            skip.append(name)
            continue
        what = unsupported(values)
        if what is not None:
            problems.append(f"column {name!r} holds {what}; or skip the column: "
                            f"{_skip([name])}")
            skip.append(name)
            continue
        num = numeric_column(values.astype(np.float64) if values.dtype.kind == "b"
                             and name in numeric else values)
        if name in numeric and num is None:
            example = next((v for v in values.tolist() if v is not None
                            and not isinstance(v, (int, float))), None)
            problems.append(f"column {name!r} is listed as numeric but holds values that are "
                            f"not numbers (such as {example!r}): remove it from numeric / "
                            f"--numeric, or fix the values")
            continue
        if _empty(num if num is not None else values, num is not None):
            problems.append(
                f"column {name!r} has no valid values (all {len(values)} rows are missing, "
                f"NaN or infinite), so live values would have nothing to be compared with: "
                f"fill it, or skip the column: {_skip([name])}")
            skip.append(name)
    if not problems:
        return
    if len(problems) == 1:
        raise BaselineError(problems[0])
    text = f"{len(problems)} columns cannot be fitted:\n" + "\n".join(
        f"- {p}" for p in problems)
    if len(skip) > 1:
        text += f"\nTo skip all of them: {_skip(skip)}"
    raise BaselineError(text)


def _class_like(col: NumericColumn, values: np.ndarray) -> Optional[List[int]]:
    finite = values[np.isfinite(values)]
    uniq = np.unique(finite)
    if uniq.size > CLASS_LIKE_MAX or not np.array_equal(uniq, np.round(uniq)):
        return None
    return [int(u) for u in uniq]


def warn(features: Dict[str, Column], predictions: Dict[str, Column],
         raw: Mapping[str, np.ndarray], categorical: Collection[str],
         numeric: Collection[str], stacklevel: int = 3) -> None:
    """Warn (:class:`BaselineWarning`) about fitted columns that are probably not what the
    caller meant; columns listed in ``categorical`` or ``numeric`` were chosen and are not
    warned about."""
    messages = []
    for name, col in predictions.items():
        if not isinstance(col, NumericColumn) or name in numeric:
            continue
        classes = _class_like(col, numeric_column(raw[name]))
        if classes is None:
            continue
        shown = ", ".join(map(str, classes[:10])) + (", …" if len(classes) > 10 else "")
        messages.append(
            f"prediction output {name!r} holds only the integers {shown} ({len(classes)} "
            f"distinct values), so it is fitted as a numeric output: a histogram of values, "
            f"KS and PromdriftPredictionDrift. If these are class labels (a classifier's "
            f"predict()), fit it as categorical for class shares and "
            f"PromdriftPredictionClassDrift: --categorical {shlex.quote(name)} "
            f"(categorical=[{name!r}]); to keep it numeric and silence this warning: "
            f"--numeric {shlex.quote(name)} (numeric=[{name!r}])")
    for name, col in list(features.items()) + list(predictions.items()):
        if (not isinstance(col, CategoricalColumn) or name in categorical
                or not col.categories or not all(map(_date_text, col.categories))):
            continue
        messages.append(
            f"column {name!r} holds dates or times as text (such as {col.categories[0]!r}), "
            f"fitted as a categorical column: every value after the training period will "
            f"count as an unseen category ({OTHER}). Derive numbers from it (an age in "
            f"days, an hour of day) and fit those, or skip it: {_skip([name])}; to keep it "
            f"categorical and silence this warning: --categorical {shlex.quote(name)} "
            f"(categorical=[{name!r}])")
    for m in messages:
        warnings.warn(m, BaselineWarning, stacklevel=stacklevel)


def _date_text(key: str) -> bool:
    if not _DATE_TEXT.match(key):
        return False
    try:
        _dt.datetime.fromisoformat(key)
    except ValueError:
        return False
    return True
