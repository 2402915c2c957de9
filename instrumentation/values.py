"""The value rules: how every part of promdrift judges what it is handed.

``DriftMonitor.observe``, data capture, the outcome monitors (labels, facets, attributions),
the exporter and ``promdrift report`` all ask this module, so a value is judged the same way
everywhere::

    >>> is_batch([{"x": 1}, {"x": 2}]), is_batch({"x": 1}), is_batch([1.0, 2.0])
    (True, False, False)
    >>> number(2), number(True), number(None), number(float("nan"))
    ((-1, 2.0), (-1, 1.0), (1, nan), (2, nan))
    >>> number(" 27 "), number("1e3"), number("nan"), number("27 kg"), number("27", coerce=False)
    ((-1, 27.0), (-1, 1000.0), (2, nan), (4, nan), (4, nan))
    >>> category(2), category(2.0), category("2"), category("2.0"), category(True)
    ((-1, '2'), (-1, '2'), (-1, '2'), (-1, '2.0'), (-1, 'True'))

**Batch or row.** A 2-D array, or a non-empty list / tuple whose first entry is a row (a
mapping, list, tuple or array), is a batch; anything else is one row.

**Valid or invalid, and why.** A value that cannot be counted is counted by the first
:data:`REASONS` entry that applies: ``missing`` (the key is absent: :data:`ABSENT`), ``null``
(``None``, JSON null), ``nan``, ``inf`` (±inf, or an integer too large for a float),
``wrong_type`` (anything else that is not a value of the column's kind: a string that spells
no number for a numeric column, a list, a dict, an object).

**Numbers sent as text count as served.** For a numeric column (a feature, an output, a
label, an attribution) a string is read as the number pydantic v2 (lax mode, a ``float``
field) reads it, since that is what a FastAPI model server validates and serves
(:func:`text_number`): ``"27"``, ``" 2.5 "``, ``"1e3"``, ``"-.5"``, ``"1_000"`` are numbers;
``"nan"``, ``"inf"``, ``"-Infinity"``, ``"1e400"`` are NaN and infinities, invalid as
``nan`` / ``inf`` like the numbers they spell; ``""``, ``"27 kg"``, ``"0x1F"``, ``"1,5"``,
``"１２"`` (non-ASCII digits) spell no number and stay ``wrong_type``. ``coerce=False`` (a
monitor's ``coerce_numbers=False``, the exporter's ``--no-coerce-numbers``) keeps every
string ``wrong_type``. Categorical columns never parse strings (below).

**Booleans are the integers 1 and 0**, as in Python (``True == 1``) and numpy: the number 1.0
for a numeric column (a feature, an output, a label, an attribution), and for a categorical
column the category ``"True"`` / ``"False"``, which a column fitted from the integers 0 / 1
counts as ``"1"`` / ``"0"`` and vice versa (``CategoricalColumn.index``).

**Category keys.** A category is a string. Strings are names and are kept verbatim (never
parsed: ``"2.0"``, ``" 2"`` and ``"02"`` are three categories, none of them ``"2"``);
numbers are keyed by value: integral values as a plain integer (``2``, ``2.0`` and
``numpy.int64(2)`` are ``"2"``, the key a JSON string ``"2"`` also has, and what a CSV cell
``2`` or ``2.0`` is fitted as), other finite values by their shortest round-trip ``repr``
(``0.5``). ``None``, NaN, infinities and containers are not categories.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, Optional, Tuple

import numpy as np

__all__ = ["REASONS", "MISSING", "NULL", "NAN", "INF", "WRONG_TYPE", "VALID", "ABSENT",
           "NUMBER_TYPES", "REQUEST_REASONS", "NOT_JSON", "NOT_OBJECT", "NO_FEATURES",
           "BAD_SHAPE", "is_batch", "number", "text_number", "finite_number", "category_key",
           "category", "invalid_reason"]

#: Why a value was not counted, in the order of the invalid-counter slots.
REASONS: Tuple[str, ...] = ("missing", "null", "nan", "inf", "wrong_type")
MISSING, NULL, NAN, INF, WRONG_TYPE = range(len(REASONS))
#: The reason returned for a valid value.
VALID = -1

#: Why a whole request (or ``observe`` call) could not be read, in the order of its
#: counter slots: the body is not JSON (or not sent as JSON), it is JSON but not an object,
#: the object has no features (the key is absent or null), or the features (or the
#: prediction) are of a shape no row or batch has: a string or a number, a row of the wrong
#: length, a batch holding something that is no row. Nothing of such a request is counted
#: but the request itself (``promdrift_requests_invalid_total``).
REQUEST_REASONS: Tuple[str, ...] = ("not_json", "not_object", "no_features", "bad_shape")
NOT_JSON, NOT_OBJECT, NO_FEATURES, BAD_SHAPE = REQUEST_REASONS


class _Absent:
    """A key missing from a row (``row.get(name, ABSENT)``)."""

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Any = _Absent()

#: The exact types that are numbers (a fast ``type(v) in NUMBER_TYPES`` check; subclasses
#: of int and float are numbers too, see :func:`number`).
NUMBER_TYPES = frozenset({float, int, bool, np.float64, np.float32, np.float16, np.int64,
                          np.int32, np.int16, np.int8, np.uint64, np.uint32, np.uint16,
                          np.uint8, np.bool_})
_ROW_TYPES = (Mapping, list, tuple, np.ndarray)


def is_batch(features: Any) -> bool:
    """Whether ``features`` is a batch of rows rather than one row."""
    if isinstance(features, np.ndarray):
        return features.ndim == 2
    return (isinstance(features, (list, tuple)) and bool(features)
            and isinstance(features[0], _ROW_TYPES))


def invalid_reason(value: Any) -> int:
    """The reason a value that is not a valid number or category is invalid."""
    if value is ABSENT:
        return MISSING
    if value is None:
        return NULL
    if isinstance(value, (float, np.floating)):
        return NAN if value != value else INF
    return WRONG_TYPE


#: What pydantic v2 reads as a float from a string, after stripping white space: a sign,
#: ASCII digits with at most one point, an exponent; or nan / inf / infinity in any case.
_TEXT_NUMBER = re.compile(r"[+-]?(?:(?:[0-9]++(?:\.[0-9]*+)?|\.[0-9]++)(?:[eE][+-]?[0-9]++)?"
                          r"|(?i:nan|inf|infinity))")
#: White space as pydantic strips it (Unicode White_Space: Python's ``str.isspace`` minus
#: the information separators U+001C..U+001F).
_SPACE = "".join(c for c in map(chr, range(0x3001)) if c.isspace() and not "\x1c" <= c <= "\x1f")


def text_number(text: str) -> Optional[float]:
    """The number a string spells as pydantic v2 reads it for a ``float`` field in lax mode
    (FastAPI's default), or ``None`` when it spells none::

        >>> text_number(" 27 "), text_number("1_000"), text_number("-.5e1"), text_number("Inf")
        (27.0, 1000.0, -5.0, inf)
        >>> text_number(""), text_number("27 kg"), text_number("0x1F"), text_number("1__0")
        (None, None, None, None)

    Surrounding white space is stripped; single underscores may separate any two characters
    (``"1_000"``, ``"in_f"``), never lead, trail or double, and a string holding one is not
    stripped (``" 1_000"`` spells no number); digits are ASCII only. Such a
    string may still spell NaN or an infinity (``"nan"``, ``"1e400"``), which the caller
    judges as it judges those numbers.
    """
    if "_" in text:  # pydantic's second reading: underscores dropped, nothing stripped
        if text[0] == "_" or text[-1] == "_" or "__" in text:
            return None
        s = text.replace("_", "")
    else:
        s = text.strip(_SPACE)
    if _TEXT_NUMBER.fullmatch(s) is None:
        return None
    try:
        return float(s)
    except (ValueError, OverflowError):  # pragma: no cover - the pattern is float syntax
        return None


def number(value: Any, coerce: bool = True) -> Tuple[int, float]:
    """``(VALID, value as a float)`` for a finite number (a bool is 1.0 or 0.0; with
    ``coerce``, a string spelling a finite number, :func:`text_number`), else
    ``(reason, nan)``."""
    if type(value) in NUMBER_TYPES or isinstance(value, (int, float, np.integer,
                                                         np.floating, np.bool_)):
        try:
            x = float(value)
        except OverflowError:  # an int beyond float range
            return INF, math.nan
        if x - x == 0.0:
            return VALID, x
        return (NAN if x != x else INF), math.nan
    if coerce and isinstance(value, str):
        x = text_number(value)
        if x is not None:
            if x - x == 0.0:
                return VALID, x
            return (NAN if x != x else INF), math.nan
    return invalid_reason(value), math.nan


def finite_number(value: Any, coerce: bool = True) -> Optional[float]:
    """The value as a float when :func:`number` finds it valid, else ``None``."""
    reason, x = number(value, coerce)
    return x if reason == VALID else None


def category_key(value: Any) -> Optional[str]:
    """The category string of a value, or ``None`` when it is not a valid category (see the
    module's rules)::

        >>> category_key(3), category_key(3.0), category_key(0.25), category_key("x")
        ('3', '3', '0.25', 'x')
        >>> category_key(None), category_key(float("inf")), category_key([1])
        (None, None, None)
    """
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, np.bool_)):
        return "True" if value else "False"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if not math.isfinite(v):
            return None
        return str(int(v)) if v.is_integer() and abs(v) < 1e16 else repr(v)
    return None


def category(value: Any) -> Tuple[int, Optional[str]]:
    """``(VALID, key)`` for a valid category, else ``(reason, None)``."""
    if type(value) is str:
        return VALID, value
    key = category_key(value)
    if key is None:
        return invalid_reason(value), None
    return VALID, key
