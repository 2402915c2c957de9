"""Shared fixtures: the test data sets, a fresh registry, fitted baselines."""

import csv
import os
import subprocess
import sys
import threading

import pytest
from prometheus_client import CollectorRegistry

from promdrift.instrumentation import Baseline

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
PENGUINS_CSV = os.path.join(DATA, "penguins.csv")
BREAST_CANCER_CSV = os.path.join(DATA, "breast_cancer.csv")
DIGITS_CSV = os.path.join(DATA, "digits.csv")
FIXED_CREATED = "2024-01-01T00:00:00Z"
#: The ``promdrift`` command of the environment the tests run in.
PROMDRIFT = os.path.join(os.path.dirname(sys.executable), "promdrift")


class Output:
    """The lines a child process prints (``stdout=PIPE``, text), collected by a thread, so
    that a test waits for a line with a bounded ``wait_until`` instead of a blocking read."""

    def __init__(self, proc: subprocess.Popen):
        self.lines = []
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def text(self) -> str:
        return "\n".join(self.lines)

    def join(self) -> None:
        self._thread.join(timeout=10)


def stop(proc: subprocess.Popen) -> None:
    """Terminate a child process by its handle (kill it if it does not exit)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def needs_stack(test):
    """Mark an integration test that runs a real Prometheus and Alertmanager (skipped,
    with the reason, when their binaries are missing)."""
    from promdrift.exporter.stack import ALERTMANAGER, PROMETHEUS
    return pytest.mark.integration(pytest.mark.skipif(
        PROMETHEUS is None or ALERTMANAGER is None,
        reason="prometheus / prometheus-alertmanager not installed")(test))


def read_rows(path):
    """Rows of a CSV as dicts, numbers parsed, "NA" / "" as None (independent of promdrift)."""
    out = []
    with open(path, newline="", encoding="utf-8") as f:
        for rec in csv.DictReader(f):
            row = {}
            for k, v in rec.items():
                if v in ("", "NA"):
                    row[k] = None
                else:
                    try:
                        row[k] = float(v)
                    except ValueError:
                        row[k] = v
            out.append(row)
    return out


@pytest.fixture
def penguins_path():
    return PENGUINS_CSV


@pytest.fixture
def breast_cancer_path():
    return BREAST_CANCER_CSV


@pytest.fixture(scope="session")
def penguins_rows():
    return read_rows(PENGUINS_CSV)


@pytest.fixture(scope="session")
def penguins_species(penguins_rows):
    """Baseline of model "penguins" fitted on every penguins row, ``species`` as its output."""
    data = {k: [r[k] for r in penguins_rows] for k in penguins_rows[0]}
    return Baseline.fit(data, model="penguins", predictions="species")


@pytest.fixture(scope="session")
def baseline_path(penguins_species, tmp_path_factory):
    """:func:`penguins_species` saved as a baseline JSON file (for servers started as
    processes)."""
    path = str(tmp_path_factory.mktemp("baseline") / "penguins.json")
    penguins_species.save(path)
    return path


@pytest.fixture(scope="session")
def penguins_multi(penguins_rows):
    """Baseline of model "multi": the penguins rows with two outputs, ``species`` (a class)
    and ``body_mass_g`` (a number)."""
    data = {k: [r[k] for r in penguins_rows] for k in penguins_rows[0]}
    return Baseline.fit(data, model="multi", predictions=["species", "body_mass_g"])


@pytest.fixture(scope="session")
def breast_cancer_rows():
    return read_rows(BREAST_CANCER_CSV)


@pytest.fixture
def registry():
    return CollectorRegistry()


@pytest.fixture(scope="session")
def penguins_baseline():
    return Baseline.fit_csv(PENGUINS_CSV, model="penguins", progress=False)


@pytest.fixture(scope="session")
def breast_cancer_baseline():
    return Baseline.fit_csv(BREAST_CANCER_CSV, model="breast_cancer", progress=False,
                            predictions="diagnosis")
