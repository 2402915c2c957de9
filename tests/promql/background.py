"""Slow command-line checks run in a background thread while other tests run.

``promtool test rules`` and ``vmalert-tool unittest`` spend minutes of CPU, the integration
tests minutes of waiting for scrapes and evaluations. tests/promql/conftest.py starts the jobs
of the collected rule-tool tests as soon as collection ends, one at a time, so their CPU time
overlaps that waiting; each test then only collects its job's result.

    jobs = BackgroundJobs()
    jobs.add("check", lambda run: run(["promtool", "check", "rules", "rules.yml"], cwd="."))
    jobs.start(["check"])
    proc = jobs.result("check")       # subprocess.CompletedProcess

A job is a function of ``run(cmd, cwd)``, which runs a command with a timeout through a
``Popen`` handle the jobs object keeps, so :meth:`BackgroundJobs.stop` (end of the session)
kills a command still running. A job that was never started runs when its result is asked
for.
"""

from __future__ import annotations

import subprocess
import threading
from typing import Callable, Dict, Iterable, List, Optional, Sequence

Run = Callable[[Sequence[str], str], subprocess.CompletedProcess]
Job = Callable[[Run], subprocess.CompletedProcess]


class BackgroundJobs:
    """Named jobs, run one at a time in a daemon thread, the heaviest first (``weight``: any
    number that grows with a job's run time), so the longest one is not left for the end."""

    def __init__(self, timeout: float = 900.0):
        self.timeout = timeout
        self._jobs: Dict[str, Job] = {}
        self._weights: Dict[str, float] = {}
        self._results: Dict[str, object] = {}
        self._claimed: set = set()
        self._done: Dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self._proc: Optional[subprocess.Popen] = None
        self._stopping = False
        self._thread: Optional[threading.Thread] = None

    def add(self, key: str, job: Job, weight: float = 0.0) -> None:
        self._jobs[key] = job
        self._weights[key] = weight
        self._done[key] = threading.Event()

    def run(self, cmd: Sequence[str], cwd: str) -> subprocess.CompletedProcess:
        """Run ``cmd`` in ``cwd``, killed after ``timeout`` seconds or by :meth:`stop`."""
        with self._lock:
            if self._stopping:
                raise RuntimeError(f"stopped before {cmd[0]} ran")
            proc = self._proc = subprocess.Popen(list(cmd), cwd=cwd, text=True,
                                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            out, err = proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            err += f"\nkilled after {self.timeout:.0f} s"
        finally:
            with self._lock:
                self._proc = None
        return subprocess.CompletedProcess(list(cmd), proc.returncode, out, err)

    def _claim(self, key: str) -> bool:
        with self._lock:
            if key in self._claimed:
                return False
            self._claimed.add(key)
            return True

    def _run_job(self, key: str) -> None:
        try:
            self._results[key] = self._jobs[key](self.run)
        except Exception as e:  # reported by result(), in the test that asks
            self._results[key] = e
        self._done[key].set()

    def start(self, keys: Iterable[str]) -> None:
        """Run the jobs ``keys`` (known ones, each once) in a background thread."""
        order: List[str] = sorted((k for k in dict.fromkeys(keys) if k in self._jobs),
                                  key=lambda k: -self._weights[k])

        def work() -> None:
            for key in order:
                if self._stopping:
                    return
                if self._claim(key):
                    self._run_job(key)
        self._thread = threading.Thread(target=work, name="background-jobs", daemon=True)
        self._thread.start()

    def result(self, key: str) -> subprocess.CompletedProcess:
        """The finished job's result: waits for it (bounded), or runs it now if nobody
        started it. Re-raises the job's exception."""
        if key not in self._jobs:
            raise KeyError(f"no background job {key!r}")
        if self._claim(key):
            self._run_job(key)
        if not self._done[key].wait(self.timeout + 60):
            raise TimeoutError(f"background job {key!r} did not finish")
        result = self._results[key]
        if isinstance(result, Exception):
            raise result
        return result  # type: ignore[return-value]

    def stop(self) -> None:
        """Kill a running command and let the thread end."""
        with self._lock:
            self._stopping = True
            if self._proc is not None and self._proc.poll() is None:
                self._proc.kill()
        if self._thread is not None:
            self._thread.join(timeout=30)
