"""Turning the shapes users hand us (column dicts, row dicts, arrays, data frames, CSV files)
into one form: an ordered ``{name: column}`` dict of equal-length 1-D numpy arrays.

Missing entries become ``None`` in object columns and ``NaN`` in float columns::

    >>> cols = to_columns([{"a": 1, "b": "x"}, {"a": 2}])
    >>> list(cols), cols["b"].tolist()
    (['a', 'b'], ['x', None])
"""

from __future__ import annotations

import collections
import csv
import io
import os
import re
import sys
import time
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence

import numpy as np

__all__ = ["to_columns", "read_csv", "detect_delimiter", "numeric_column", "unnamed",
           "Progress", "MISSING_TOKENS", "DELIMITERS"]

#: CSV cells read as missing.
MISSING_TOKENS = frozenset({"", "NA", "N/A", "NaN", "nan", "null", "NULL", "None", "none"})
#: The delimiters :func:`detect_delimiter` chooses from (comma when it cannot tell).
DELIMITERS = ",;\t|"
#: pandas' name for a column with an empty header (``df.to_csv()`` writes its index so).
_UNNAMED = re.compile(r"^Unnamed: \d+$")


def unnamed(name: str) -> bool:
    """Whether a column name is empty or pandas' name for an empty header::

        >>> unnamed(""), unnamed("Unnamed: 0"), unnamed("age")
        (True, True, False)
    """
    return not name.strip() or bool(_UNNAMED.match(name))


class DataError(ValueError):
    """Input data that cannot be turned into columns (raised as ``BaselineError`` upstream)."""


def _pandas_missing(v: Any) -> bool:
    """``pandas.NA`` or ``pandas.NaT`` (recognised without importing pandas)."""
    t = type(v)
    return t.__name__ in ("NAType", "NaTType") and t.__module__.startswith("pandas")


def _as_1d(name: str, values: Any) -> np.ndarray:
    arr = values if isinstance(values, np.ndarray) else None
    if arr is None:
        if hasattr(values, "to_numpy"):  # pandas Series, polars Series
            arr = values.to_numpy()
            if arr.dtype == object and arr.ndim == 1 and any(map(_pandas_missing, arr.tolist())):
                # a nullable column (Int64, Float64, string): its missing entries are None
                arr = _tighten(np.array([None if _pandas_missing(v) else v
                                         for v in arr.tolist()], dtype=object))
        else:
            arr = np.asarray(list(values) if not isinstance(values, (list, tuple)) else values,
                             dtype=object)
            if arr.dtype == object and arr.ndim == 1:
                arr = _tighten(arr)
    if arr.ndim != 1:
        raise DataError(f"column {name!r} is not one-dimensional (shape {arr.shape})")
    return arr


def _tighten(arr: np.ndarray) -> np.ndarray:
    """A float array when every entry is a real number (None becomes NaN), else ``arr``."""
    for v in arr.tolist():
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
            return arr
    return np.array([np.nan if v is None else v for v in arr.tolist()], dtype=np.float64)


def to_columns(data: Any, names: Optional[Sequence[str]] = None) -> Dict[str, np.ndarray]:
    """Normalise ``data`` to an ordered dict of 1-D arrays of equal length.

    Accepts a mapping of columns, a sequence of row mappings, a 2-D numpy array (with
    ``names``), a numpy structured array, or anything with ``columns`` and ``__getitem__``
    (a pandas data frame).
    """
    if isinstance(data, np.ndarray) and data.dtype.names:
        cols = {n: _as_1d(n, data[n]) for n in data.dtype.names}
    elif isinstance(data, np.ndarray):
        if data.ndim != 2:
            raise DataError(f"a numpy array must be 2-D (rows x columns), got shape {data.shape}")
        if names is None:
            raise DataError("a 2-D array needs column names: pass names=[...]")
        if len(names) != data.shape[1]:
            raise DataError(f"{len(names)} names for {data.shape[1]} columns")
        cols = {n: _as_1d(n, data[:, i]) for i, n in enumerate(names)}
        if data.dtype == object:
            cols = {n: _tighten(c) for n, c in cols.items()}
    elif isinstance(data, Mapping):
        cols = {str(n): _as_1d(str(n), v) for n, v in data.items()}
    elif hasattr(data, "columns") and hasattr(data, "__getitem__"):
        _no_duplicates([str(n) for n in data.columns])  # else data[n] is 2-D
        cols = {str(n): _as_1d(str(n), data[n]) for n in data.columns}
    elif isinstance(data, Iterable) and not isinstance(data, (str, bytes)):
        rows = list(data)
        if not rows:
            raise DataError("no rows")
        keys: Dict[str, None] = {}
        for i, row in enumerate(rows):
            if not isinstance(row, Mapping):
                raise DataError(f"row {i} is a {type(row).__name__}, expected a mapping "
                                "(or pass a 2-D array with names=)")
            for k in row:
                keys.setdefault(str(k), None)
        cols = {k: _tighten(np.array([r.get(k) for r in rows], dtype=object)) for k in keys}
    else:
        raise DataError(f"cannot read columns from a {type(data).__name__}")
    if names is not None and not isinstance(data, np.ndarray):
        raise DataError("names= is only for 2-D numpy arrays")
    _no_duplicates([str(n) for n in names] if names is not None else
                   [str(n) for n in data] if isinstance(data, Mapping) else list(cols))
    lengths = {n: len(c) for n, c in cols.items()}
    if len(set(lengths.values())) > 1:
        raise DataError(f"columns differ in length: {lengths}")
    return cols


def _no_duplicates(names: Sequence[str], where: str = "") -> None:
    dup = sorted(n for n, k in collections.Counter(names).items() if k > 1)
    if dup:
        raise DataError(f"{where}duplicate column names {dup}: each name must be one column; "
                        "rename or drop the copies")


def _cell_number(text: str) -> Optional[float]:
    """NaN for a missing token, the number a cell spells, ``None`` for any other text."""
    s = text.strip()
    if s in MISSING_TOKENS:
        return float("nan")
    try:
        return float(s)
    except ValueError:
        return None


def numeric_column(col: np.ndarray) -> Optional[np.ndarray]:
    """``col`` as float64 (invalid entries NaN) when it is numeric, else ``None``.

    Numeric means: already a number dtype (bool excluded), or every entry is missing, a real
    number, or a string that parses as one (CSV cells).
    """
    if col.dtype.kind in "fiu":
        return col.astype(np.float64, copy=False)
    if col.dtype.kind == "b":
        return None
    out = np.empty(len(col), dtype=np.float64)
    for i, v in enumerate(col.tolist()):
        if v is None:
            out[i] = np.nan
        elif isinstance(v, bool):
            return None
        elif isinstance(v, (int, float)):
            out[i] = v
        elif isinstance(v, str):
            number = _cell_number(v)
            if number is None:
                return None
            out[i] = number
        else:
            return None
    return out


class Progress:
    """A progress line on stderr for long work: redrawn in place on a terminal, a line every
    few seconds otherwise. Silent when ``total`` is below ``min_total``.

        >>> p = Progress("reading", total=10, min_total=100)
        >>> p.update(5); p.close()
    """

    def __init__(self, label: str, total: float, unit: str = "B", min_total: float = 0,
                 stream=None, interval: Optional[float] = None):
        self.label, self.total, self.unit = label, float(total), unit
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.total >= min_total and self.total > 0
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = interval if interval is not None else (0.2 if self.tty else 5.0)
        self.done = 0.0
        self._last = 0.0
        self._start = time.monotonic()

    def _fmt(self, x: float) -> str:
        if self.unit == "B":
            for u in ("B", "KB", "MB", "GB"):
                if x < 1024 or u == "GB":
                    return f"{x:.0f} {u}" if u == "B" else f"{x:.1f} {u}"
                x /= 1024
        return f"{x:,.0f} {self.unit}"

    def update(self, done: float) -> None:
        self.done = float(done)
        now = time.monotonic()
        if self.enabled and now - self._last >= self.interval:
            self._last = now
            self._draw(final=False)

    def _draw(self, final: bool) -> None:
        pct = 100.0 * min(self.done / self.total, 1.0)
        width = 30
        filled = int(width * pct / 100)
        elapsed = time.monotonic() - self._start
        line = (f"{self.label} [{'#' * filled}{'.' * (width - filled)}] {pct:5.1f}% "
                f"{self._fmt(self.done)}/{self._fmt(self.total)} {elapsed:.1f}s")
        if self.tty:
            self.stream.write("\r" + line + ("\n" if final else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.done = self.total
            self._draw(final=True)


def detect_delimiter(sample: str) -> str:
    """The delimiter of CSV text (a header line and a few rows): one of :data:`DELIMITERS`,
    found by ``csv.Sniffer``; a comma when it cannot tell (a one-column file)::

        >>> detect_delimiter("a;b;c\\n1,5;2;x\\n"), detect_delimiter("x\\n1.5\\n")
        (';', ',')
    """
    lines = sample.splitlines()
    if len(lines) > 1 and not sample.endswith(("\n", "\r")):
        lines = lines[:-1]  # a sample cut inside a row
    try:
        return csv.Sniffer().sniff("\n".join(lines[:50]), delimiters=DELIMITERS).delimiter
    except csv.Error:
        return ","


def read_csv(path: str, chunk_rows: int = 100_000,
             progress: Optional[Callable[[str, float], Progress]] = None,
             delimiter: Optional[str] = None) -> Dict[str, np.ndarray]:
    """Read a CSV file with a header row into columns.

    Numeric columns become float64 (missing cells NaN), others object arrays of str with
    ``None`` for missing cells. ``delimiter``: one character; by default detected from the
    first lines (:func:`detect_delimiter`). An empty header is named as pandas names it,
    ``Unnamed: <position>``. Large files show a progress line on stderr (``progress`` builds
    it; pass ``False`` to stay silent).
    """
    if delimiter is not None and (not isinstance(delimiter, str) or len(delimiter) != 1
                                  or delimiter in "\"\r\n"):
        raise DataError(f"the delimiter must be one character (not a quote or a line "
                        f"break), got {delimiter!r}")
    try:
        size = os.path.getsize(path)
        fh = open(path, "rb")
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}") from None
    bar = (progress or (lambda label, total: Progress(label, total, min_total=8 << 20)))(
        f"reading {os.path.basename(path)}", size) if progress is not False else None
    with fh:
        if delimiter is None:
            delimiter = detect_delimiter(fh.read(64 << 10).decode("utf-8-sig", "replace"))
            fh.seek(0)
        text = io.TextIOWrapper(fh, encoding="utf-8-sig", newline="")
        reader = csv.reader(text, delimiter=delimiter)
        try:
            header = next(reader)
        except StopIteration:
            raise DataError(f"{path} is empty") from None
        except (csv.Error, UnicodeDecodeError) as e:
            raise DataError(f"{path}: not a readable CSV file ({e})") from None
        header = [h.strip() or f"Unnamed: {i}" for i, h in enumerate(header)]
        _no_duplicates(header, f"{path}: ")
        width = len(header)
        chunks: List[List[np.ndarray]] = [[] for _ in header]
        line = 1
        while True:
            try:
                rows = []
                for row in reader:
                    line += 1
                    if not row:
                        continue
                    if len(row) != width:
                        raise DataError(f"{path}:{line}: {len(row)} fields, the header has {width}")
                    rows.append(row)
                    if len(rows) >= chunk_rows:
                        break
            except (csv.Error, UnicodeDecodeError) as e:
                raise DataError(f"{path}:{line}: not a readable CSV file ({e})") from None
            if not rows:
                break
            for j, col in enumerate(zip(*rows)):
                chunks[j].append(_parse_cells(col))
            if bar is not None:
                bar.update(fh.tell())
        if bar is not None:
            bar.close()
    if not chunks[0]:
        raise DataError(f"{path} has a header but no rows")
    cols = {}
    for name, parts in zip(header, chunks):
        if all(p.dtype == np.float64 for p in parts):
            cols[name] = np.concatenate(parts)
        else:
            cols[name] = np.concatenate([_cells_as_objects(p) for p in parts])
    return cols


def _parse_cells(cells: Sequence[str]) -> np.ndarray:
    """Float64 when every cell is a number or a missing token, else the strings (object)."""
    try:
        return np.array(cells, dtype=np.float64)
    except ValueError:
        pass
    out = np.empty(len(cells), dtype=np.float64)
    for i, c in enumerate(cells):
        number = _cell_number(c)
        if number is None:
            return np.array([None if x.strip() in MISSING_TOKENS else x for x in cells],
                            dtype=object)
        out[i] = number
    return out


def _cells_as_objects(part: np.ndarray) -> np.ndarray:
    if part.dtype == object:
        return part
    # A numeric chunk in a column that turned out to be text: back to short strings.
    return np.array([None if np.isnan(v) else format(v, ".15g") for v in part.tolist()], dtype=object)
