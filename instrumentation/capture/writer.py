"""Sampled data capture: observed rows written to rotating, size-bounded JSON Lines files.

    >>> import tempfile
    >>> from promdrift.instrumentation.capture import DataCapture, read_capture
    >>> directory = tempfile.mkdtemp()
    >>> capture = DataCapture(directory, sample_rate=1.0, registry=None)
    >>> capture.record({"age": 41, "plan": "a"}, 0.7, inference_id="req-1", model="churn")
    1
    >>> capture.close()
    >>> [(r["model"], r["inference_id"], r["features"], r["prediction"])
    ...  for r in read_capture(directory)]
    [('churn', 'req-1', {'age': 41, 'plan': 'a'}, 0.7)]

**File format.** One JSON object per line (UTF-8, ``\\n``-terminated)::

    {"time": "2026-11-22T01:50:05.123Z", "model": "churn", "model_version": "3",
     "inference_id": "req-1", "features": {"age": 41, "plan": "a"}, "prediction": 0.7}

``model_version`` and ``inference_id`` appear only when given. ``features`` is the row as a
``{name: value}`` object (rows given as sequences in baseline order are named by the monitor);
``prediction`` is ``{output: value}`` when the monitor knows its output names, else as given.
Non-finite floats, which JSON cannot hold, are written as the strings ``"NaN"``,
``"Infinity"`` and ``"-Infinity"`` (what Jackson and JavaScript produce); ``None`` is
``null``; a key absent from the row is absent from ``features``. numpy scalars and arrays are
written as numbers and lists; any other object as its ``repr`` string.

**Crash safety.** A writer appends to ``<name>.jsonl.part`` and, on rotation or close,
flushes, ``fsync``\\ s, and renames it to ``<name>.jsonl`` (atomic), then ``fsync``\\ s the
directory: a ``.jsonl`` file is always complete. Every write to a ``.part`` file holds only
whole lines, so a crash (SIGKILL, power loss) can at worst leave a truncated last line there;
:func:`read_capture` skips such a line and reads every complete one. A failed write
(disk full) is cut back to the last complete line. A new ``DataCapture`` on the same host
finalises the ``.part`` files of writer processes that no longer run (truncated to the last
complete line, then renamed).

**Request path.** :meth:`DataCapture.record` makes the sampling decision first, then copies
the row and appends it to a bounded in-memory queue; a background thread serialises and
writes. When the queue is full the row is dropped and counted, the request never waits on
disk. ``benchmarks/capture.py`` measures this against serialising and writing under a lock
in the request thread.
"""

from __future__ import annotations

import atexit
import collections
import datetime as _dt
import glob
import itertools
import json
import logging
import math
import os
import random
import re
import socket
import threading
import time
import weakref
from collections.abc import Mapping
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from ..counting.plugins import Plugin
from ..values import is_batch
from .reader import NAME_RE, PART, SUFFIX

__all__ = ["DataCapture", "CaptureTracker", "DROP_REASONS"]

log = logging.getLogger("promdrift")

#: Why a sampled row was not written (the ``reason`` label of
#: ``promdrift_capture_dropped_total``).
DROP_REASONS: Tuple[str, ...] = ("queue_full", "too_large", "write_error", "encode_error")

_FLUSH = "flush"
_sequence = itertools.count(1)
_ROTATE = "rotate"
_STOP = "stop"


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname() or "host")[:64] or "host"


def _clean(v: Any) -> Any:
    """``v`` with only JSON-representable values (the slow path, after a failed dump)."""
    if isinstance(v, float):
        if math.isfinite(v):
            return v
        return "NaN" if v != v else ("Infinity" if v > 0 else "-Infinity")
    if v is None or isinstance(v, (str, bool, int)):
        return v
    if isinstance(v, Mapping):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    return _clean(_default(v))


def _default(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (set, frozenset)):
        return sorted(v, key=repr)
    return repr(v)


def _dumps(record: Dict[str, Any]) -> bytes:
    try:
        text = json.dumps(record, allow_nan=False, default=_default, ensure_ascii=False,
                          separators=(",", ":"))
    except ValueError:  # a NaN or an infinity somewhere
        text = json.dumps(_clean(record), allow_nan=False, ensure_ascii=False,
                          separators=(",", ":"))
    return text.encode("utf-8") + b"\n"


def _iso(t: float) -> str:
    return (_dt.datetime.fromtimestamp(t, _dt.timezone.utc).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"))


def _snapshot(v: Any) -> Any:
    """A copy of a row the caller may mutate after the request (shallow for containers)."""
    if type(v) is dict:
        return v.copy()
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, Mapping):
        return dict(v)
    if isinstance(v, (list, tuple)):
        return list(v)
    return v


class _Counters:
    """The capture counters of one model: a block of counter slots and its store."""

    def __init__(self, model: str, store: Any = None, digest: str = "",
                 labels: Optional[Tuple[Tuple[str, str], ...]] = None):
        from ..counting.exposition import BlockPlan
        from ..counting.store import Block
        b = Block("capture", model, digest, labels or (("model", model),))
        self.rows = b.counter("promdrift_capture_rows")
        self.dropped = {r: b.counter("promdrift_capture_dropped", "_total", (("reason", r),))
                        for r in DROP_REASONS}
        if store is None:
            from ..counting.multiprocess import default_store
            store = default_store
        self.block, self.plan, self.store = b, BlockPlan(b), store(b)


def _fsync_dir(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, owned by someone else
        return True
    return True


def _complete_prefix(path: str) -> int:
    """Byte length of the complete lines at the start of ``path``."""
    with open(path, "rb") as f:
        data = f.read()
    return data.rfind(b"\n") + 1


class DataCapture:
    """Writes a random sample of observed rows to rotating JSON Lines files in ``directory``.

        >>> import tempfile
        >>> from promdrift.instrumentation import Baseline, DriftMonitor
        >>> from promdrift.instrumentation.capture import DataCapture, read_capture
        >>> directory = tempfile.mkdtemp()
        >>> monitor = DriftMonitor(Baseline.fit({"x": [1.0, 2.0, 3.0]}, model="m", bins=2),
        ...                        registry=None, capture=DataCapture(directory, registry=None))
        >>> monitor.observe([[1.5], [2.5]], inference_id=["a", "b"])
        >>> monitor.capture.flush()
        True
        >>> [(r["inference_id"], r["features"]) for r in read_capture(directory)]
        [('a', {'x': 1.5}), ('b', {'x': 2.5})]

    ``sample_rate``: the probability that a row is written (each row of a batch decides on
    its own; ``seed`` makes the choice reproducible). ``max_file_bytes``: a file is rotated
    before a line would take it past this size (a single longer line is dropped, reason
    ``too_large``). ``max_files``: how many files this capture keeps in ``directory``,
    counting the one being written; after each rotation the oldest complete files with this
    ``prefix`` are deleted (processes sharing a directory share the bound). So the disk used
    is at most ``max_files * max_file_bytes`` plus one open file per other writing process.
    ``queue_size``: rows waiting for the writer thread; beyond it rows are dropped
    (reason ``queue_full``). ``flush_interval``: the writer thread wakes this often (seconds)
    and writes everything queued in one system call, or earlier when a quarter of the queue
    is used; so a row reaches the kernel within about ``flush_interval``. ``registry``: where ``promdrift_capture_rows_total`` and
    ``promdrift_capture_dropped_total`` are registered (a ``DriftMonitor`` also registers
    them in its own registry; ``None``: not at all).

    :meth:`record` never raises. The directory is created and checked for writing at
    construction, so a bad path fails at start-up, not on the first request.
    """

    def __init__(self, directory: "str | os.PathLike[str]", sample_rate: float = 1.0,
                 max_file_bytes: int = 64 << 20, max_files: int = 20,
                 seed: Optional[int] = None, *, queue_size: int = 10_000,
                 prefix: str = "capture", flush_interval: float = 0.5,
                 registry: Any = None):
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, float)) \
                or not 0.0 <= float(sample_rate) <= 1.0:
            raise ValueError(f"sample_rate must be a number in [0, 1], got {sample_rate!r}")
        for name, value, low in (("max_file_bytes", max_file_bytes, 256),
                                 ("max_files", max_files, 1), ("queue_size", queue_size, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if not isinstance(prefix, str) or not re.fullmatch(r"[A-Za-z0-9_.]+", prefix):
            raise ValueError(f"prefix must be letters, digits, '_' or '.', got {prefix!r}")
        if not flush_interval > 0:
            raise ValueError(f"flush_interval must be positive, got {flush_interval!r}")
        self.directory = os.path.abspath(os.fspath(directory))
        try:
            os.makedirs(self.directory, exist_ok=True)
        except OSError as e:
            raise ValueError(f"cannot create capture directory {self.directory}: "
                             f"{e.strerror or e}") from None
        if not os.access(self.directory, os.W_OK | os.X_OK):
            raise ValueError(f"capture directory {self.directory} is not writable")
        self.sample_rate = float(sample_rate)
        self.max_file_bytes = max_file_bytes
        self.max_files = max_files
        self.queue_size = queue_size
        self.prefix = prefix
        self.flush_interval = float(flush_interval)
        self._wake_at = max(1, queue_size // 4)
        self._random = random.Random(seed).random
        self._host = _host()
        self._lock = threading.Lock()  # counters, thread start
        self._counters: Dict[str, _Counters] = {}
        self._attached: set = set()  # models whose monitor exposes their counters
        self._registries: "weakref.WeakSet[Any]" = weakref.WeakSet()
        self._logged: set = set()
        self._closed = False
        self._reset()
        self.recover()
        if registry is not None:
            self.register(registry)
        _live.add(self)

    def _reset(self) -> None:
        """Fresh per-process state (also after ``fork``: the writer thread does not survive)."""
        self._queue: "collections.deque[Any]" = collections.deque()
        self._wake = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._pid = os.getpid()
        self._fd: Optional[int] = None
        self._part: Optional[str] = None
        self._size = 0
        self._seq = 0

    # ------------------------------------------------------------------ request path
    def record(self, features: Any, prediction: Any = None, *, inference_id: Any = None,
               model: str = "", model_version: Optional[str] = None,
               feature_names: Optional[Sequence[str]] = None,
               output_names: Optional[Sequence[str]] = None) -> int:
        """Queue the sampled rows of one inference or a batch; returns how many were queued.

        ``features`` / ``prediction`` take the shapes ``DriftMonitor.observe`` takes. For a
        batch, ``inference_id`` is a sequence with one id per row (or one id for the whole
        batch, then every row also gets its ``"batch_index"``). ``feature_names`` /
        ``output_names`` name the values of rows and predictions given as sequences.
        Never raises.
        """
        try:
            if self._closed:
                return 0
            rate = self.sample_rate
            if not is_batch(features):
                if rate < 1.0 and self._random() >= rate:
                    return 0
                items = [(features, prediction, inference_id, None)]
            else:
                n = len(features)
                keep = range(n) if rate >= 1.0 else [i for i in range(n)
                                                      if self._random() < rate]
                if not keep:
                    return 0
                preds = prediction if prediction is not None and len(prediction) == n else None
                ids = inference_id if isinstance(inference_id, (list, tuple, np.ndarray)) \
                    and len(inference_id) == n else None
                items = [(features[i], preds[i] if preds is not None else None,
                          ids[i] if ids is not None else inference_id,
                          None if ids is not None or inference_id is None else i)
                         for i in keep]
            if self._pid != os.getpid():
                self._reset()
            now = time.time()
            queue = self._queue
            queued = 0
            for f, p, iid, index in items:
                if len(queue) >= self.queue_size:
                    self._drop(model, "queue_full")
                    continue
                queue.append((now, model, model_version, _snapshot(f), _snapshot(p), iid,
                              index, feature_names, output_names))
                queued += 1
            if self._thread is None:
                self._start()
            if len(queue) >= self._wake_at and not self._wake.is_set():
                self._wake.set()  # a burst: write now rather than at the next interval
            return queued
        except Exception:
            self._failed(model, "encode_error", "record")
            return 0

    def _counter(self, model: str) -> _Counters:
        c = self._counters.get(model)
        if c is None:
            with self._lock:
                c = self._counters.get(model)
                if c is None:
                    c = self._counters[model] = _Counters(model)
        return c

    def _drop(self, model: str, reason: str, n: int = 1) -> None:
        if n:
            c = self._counter(model)
            c.store.add((c.dropped[reason],), (float(n),))

    def _failed(self, model: str, reason: str, where: str, n: int = 1) -> None:
        try:
            self._drop(model, reason, n)
        finally:
            if where not in self._logged:
                self._logged.add(where)
                log.exception("promdrift: data capture to %s failed in %s (rows counted in "
                              "promdrift_capture_dropped_total{reason=%r}; logged once)",
                              self.directory, where, reason)

    def _start(self) -> None:
        with self._lock:
            if self._thread is None and not self._closed:
                t = threading.Thread(target=self._run, name="promdrift-capture", daemon=True)
                t.start()
                self._thread = t

    # ------------------------------------------------------------------ control
    def _control(self, what: str, timeout: Optional[float]) -> bool:
        if self._thread is None or self._pid != os.getpid():
            return True
        done = threading.Event()
        self._queue.append((what, done))
        self._wake.set()
        return done.wait(timeout)

    def flush(self, timeout: Optional[float] = 10.0) -> bool:
        """Wait until every row queued so far is written to the current file (not fsynced).
        Returns False on timeout."""
        return self._control(_FLUSH, timeout)

    def rotate(self, timeout: Optional[float] = 10.0) -> bool:
        """Write what is queued, then close the current file (fsync, rename to ``.jsonl``)."""
        return self._control(_ROTATE, timeout)

    def close(self, timeout: Optional[float] = 10.0) -> None:
        """Write what is queued, finalise the current file, stop the writer thread. Called at
        interpreter exit for every open capture; later :meth:`record` calls are ignored."""
        if self._closed:
            return
        self._closed = True
        if self._thread is not None and self._pid == os.getpid():
            self._control(_STOP, timeout)
            self._thread.join(timeout)
        _live.discard(self)

    def __enter__(self) -> "DataCapture":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ writer thread
    def _run(self) -> None:
        while True:
            try:
                if self._drain_once():
                    return
            except Exception:  # never let the writer die: later rows would only pile up
                self._failed("", "encode_error", "writer", 0)

    def _drain_once(self) -> bool:
        """Wait for rows, write them; True when told to stop."""
        queue, wake = self._queue, self._wake
        wake.wait(self.flush_interval)
        wake.clear()
        lines: List[Tuple[str, bytes]] = []
        while queue:
            item = queue.popleft()
            if len(item) == 2:  # a control message
                self._write(lines)
                lines = []
                what, done = item
                if what in (_ROTATE, _STOP):
                    self._finish()
                done.set()
                if what == _STOP:
                    return True
                continue
            try:
                lines.append((item[1], self._encode(item)))
            except Exception:
                self._failed(item[1], "encode_error", "encode")
            if len(lines) >= 1000:
                self._write(lines)
                lines = []
        self._write(lines)
        return False

    @staticmethod
    def _encode(item: Tuple[Any, ...]) -> bytes:
        t, model, version, features, prediction, iid, index, fnames, onames = item
        rec: Dict[str, Any] = {"time": _iso(t), "model": model}
        if version is not None:
            rec["model_version"] = str(version)
        if iid is not None:
            rec["inference_id"] = iid
        if index is not None:
            rec["batch_index"] = index
        if fnames is not None and isinstance(features, list) and len(features) == len(fnames):
            features = dict(zip(fnames, features))
        rec["features"] = features
        if prediction is not None:
            if onames and not isinstance(prediction, Mapping):
                if len(onames) == 1:
                    prediction = {onames[0]: prediction}
                elif isinstance(prediction, list) and len(prediction) == len(onames):
                    prediction = dict(zip(onames, prediction))
            rec["prediction"] = prediction
        return _dumps(rec)

    def _write(self, lines: List[Tuple[str, bytes]]) -> None:
        """Append whole lines, rotating before a line would pass ``max_file_bytes``."""
        chunk: List[bytes] = []
        models: List[str] = []
        size = 0
        for model, line in lines:
            if len(line) > self.max_file_bytes:
                self._drop(model, "too_large")
                continue
            if (self._fd is not None or chunk) and \
                    self._size + size + len(line) > self.max_file_bytes:
                self._append(chunk, models)
                chunk, models, size = [], [], 0
                self._finish()
            chunk.append(line)
            models.append(model)
            size += len(line)
        self._append(chunk, models)

    def _append(self, chunk: List[bytes], models: List[str]) -> None:
        if not chunk:
            return
        data = b"".join(chunk)
        try:
            if self._fd is None:
                self._open()
            view = memoryview(data)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            self._size += len(data)
        except OSError:
            for m in set(models):
                self._failed(m, "write_error", "write", models.count(m))
            self._abandon()
            return
        for m in set(models):
            c = self._counter(m)
            c.store.add((c.rows,), (float(models.count(m)),))

    def _open(self) -> None:
        self._seq = next(_sequence)  # process-wide: two captures never pick the same name
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        name = f"{self.prefix}-{stamp}-{self._host}-{self._pid}-{self._seq:06d}{PART}"
        path = os.path.join(self.directory, name)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_EXCL, 0o644)
        self._part = path
        self._size = 0

    def _abandon(self) -> None:
        """After a failed write: cut the file back to its complete lines and finalise it."""
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, self._size)
        except OSError:
            # Cannot cut it back: leave it as .part, readers skip a truncated last line.
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd, self._part = None, None
            return
        self._finish()

    def _finish(self) -> None:
        """fsync, close and rename the current ``.part`` file, then apply ``max_files``."""
        fd, part = self._fd, self._part
        if fd is None or part is None:
            return
        size, self._fd, self._part, self._size = self._size, None, None, 0
        try:
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            if size == 0:
                os.unlink(part)
            else:
                os.replace(part, part[:-len(".part")])
                _fsync_dir(self.directory)
            self._retain()
        except OSError:
            self._failed("", "write_error", "rotate", 0)

    def _complete_files(self) -> List[str]:
        return sorted(glob.glob(os.path.join(glob.escape(self.directory),
                                             f"{self.prefix}-*{SUFFIX}")),
                      key=os.path.basename)

    def _retain(self) -> None:
        files = self._complete_files()
        for old in files[:max(0, len(files) - (self.max_files - 1))]:
            try:
                os.unlink(old)
            except FileNotFoundError:
                pass

    def recover(self) -> List[str]:
        """Finalise ``.part`` files left by writer processes of this host that no longer run:
        cut to their complete lines and renamed to ``.jsonl``. Returns the new paths."""
        out = []
        for part in sorted(glob.glob(os.path.join(glob.escape(self.directory),
                                                  f"{self.prefix}-*{PART}"))):
            m = NAME_RE.match(os.path.basename(part))
            if not m or m["host"] != self._host or _pid_alive(int(m["pid"])):
                continue
            try:
                keep = _complete_prefix(part)
                if keep == 0:
                    os.unlink(part)
                    continue
                with open(part, "r+b") as f:
                    f.truncate(keep)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(part, part[:-len(".part")])
                out.append(part[:-len(".part")])
            except OSError:
                continue
        if out:
            _fsync_dir(self.directory)
            self._retain()
        return out

    # ------------------------------------------------------------------ metrics
    @property
    def rows_total(self) -> int:
        """Rows written so far (all models; with ``PROMDRIFT_MULTIPROC_DIR``, by every
        process of the server's run)."""
        return int(sum(c.store.snapshot()[c.rows] for c in list(self._counters.values())))

    def dropped_total(self, reason: Optional[str] = None) -> int:
        """Sampled rows not written, in total or for one reason of :data:`DROP_REASONS`."""
        total = 0.0
        for c in list(self._counters.values()):
            counts = c.store.snapshot()
            total += sum(counts[slot] for r, slot in c.dropped.items() if reason in (None, r))
        return int(total)

    def watch(self, model: str, store: Any = None, digest: str = "",
              labels: Optional[Tuple[Tuple[str, str], ...]] = None) -> Tuple[Any, Any]:
        """Expose this model's capture counters at 0 before its first row. ``store`` builds
        the counters' store (a monitor passes its own kind and its labels, ``model``,
        ``model_version``, ``baseline``, and then exposes them itself: this capture's
        collector leaves them out). Returns ``(plan, store)``."""
        with self._lock:
            c = self._counters.get(model)
            if c is None or (store is not None and model not in self._attached):
                old = c
                c = self._counters[model] = _Counters(model, store, digest, labels)
                if old is not None:  # counted before a monitor attached: keep those counts
                    before = old.store.snapshot()
                    c.store.add(range(len(before)), before.tolist())
            if store is not None:
                self._attached.add(model)
        return c.plan, c.store

    def register(self, registry: Any) -> "DataCapture":
        """Register the capture counters of the models no monitor exposes in a
        prometheus_client registry (once per registry)."""
        with self._lock:
            if registry in self._registries:
                return self
            self._registries.add(registry)
        registry.register(self)
        return self

    def describe(self) -> List[Any]:
        from prometheus_client.metrics_core import Metric

        from ..counting.exposition import FAMILIES
        return [Metric(f, FAMILIES[f][1], FAMILIES[f][0])
                for f in ("promdrift_capture_rows", "promdrift_capture_dropped")]

    def collect(self) -> Iterator[Any]:
        """prometheus_client collector protocol: the two capture counter families of the
        models no monitor exposes (rendered like every promdrift family)."""
        from prometheus_client.metrics_core import Metric

        from ..counting.exposition import FAMILIES
        merged: Dict[str, Any] = {}
        for model, c in sorted(self._counters.items()):
            if model in self._attached:
                continue
            for fam, samples in c.plan.metrics(c.store.snapshot()):
                metric = merged.setdefault(fam, Metric(fam, FAMILIES[fam][1],
                                                       FAMILIES[fam][0]))
                for name, labels, value in samples:
                    metric.add_sample(name, labels, value)
        yield from merged.values()


class CaptureTracker(Plugin):
    """The plugin a monitor uses for its data capture (``DriftMonitor.capture_to``): records
    every observe call of the monitor with its model's names, and exposes its model's
    capture counters with the monitor's other families."""

    name = "capture"

    def __init__(self, capture: DataCapture):
        self.capture = capture

    def bind(self, monitor: Any) -> None:
        super().bind(monitor)
        b = monitor.baseline
        self._exposed = [self.capture.watch(monitor.model, monitor.store.sibling, b.digest,
                                            monitor.plan_labels)]
        self._args = {"model": monitor.model, "model_version": monitor.model_version,
                      "feature_names": tuple(b.feature_names),
                      "output_names": tuple(b.prediction_names)}

    def observe(self, call: Any) -> None:
        self.capture.record(call.features, call.prediction, inference_id=call.inference_id,
                            **self._args)

    def exposed(self) -> List[Tuple[Any, Any]]:
        return self._exposed

    def flush(self) -> None:
        self.capture.flush()

    def startup(self) -> None:
        """Finalise the files writers of earlier processes left unfinished."""
        self.capture.recover()

    def shutdown(self) -> None:
        """Write what is queued and finalise the current file (the capture stays open for
        the other monitors sharing it, and for rows still coming)."""
        self.capture.rotate()

    def close(self) -> None:
        self.capture.rotate()


_live: "weakref.WeakSet[DataCapture]" = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    for capture in list(_live):
        try:
            capture.close(timeout=5.0)
        except Exception:
            pass


def _after_fork() -> None:
    for capture in list(_live):
        capture._lock = threading.Lock()  # another thread may have held it at fork time
        capture._reset()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
