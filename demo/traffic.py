"""Replays penguin rows against the demo model server, normal or drifted.

    python demo/traffic.py --target http://127.0.0.1:8000 --phases normal,drift --seconds 60

Rows are drawn with replacement from the penguins data set (the model's training data), so
the ``normal`` phase has the baseline's distribution. The ``drift`` phase changes the world
the way production data goes wrong:

- shift: ``body_mass_g`` ×1.25 and ``bill_length_mm`` +6 mm (heavier, longer-billed birds:
  the predicted species mix moves too),
- invalid values: ``flipper_length_mm`` is missing, null or the string ``"n/a"`` in 15 % of rows,
- unseen categories: 25 % of rows come from the island ``"Atlantis"``, which the model and the
  baseline have never seen.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, Optional, Sequence

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import model as demo_model  # noqa: E402

PHASES = ("normal", "drift")


def drifted(row: Dict[str, Any], rng: np.random.Generator) -> Dict[str, Any]:
    """One row of the drift phase (a modified copy)."""
    row = dict(row)
    if row.get("body_mass_g") is not None:
        row["body_mass_g"] = round(row["body_mass_g"] * 1.25, 1)
    if row.get("bill_length_mm") is not None:
        row["bill_length_mm"] = round(row["bill_length_mm"] + 6.0, 1)
    u = rng.random()
    if u < 0.05:
        row.pop("flipper_length_mm", None)
    elif u < 0.10:
        row["flipper_length_mm"] = None
    elif u < 0.15:
        row["flipper_length_mm"] = "n/a"
    if rng.random() < 0.25:
        row["island"] = "Atlantis"
    return row


class Traffic:
    """Sends rows to ``target``/predict at ``rate`` requests per second from a small pool.

    ``phase`` may be switched while it runs; counts of sent, failed requests per phase are
    kept in ``sent`` and ``failed``.
    """

    def __init__(self, target: str, rate: float = 50.0, seed: int = 7, workers: int = 4):
        import requests

        self.url = target.rstrip("/") + "/predict"
        self.rate = rate
        self.phase = "normal"
        self.rows = [{k: v for k, v in r.items() if k != demo_model.LABEL}
                     for r in demo_model.load_rows()]
        self.sent: Dict[str, int] = {p: 0 for p in PHASES}
        self.failed: Dict[str, int] = {p: 0 for p in PHASES}
        self._rng = np.random.default_rng(seed)
        self._session = requests.Session()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="traffic")
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._lock = threading.Lock()
        self._inflight = 0
        self._max_inflight = 8 * workers  # a slow server gets fewer requests, not a backlog

    def next_row(self) -> Dict[str, Any]:
        row = self.rows[int(self._rng.integers(len(self.rows)))]
        return drifted(row, self._rng) if self.phase == "drift" else dict(row)

    def _send(self, row: Dict[str, Any], phase: str) -> None:
        ok = False
        try:
            ok = self._session.post(self.url, json={"features": row}, timeout=5).ok
        except Exception:
            ok = False
        with self._lock:
            self._inflight -= 1
            self.sent[phase] += 1
            if not ok:
                self.failed[phase] += 1

    def _run(self) -> None:
        tick = 0.1
        start = time.monotonic()
        issued = 0
        while not self._stop.is_set():
            due = int((time.monotonic() - start) * self.rate)
            for _ in range(min(due - issued, int(self.rate))):
                with self._lock:
                    if self._inflight >= self._max_inflight:
                        break
                    self._inflight += 1
                self._pool.submit(self._send, self.next_row(), self.phase)
            issued = max(issued, due)
            self._stop.wait(tick)

    def start(self) -> "Traffic":
        self._thread = threading.Thread(target=self._run, daemon=True, name="traffic")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._session.close()

    def __enter__(self) -> "Traffic":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description="replay penguin traffic against the demo server")
    p.add_argument("--target", default="http://127.0.0.1:8000")
    p.add_argument("--phases", default="normal,drift",
                   help="comma-separated phases to play in order (normal, drift)")
    p.add_argument("--seconds", type=float, default=120.0, help="per phase")
    p.add_argument("--rate", type=float, default=50.0, help="requests per second")
    p.add_argument("--loop", action="store_true", help="repeat the phases until interrupted")
    args = p.parse_args(argv)
    phases = [x.strip() for x in args.phases.split(",") if x.strip()]
    bad = [x for x in phases if x not in PHASES]
    if bad or not phases:
        p.error(f"unknown phase(s) {bad}; choose from {', '.join(PHASES)}")
    with Traffic(args.target, rate=args.rate) as traffic:
        try:
            while True:
                for phase in phases:
                    traffic.phase = phase
                    print(f"phase {phase}: {args.rate:g} requests/s for {args.seconds:g} s",
                          flush=True)
                    time.sleep(args.seconds)
                    print(f"  sent {traffic.sent[phase]}, failed {traffic.failed[phase]}",
                          flush=True)
                if not args.loop:
                    break
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
