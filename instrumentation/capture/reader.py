"""Reading capture files: every complete record of a directory, whatever the writers did.

    >>> import tempfile
    >>> from promdrift.instrumentation.capture import DataCapture
    >>> directory = tempfile.mkdtemp()
    >>> with DataCapture(directory, registry=None) as capture:
    ...     _ = capture.record({"x": float("nan")}, model="m")
    >>> [r["features"] for r in read_capture(directory)]
    [{'x': 'NaN'}]
    >>> NONFINITE["NaN"]
    nan

The format (one JSON object per line, rotating ``.jsonl.part`` files renamed to ``.jsonl``
when complete) is the writer's: ``promdrift.instrumentation.capture.writer``. This module
imports neither numpy nor the monitor, so an offline reader (``promdrift report``) loads
only what reading needs.
"""

from __future__ import annotations

import datetime as _dt
import glob
import json
import math
import os
import re
from typing import Any, Dict, Iterator, List, Optional

__all__ = ["read_capture", "CaptureFiles", "NONFINITE", "file_time", "SUFFIX", "PART",
           "NAME_RE"]

#: The strings non-finite floats are written as.
NONFINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}

#: A complete capture file's suffix, and that of the file a writer appends to.
SUFFIX = ".jsonl"
PART = ".jsonl.part"
#: A capture file's name: ``<prefix>-<UTC time>-<host>-<pid>-<sequence>.jsonl[.part]``.
NAME_RE = re.compile(r"^(?P<prefix>.+)-(?P<ts>\d{8}T\d{6}\d{6}Z)-(?P<host>.+)-(?P<pid>\d+)"
                     r"-(?P<seq>\d+)\.jsonl(?:\.part)?$")


class CaptureFiles:
    """The capture files of a directory and what reading them met.

        >>> import tempfile
        >>> files = CaptureFiles(tempfile.mkdtemp())
        >>> list(files), files.rows, files.truncated
        ([], 0, 0)

    Iterating yields each record (a dict) of every complete ``.jsonl`` file and, with
    ``partial=True``, the complete lines of ``.part`` files (a writer still running, or one
    that crashed), oldest file first. Afterwards ``rows``, ``truncated`` (a last line with
    no newline: a write cut short) and ``bad`` (lines that are not a JSON object) tell what
    was read. ``progress(total_bytes)`` builds an object with ``update(done)`` / ``close()``
    (``promdrift.instrumentation.training.tabular.Progress``) for large directories.
    ``modified_since`` (a Unix time) leaves out the files last modified before it: a row is
    written after it was recorded, so they hold no row recorded since then.
    """

    def __init__(self, directory: "str | os.PathLike[str]", partial: bool = True,
                 prefix: Optional[str] = None, progress: Any = None,
                 modified_since: Optional[float] = None):
        self.directory = os.fspath(directory)
        if not os.path.isdir(self.directory):
            raise FileNotFoundError(f"capture directory {self.directory} does not exist")
        pattern = f"{prefix}-*" if prefix else "*"
        names = glob.glob(os.path.join(glob.escape(self.directory), pattern + SUFFIX))
        if partial:
            names += glob.glob(os.path.join(glob.escape(self.directory), pattern + PART))
        if modified_since is not None:
            # A row is written after it was recorded: a file last written before
            # ``modified_since`` holds no row recorded since.
            names = [n for n in names if _mtime(n) >= modified_since]
        self.paths = sorted(names, key=os.path.basename)
        self.progress = progress
        self.rows = self.truncated = self.bad = 0
        #: the file being read (while iterating)
        self.current: Optional[str] = None

    @property
    def bytes(self) -> int:
        total = 0
        for p in self.paths:
            try:
                total += os.path.getsize(p)
            except OSError:
                pass
        return total

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        self.rows = self.truncated = self.bad = 0
        bar = self.progress(self.bytes) if self.progress else None
        done = 0
        for path in self.paths:
            try:
                f = open(path, "rb")
            except FileNotFoundError:  # rotated away or finalised meanwhile
                alt = path[:-len(".part")] if path.endswith(".part") else None
                if alt is None or alt in self.paths or not os.path.exists(alt):
                    continue
                f = open(alt, "rb")
            self.current = path
            with f:
                for line in f:
                    done += len(line)
                    if not line.endswith(b"\n"):
                        self.truncated += 1
                        continue
                    try:
                        rec = json.loads(line)
                    except ValueError:
                        self.bad += 1
                        continue
                    if not isinstance(rec, dict):
                        self.bad += 1
                        continue
                    self.rows += 1
                    yield rec
                    if bar is not None and self.rows % 10_000 == 0:
                        bar.update(done)
        if bar is not None:
            bar.close()


def _mtime(path: str) -> float:
    try:
        return os.path.getmtime(path)
    except OSError:
        return math.inf  # finalised meanwhile: read it (the reader finds the new name)


def file_time(path: str) -> Optional[_dt.datetime]:
    """The UTC time in a capture file's name (when the writer opened it), or ``None``::

        >>> file_time("capture-20261122T015005123456Z-host-12-1.jsonl")
        datetime.datetime(2026, 11, 22, 1, 50, 5, 123456, tzinfo=datetime.timezone.utc)
    """
    m = NAME_RE.match(os.path.basename(path))
    if not m:
        return None
    return _dt.datetime.strptime(m["ts"], "%Y%m%dT%H%M%S%fZ").replace(tzinfo=_dt.timezone.utc)


def read_capture(directory: "str | os.PathLike[str]", partial: bool = True
                 ) -> List[Dict[str, Any]]:
    """Every complete record under ``directory`` (see :class:`CaptureFiles`)."""
    return list(CaptureFiles(directory, partial=partial))
