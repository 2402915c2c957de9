"""Headless Chromium for tests and the README picture, and a drifted penguins app to show.

    with AppServer(penguins_app()) as server:
        result = chromium(f"http://{server.address}/", profile=tmp_dir,
                          screenshot="artifacts/landing.png", size=(1280, 2000), dom=True)
        result.dom, console_messages(result.stderr)

Chromium (the Debian package ``chromium``) runs with its own profile directory, bounded by a
timeout, in its own process group, which is killed through the handle of the process started
here when it runs out (and swept once it exits, for helpers left behind).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from dataclasses import dataclass
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

CHROMIUM = shutil.which("chromium")

#: Chromium's log line for a console message (``--enable-logging=stderr``): JavaScript
#: errors, ``console.*`` calls and renderer complaints such as invalid SVG attributes.
_CONSOLE = re.compile(r":CONSOLE(?:\(\d+\)|:\d+)\] \"(.*)\", source: (.*)$")


@dataclass
class Run:
    returncode: int
    dom: str
    stderr: str


def chromium(url: str, profile: str, screenshot: Optional[str] = None,
             size: Tuple[int, int] = (1280, 2000), dom: bool = False,
             timeout: float = 60.0, extra: Sequence[str] = ()) -> Run:
    """Load ``url`` in headless Chromium: a PNG screenshot of the window and/or the DOM."""
    if CHROMIUM is None:
        raise RuntimeError("chromium is not installed (Debian package chromium)")
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
           "--disable-background-networking", "--no-first-run", "--hide-scrollbars",
           f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
           f"--window-size={size[0]},{size[1]}", *extra]
    if screenshot:
        cmd.append(f"--screenshot={os.path.abspath(screenshot)}")
    if dom:
        cmd.append("--dump-dom")
    cmd.append(url)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        proc.communicate(timeout=10)
        raise TimeoutError(f"chromium did not finish {url} within {timeout:.0f} s") from None
    finally:
        _kill_group(proc)
    return Run(proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill what is left of the process group ``proc`` leads (it was started in its own
    session, so the group is exactly its own helpers)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)


def console_messages(stderr: str) -> List[str]:
    """The console messages Chromium logged, as ``message (source)``."""
    out = []
    for line in stderr.splitlines():
        m = _CONSOLE.search(line)
        if m:
            out.append(f"{m.group(1)} ({m.group(2)})")
    return out


def penguins_app(extra_models: bool = False) -> Any:
    """A Flask app monitoring the penguins model, after serving every penguin with drift:
    heavier birds (body mass x1.15), a quarter of them on an island unknown to the baseline,
    a few unusable values. ``extra_models`` adds the breast cancer model (30 features)."""
    from flask import Flask
    from prometheus_client import CollectorRegistry

    from promdrift.instrumentation import Baseline, DriftMonitor

    from conftest import BREAST_CANCER_CSV, PENGUINS_CSV, read_rows

    registry = CollectorRegistry()
    baseline = Baseline.fit_csv(PENGUINS_CSV, model="penguins", predictions="species",
                                progress=False)
    monitor = DriftMonitor(baseline, registry=registry, model_version="2024-06")
    rng = np.random.default_rng(7)
    for i, r in enumerate(read_rows(PENGUINS_CSV)):
        f = {k: v for k, v in r.items() if k != "species"}
        if f["body_mass_g"] is not None:
            f["body_mass_g"] *= 1.15
        if rng.random() < 0.25:
            f["island"] = "Atlantis"
        if i % 40 == 5:
            f["bill_length_mm"] = "n/a"
        if i % 90 == 7:
            f["flipper_length_mm"] = float("nan")
        monitor.observe(f, r["species"])
    app = monitor.instrument(Flask("penguins"))
    if extra_models:
        rows = read_rows(BREAST_CANCER_CSV)
        bc = DriftMonitor(Baseline.fit_csv(BREAST_CANCER_CSV, model="breast_cancer",
                                           predictions="diagnosis", progress=False),
                          registry=registry)
        for r in rows[::2]:
            bc.observe({k: v for k, v in r.items() if k != "diagnosis"}, r["diagnosis"])
    return app
