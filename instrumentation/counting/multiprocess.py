"""Exact counts across worker processes: one memory-mapped counts file per process.

A pre-forking server (gunicorn with several workers) runs one ``DriftMonitor`` per worker,
and each worker only sees its own requests. With ``PROMDRIFT_MULTIPROC_DIR`` set to a
writable directory, every ``DriftMonitor`` built without an explicit ``store`` uses a
:class:`MultiprocessCounterStore`: its flat counts array lives in a file of that directory
(one file per process and model), so observing a row costs what it costs in memory, and a
scrape of any worker sums the arrays of every file of the same model and baseline digest.

Counts are monotonic sums, so files of dead workers are kept (their counts stay in every
total); :func:`mark_process_dead` (the gunicorn ``child_exit`` hook of
``promdrift.instrumentation.gunicorn``) folds a dead worker's files into one archive file per
model so the number of files stays bounded under ``max_requests`` restarts; servers without
such a hook (``uvicorn --workers``) get the same from each new store, which folds the files
of its run's dead workers when it is created.

Every file belongs to a *run*: the server's master process (its PID and start time), which
is the parent of a worker (``uvicorn --workers`` spawns them with multiprocessing, gunicorn
forks them; the gunicorn hooks name the master in ``PROMDRIFT_RUN``), or the process itself
when it is no worker. A scrape sums the files of its own run only, and a new store removes
the files of runs whose master is gone, so a restarted server starts from zero even without
a hook that clears the directory::

    >>> import tempfile
    >>> from prometheus_client import CollectorRegistry
    >>> from promdrift.instrumentation import Baseline, DriftMonitor, Layout
    >>> directory = tempfile.mkdtemp()
    >>> baseline = Baseline.fit({"x": [1.0, 2.0, 3.0, 4.0]}, model="m", bins=2)
    >>> a = MultiprocessCounterStore(Layout(baseline), directory, ident="worker-a")
    >>> b = MultiprocessCounterStore(Layout(baseline), directory, ident="worker-b")
    >>> DriftMonitor(baseline, registry=None, store=a).observe({"x": 1.5})
    >>> DriftMonitor(baseline, registry=None, store=b).observe([{"x": 2.5}, {"x": 9.0}])
    >>> float(a.snapshot()[Layout.INFERENCES])  # what a scrape of either worker reports
    3.0

One directory serves one server instance (like prometheus_client's
``PROMETHEUS_MULTIPROC_DIR``); the gunicorn hooks also clear it in the master before any
worker starts.

A server that cannot count across its workers does not start: :func:`startup_error` is the
check (an unusable directory, or several workers without one), run before any worker exists
by the gunicorn configuration and by ``python -m promdrift.instrumentation.uvicorn``, and in
each worker otherwise. A worker that fails it while uvicorn or gunicorn loads the app logs
one line and exits with :data:`STARTUP_FAILURE`, which both servers answer by stopping
instead of starting the worker again. See docs/multiprocess.md.
"""

from __future__ import annotations

import errno
import fcntl
import glob
import hashlib
import logging
import mmap
import multiprocessing
import os
import re
import sys
import tempfile
import threading
import time
import weakref
from contextlib import contextmanager
from typing import Any, Iterator, List, NoReturn, Optional, Union

import numpy as np

from .store import CounterStore, Layout

__all__ = ["ENV", "RUN_ENV", "STARTUP_FAILURE", "MultiprocessCounterStore",
           "MultiprocessDirError", "check_directory", "multiprocess_directory",
           "startup_error", "refuse_start", "first_report", "mark_process_dead", "clear_directory",
           "current_run", "worker_count", "tidy", "default_store"]

#: The environment variable naming the directory of the counts files.
ENV = "PROMDRIFT_MULTIPROC_DIR"
#: The environment variable a server's master sets to name the run its workers belong to.
RUN_ENV = "PROMDRIFT_RUN"
#: The exit status of a server process that refuses to start: gunicorn's
#: ``WORKER_BOOT_ERROR`` and uvicorn's ``STARTUP_FAILURE``. Both servers stop when a worker
#: exits with it (uvicorn since 0.50), instead of starting the worker again.
STARTUP_FAILURE = 3
_SUFFIX = ".f64"
_LOCK_NAME = ".promdrift.lock"
_ARCHIVE = "archive"
#: ``<key>-<run>-<ident>.f64``; ``ident`` is ``<pid>_<n>``, a chosen name, or "archive".
_NAME = re.compile(r"^(?P<key>[0-9a-f]+)-(?P<run>r\d+_\d+)-(?P<ident>[A-Za-z0-9_-]+)\.f64$")


def _start_time(pid: int) -> Optional[int]:
    """The start time of process ``pid`` (clock ticks since boot), ``None`` if it is gone.
    Without ``/proc``, 0 for any process that exists."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        return int(stat[stat.rindex(b")") + 2:].split()[19])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except OSError:
            pass
        return 0


def _cmdline(pid: int) -> Optional[bytes]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return None


_SPAWNED = re.compile(rb"spawn_main\(.*?\)")


def _same_program(a: Optional[bytes], b: Optional[bytes]) -> bool:
    """Two command lines of workers of one master (multiprocessing's spawned children
    differ in their pipe number only)."""
    return a is not None and b is not None and _SPAWNED.sub(b"", a) == _SPAWNED.sub(b"", b)


def _is_worker() -> bool:
    """Whether this process is a worker of a server master: a multiprocessing child
    (``uvicorn --workers``) or a fork running its parent's command line (gunicorn)."""
    if multiprocessing.parent_process() is not None:
        return True
    return _same_program(_cmdline(os.getpid()), _cmdline(os.getppid()))


def _tag(pid: int) -> str:
    return f"r{pid}_{_start_time(pid) or 0}"


def current_run() -> str:
    """The run this process's counts files belong to (see the module's documentation)::

        >>> current_run().startswith("r")
        True
    """
    named = os.environ.get(RUN_ENV)
    if named:
        if not re.fullmatch(r"r\d+_\d+", named):
            raise MultiprocessDirError(f"{RUN_ENV}={named!r} is not a run name (r<pid>_<start>)")
        return named
    return _tag(os.getppid() if _is_worker() else os.getpid())


def _run_alive(run: str) -> bool:
    pid, start = (int(x) for x in run[1:].split("_"))
    now = _start_time(pid)
    return now is not None and (now == start or start == 0 or now == 0)


def worker_count() -> int:
    """How many workers of this process's master run this process's program, this one
    included (1 when this process is no worker). Linux only (``/proc``); 1 elsewhere.

        >>> worker_count() >= 1
        True
    """
    if not _is_worker():
        return 1
    me, parent = _cmdline(os.getpid()), os.getppid()
    count = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
            ppid = int(stat[stat.rindex(b")") + 2:].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == parent and _same_program(_cmdline(int(entry)), me):
            count += 1
    return max(count, 1)


class MultiprocessDirError(ValueError):
    """The multiprocess directory is missing, not a directory, or not writable (or holds a
    counts file that does not fit the baseline).

        >>> issubclass(MultiprocessDirError, ValueError)
        True
    """


def check_directory(directory: Union[str, "os.PathLike[str]"]) -> str:
    """Fail fast unless ``directory`` exists, is a directory, and files can be created in it;
    the error names the directory and the fix.

    Returns the absolute path::

        >>> import tempfile
        >>> check_directory(tempfile.mkdtemp()).startswith("/")
        True
        >>> check_directory("/nonexistent/promdrift")
        Traceback (most recent call last):
        ...
        promdrift.instrumentation.counting.multiprocess.MultiprocessDirError: PROMDRIFT_MULTIPROC_DIR='/nonexistent/promdrift' does not exist: create it (mkdir -p /nonexistent/promdrift), writable by the server's user, before starting the server
    """
    given = os.fspath(directory)
    path = os.path.abspath(given)
    name = f"{ENV}={given!r}"
    if not given:
        raise MultiprocessDirError(f"{ENV} is empty: set it to an empty, writable directory")
    if not os.path.exists(path):
        parent = os.path.dirname(path)
        while parent != os.path.dirname(parent) and not os.path.exists(parent):
            parent = os.path.dirname(parent)
        if not os.path.isdir(parent):
            raise MultiprocessDirError(
                f"{name} cannot be created: {parent} is a file, not a directory; set {ENV} "
                f"to an empty, writable directory")
        raise MultiprocessDirError(f"{name} does not exist: create it (mkdir -p {path}), "
                                   "writable by the server's user, before starting the server")
    if not os.path.isdir(path):
        raise MultiprocessDirError(f"{name} is not a directory: set {ENV} to an empty, "
                                   "writable directory")
    try:
        fd, probe = tempfile.mkstemp(prefix=".probe-", dir=path)
    except OSError as e:
        raise MultiprocessDirError(
            f"{name} is not writable by this process (uid {os.geteuid()}): {e.strerror}; "
            f"make it writable by the server's user, or set {ENV} to another "
            "directory") from None
    os.close(fd)
    os.unlink(probe)
    return path


def multiprocess_directory() -> Optional[str]:
    """The checked directory of ``PROMDRIFT_MULTIPROC_DIR``, or ``None`` when it is unset."""
    value = os.environ.get(ENV)
    if not value:
        return None
    return check_directory(value)


def startup_error(workers: int) -> Optional[str]:
    """Why a server of ``workers`` worker processes must not start, or ``None``: the
    directory of ``PROMDRIFT_MULTIPROC_DIR`` is unusable, or it is unset and several workers
    would each report only their own counts. What the gunicorn configuration and
    ``python -m promdrift.instrumentation.uvicorn`` check before any worker starts, and an
    instrumented ASGI app's lifespan in each worker::

        >>> startup_error(1) is None  # one worker, or a usable PROMDRIFT_MULTIPROC_DIR
        True

    The refusal of several workers without the directory reads ``PROMDRIFT_MULTIPROC_DIR is
    not set: with 4 workers each would report only its own counts. Set it to an empty,
    writable directory (docs/multiprocess.md).``
    """
    try:
        directory = multiprocess_directory()
    except MultiprocessDirError as e:
        return str(e)
    if workers > 1 and directory is None:
        return (f"{ENV} is not set: with {workers} workers each would report only its own "
                f"counts. Set it to an empty, writable directory (docs/multiprocess.md).")
    return None


def _loading_server() -> Optional[str]:
    """``"uvicorn"`` or ``"gunicorn"`` while that server loads the app in this thread
    (imports its module or calls its factory, in a worker or, with gunicorn's
    ``--preload``, in the master), else ``None``."""
    frame = sys._getframe(1)
    while frame is not None:
        module, function = frame.f_globals.get("__name__"), frame.f_code.co_name
        if module == "uvicorn.config" and function in ("load", "load_app"):
            return "uvicorn"
        if module == "gunicorn.app.base" and function == "wsgi":
            return "gunicorn"
        frame = frame.f_back
    return None


def first_report(what: str = "refused") -> bool:
    """Whether this process is the first of its run to report ``what``: the workers of one
    server all fail the same check at once, and one of them says why (a marker file of the
    run in the temporary directory; those of finished runs are removed). Always true in a
    process that is no worker::

        >>> first_report()
        True
    """
    if not _is_worker():
        return True
    directory = tempfile.gettempdir()
    run = current_run()
    for old in glob.glob(os.path.join(glob.escape(directory), f"promdrift-{what}-r*")):
        tag = old.rsplit("-", 1)[1]
        if re.fullmatch(r"r\d+_\d+", tag) and tag != run and not _run_alive(tag):
            try:
                os.unlink(old)
            except OSError:
                pass
    try:
        fd = os.open(os.path.join(directory, f"promdrift-{what}-{run}"),
                     os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    except OSError:
        return True
    os.close(fd)
    return True


def refuse_start(message: str, server: str) -> "NoReturn":
    """Stop a worker that ``server`` (``"uvicorn"`` or ``"gunicorn"``) is starting: log
    ``message`` on the server's error log (once per run) and exit with
    :data:`STARTUP_FAILURE`, so that the server stops rather than start the worker again."""
    if first_report():
        logging.getLogger(f"{server}.error").error(message)
    raise SystemExit(STARTUP_FAILURE)


def _model_key(layout: Any) -> str:
    """File-name-safe key of a layout or block's identity: model, baseline digest, block
    name, size (in case of a format change)."""
    return hashlib.sha256(layout.identity.encode("utf-8")).hexdigest()[:20]


@contextmanager
def _dir_lock(directory: str, exclusive: bool, timeout: Optional[float] = None
              ) -> Iterator[None]:
    """Readers (scrapes) share the directory lock; compaction of dead files takes it alone,
    so a scrape never sees a dead worker's counts twice or not at all. ``timeout`` bounds the
    wait for the exclusive lock (``TimeoutError``): scrapes do not queue behind a waiting
    writer, so a stream of overlapping scrapes could otherwise hold it off for long."""
    fd = os.open(os.path.join(directory, _LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if timeout is None:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        else:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
                                | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise TimeoutError(f"the lock of {directory} stayed busy for "
                                           f"{timeout} s") from None
                    time.sleep(0.002)
        yield
    finally:
        os.close(fd)  # releases the lock


def _map(path: str, size: int) -> "tuple[mmap.mmap, np.ndarray]":
    """Map ``path`` (created full of zeros if it does not exist) as ``size`` float64."""
    nbytes = size * 8
    if not os.path.exists(path):
        # Created under a temporary name and renamed, so readers never see a short file.
        fd, tmp = tempfile.mkstemp(prefix=".new-", dir=os.path.dirname(path))
        try:
            os.ftruncate(fd, nbytes)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    fd = os.open(path, os.O_RDWR)
    try:
        if os.fstat(fd).st_size != nbytes:
            raise MultiprocessDirError(f"{path} has {os.fstat(fd).st_size} bytes, expected "
                                       f"{nbytes}; clear {ENV} before starting the server")
        mm = mmap.mmap(fd, nbytes, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    finally:
        os.close(fd)
    return mm, np.frombuffer(mm, dtype=np.float64, count=size)


_stores: "weakref.WeakSet[MultiprocessCounterStore]" = weakref.WeakSet()
_sequence = 0
_sequence_lock = threading.Lock()


def _after_fork_in_child() -> None:
    """A forked process (gunicorn ``preload_app``) must not write into its parent's file:
    every store gets a fresh file of its own and starts from zero (the parent's counts stay
    in the parent's file, which is still summed)."""
    for store in list(_stores):
        try:
            store._reopen()
        except Exception:  # e.g. the directory is gone: never share the parent's memory
            store.counts = np.zeros(store.layout.size, dtype=np.float64)
            store._views()
            store._mm = None
            store._pid = os.getpid()
            _stores.discard(store)
            logging.getLogger("promdrift").exception(
                "promdrift: no counts file in %s for process %d; its counts stay in memory "
                "and are not merged", store.directory, os.getpid())


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class MultiprocessCounterStore(CounterStore):
    """A :class:`CounterStore` whose array is a memory-mapped file, summed with the files of
    the other processes of its run at scrape time.

        >>> import tempfile
        >>> from promdrift.instrumentation import Baseline, Layout
        >>> store = MultiprocessCounterStore(
        ...     Layout(Baseline.fit({"x": [1.0, 2.0, 3.0]}, bins=2)), tempfile.mkdtemp())
        >>> store.counts[Layout.INFERENCES] += 2
        >>> float(store.snapshot()[Layout.INFERENCES]), float(store.local_snapshot()[0])
        (2.0, 2.0)

    ``layout``: a ``Layout`` or a ``Block``. ``directory`` defaults to
    ``PROMDRIFT_MULTIPROC_DIR`` (checked: it must exist and be writable). ``ident`` names
    this store's file (default: the process id and a sequence number, so two monitors of one
    process never share a file). A file of the same run left by a dead process with the same
    name is reused and keeps counting on top of what it holds. Creating a store removes the
    files of earlier runs and folds those of its run's dead processes into the run's archive
    (unless scrapes keep the directory busy for a second: then they stay and still count).
    """

    def __init__(self, layout: Any, directory: Optional[Union[str, "os.PathLike[str]"]] = None,
                 ident: Optional[str] = None):
        if directory is None:
            directory = multiprocess_directory()
            if directory is None:
                raise MultiprocessDirError(f"{ENV} is not set; pass a directory")
        self.directory = check_directory(directory)
        self.key = _model_key(layout)
        self._ident = ident
        self.layout = layout
        self._mm: Optional[mmap.mmap] = None
        super().__init__(layout)
        _stores.add(self)
        try:
            tidy(self.directory, timeout=1.0, keep=self.path)
        except TimeoutError:
            pass

    def sibling(self, layout: Any) -> "MultiprocessCounterStore":
        """A store for another layout or block in the same directory."""
        return MultiprocessCounterStore(layout, self.directory)

    def _file_name(self) -> str:
        global _sequence
        ident = self._ident
        if ident is None:
            with _sequence_lock:
                _sequence += 1
                ident = f"{os.getpid()}_{_sequence}"
        if not ident.replace("_", "").replace("-", "").isalnum() or ident == _ARCHIVE:
            raise ValueError(f"ident must be letters, digits, '-' and '_': {ident!r}")
        self.run = current_run()
        return os.path.join(self.directory, f"{self.key}-{self.run}-{ident}{_SUFFIX}")

    def _allocate(self, size: int) -> np.ndarray:
        self.path = self._file_name()
        self._pid = os.getpid()
        self._mm, counts = _map(self.path, size)
        return counts

    def _reopen(self) -> None:
        if os.getpid() == self._pid:
            return
        self._ident = None  # the parent's name is the parent's
        self.lock = threading.Lock()
        self.counts = self._allocate(self.layout.size)
        self._views()

    def local_snapshot(self) -> np.ndarray:
        """This process's own counts (what :meth:`snapshot` is in a single process)."""
        return super().snapshot()

    def files(self) -> List[str]:
        """Every counts file of this layout in this run, this one included."""
        return sorted(glob.glob(os.path.join(glob.escape(self.directory),
                                             f"{self.key}-{self.run}-*{_SUFFIX}")))

    def snapshot(self) -> np.ndarray:
        """The sum of the counts of every process (live or dead) of this run."""
        size = self.layout.size
        with _dir_lock(self.directory, exclusive=False):
            total = self.local_snapshot()
            for path in self.files():
                if path == self.path:
                    continue
                other = _read(path, size)
                if other is not None:
                    total += other
        return total

    def close(self) -> None:
        """Unmap the file (it stays in the directory: its counts are part of the totals)."""
        _stores.discard(self)
        if self._mm is not None:
            with self.lock:
                self.counts = self.counts.copy()
                self._views()
                try:
                    self._mm.close()
                except BufferError:  # a view is still exported somewhere; the GC unmaps it
                    pass
                self._mm = None


def default_store(layout: Any) -> CounterStore:
    """In-memory counts, or a per-process counts file when ``PROMDRIFT_MULTIPROC_DIR`` is set
    (several worker processes then report exact totals). An unusable directory raises
    :class:`MultiprocessDirError`, except while uvicorn or gunicorn loads the app: then the
    process logs the error once and exits with :data:`STARTUP_FAILURE` (a raised exception
    is a crash, which uvicorn answers by starting the worker again, forever)."""
    if os.environ.get(ENV):
        try:
            return MultiprocessCounterStore(layout)
        except MultiprocessDirError as e:
            server = _loading_server()
            if server is None:
                raise
            refuse_start(str(e), server)
    return CounterStore(layout)


def _read(path: str, size: int) -> Optional[np.ndarray]:
    try:
        data = np.fromfile(path, dtype=np.float64)
    except FileNotFoundError:
        return None
    if data.size != size:
        raise MultiprocessDirError(f"{path} holds {data.size} counts, expected {size}; clear "
                                   f"{ENV} before starting the server")
    return data


def _fold(directory: str, path: str, match: "re.Match[str]") -> None:
    """Add the counts of ``path`` to its run's archive file and remove it (under the
    exclusive directory lock)."""
    archive = os.path.join(directory, f"{match['key']}-{match['run']}-{_ARCHIVE}{_SUFFIX}")
    dead = np.fromfile(path, dtype=np.float64)
    try:
        total = np.fromfile(archive, dtype=np.float64)
    except FileNotFoundError:
        total = np.zeros_like(dead)
    if total.size != dead.size:
        raise MultiprocessDirError(f"{archive} does not match {path}; clear {ENV} "
                                   "before starting the server")
    total += dead
    fd, tmp = tempfile.mkstemp(prefix=".archive-", dir=directory)
    with os.fdopen(fd, "wb") as f:
        total.tofile(f)
    os.replace(tmp, archive)
    os.unlink(path)


def _files(directory: str) -> Iterator["re.Match[str]"]:
    for name in sorted(os.listdir(directory)):
        m = _NAME.match(name)
        if m is not None:
            yield m


#: A run's shared label store (``quality.default_store_path``) and its SQLite companions.
_LABELS = re.compile(r"^labels-.+-(?P<run>r\d+_\d+)\.sqlite3(?:-wal|-shm)?$")


def _label_stores(directory: str) -> Iterator["re.Match[str]"]:
    for name in sorted(os.listdir(directory)):
        m = _LABELS.match(name)
        if m is not None:
            yield m


def _writer(match: "re.Match[str]") -> Optional[int]:
    head = match["ident"].split("_", 1)[0]
    return int(head) if head.isdigit() and "_" in match["ident"] else None


def mark_process_dead(pid: int, directory: Optional[str] = None, timeout: float = 10.0) -> int:
    """Fold the counts files of the dead process ``pid`` into one archive file per model.

    Totals do not change (the archive gains exactly what the removed files held), and scrapes
    never see the intermediate state (they share the directory lock this takes alone).
    Returns the number of files folded. Call it from the server's master process only, after
    the worker has exited (gunicorn's ``child_exit``). When scrapes keep the directory busy
    for ``timeout`` seconds, nothing is folded and ``TimeoutError`` is raised: the files stay
    and still count.
    """
    directory = directory or os.environ.get(ENV)
    if not directory:
        return 0
    directory = os.path.abspath(directory)
    folded = 0
    with _dir_lock(directory, exclusive=True, timeout=timeout):
        for m in _files(directory):
            if _writer(m) == int(pid):
                _fold(directory, os.path.join(directory, m.group(0)), m)
                folded += 1
    return folded


def tidy(directory: Optional[str] = None, timeout: float = 10.0,
         keep: Optional[str] = None) -> "tuple[int, int]":
    """Remove the counts files (and shared label stores) of earlier runs, whose master is
    gone, and fold those of this run's dead processes into its archive; returns
    ``(removed, folded)``. Every new
    :class:`MultiprocessCounterStore` does this, so servers without a master hook (``uvicorn
    --workers``) neither sum an earlier run's counts nor pile up files of restarted workers.
    ``TimeoutError`` when scrapes keep the directory busy for ``timeout`` seconds; ``keep``:
    a file left alone (the caller's own)."""
    directory = os.path.abspath(directory or os.environ.get(ENV) or "")
    run, me = current_run(), os.getpid()
    removed = folded = 0
    with _dir_lock(directory, exclusive=True, timeout=timeout):
        for m in _files(directory):
            path = os.path.join(directory, m.group(0))
            if path == keep:
                continue
            try:
                if m["run"] != run:
                    if not _run_alive(m["run"]):
                        os.unlink(path)
                        removed += 1
                    continue
                pid = _writer(m)
                if pid is not None and pid != me and _start_time(pid) is None:
                    _fold(directory, path, m)
                    folded += 1
            except FileNotFoundError:
                continue
        for m in _label_stores(directory):
            if m["run"] != run and not _run_alive(m["run"]):
                try:
                    os.unlink(os.path.join(directory, m.group(0)))
                    removed += 1
                except FileNotFoundError:
                    pass
    return removed, folded


def clear_directory(directory: Optional[str] = None) -> int:
    """Remove every promdrift counts file (and the label stores of runs,
    ``quality.default_store_path``) from ``directory`` (default: the environment's); returns
    how many. For the server's start, before any worker exists."""
    directory = check_directory(directory or os.environ.get(ENV) or "")
    removed = 0
    for path in glob.glob(os.path.join(directory, f"*{_SUFFIX}")) + [
            os.path.join(directory, m.group(0)) for m in _label_stores(directory)]:
        try:
            os.unlink(path)
            removed += 1
        except OSError as e:
            if e.errno != errno.ENOENT:
                raise
    return removed
