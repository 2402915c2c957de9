"""The demo's model: penguin species from body measurements, a softmax regression in numpy.

The data is the Palmer penguins set shipped for the tests (``tests/data/penguins.csv``, CC0).
Training, prediction and the drift baseline live here so that the model server
(``demo/app.py``), the traffic generator (``demo/traffic.py``) and ``make demo``
(``demo/run.py``) agree on one definition::

    >>> rows = load_rows()
    >>> model = SpeciesModel.fit(rows)
    >>> model.predict({"bill_length_mm": 39.1, "bill_depth_mm": 18.7,
    ...                "flipper_length_mm": 181, "body_mass_g": 3750,
    ...                "island": "Torgersen", "sex": "male"})["species"]
    'Adelie'
"""

from __future__ import annotations

import csv
import json
import os
from typing import Any, Dict, List, Mapping, Sequence, Tuple

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "tests", "data", "penguins.csv")

MODEL_NAME = "penguins"
NUMERIC = ("bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g")
CATEGORICAL = ("island", "sex")
FEATURES = NUMERIC + CATEGORICAL
LABEL = "species"


def load_rows(path: str = DATA) -> List[Dict[str, Any]]:
    """The CSV's rows as dicts of the monitored features plus the label; ``NA`` is None."""
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        for rec in csv.DictReader(f):
            row: Dict[str, Any] = {}
            for name in FEATURES + (LABEL,):
                v = rec[name]
                if v in ("", "NA"):
                    row[name] = None
                elif name in NUMERIC:
                    row[name] = float(v)
                else:
                    row[name] = v
            rows.append(row)
    return rows


def _number(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return float("nan")
    return float(v)


class SpeciesModel:
    """Multinomial logistic regression on standardised measurements plus a one-hot island.

    Missing, invalid or non-finite measurements are imputed with the training mean, an
    unknown island with all-zero indicators: the model always answers, as a production model
    would, and the drift monitor is what notices the bad inputs.
    """

    def __init__(self, classes: Sequence[str], islands: Sequence[str], mean: Sequence[float],
                 std: Sequence[float], weights: Sequence[Sequence[float]]):
        self.classes = list(classes)
        self.islands = list(islands)
        self.mean = np.asarray(mean, dtype=float)
        self.std = np.asarray(std, dtype=float)
        self.weights = np.asarray(weights, dtype=float)

    def _design(self, rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
        x = np.array([[_number(r.get(n)) for n in NUMERIC] for r in rows], dtype=float)
        x = np.where(np.isfinite(x), x, self.mean)
        x = (x - self.mean) / self.std
        isl = np.array([[1.0 if r.get("island") == i else 0.0 for i in self.islands]
                        for r in rows])
        return np.hstack([np.ones((len(rows), 1)), x, isl.reshape(len(rows), -1)])

    def probabilities(self, rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
        z = self._design(rows) @ self.weights
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        return p / p.sum(axis=1, keepdims=True)

    def predict_many(self, rows: Sequence[Mapping[str, Any]]) -> List[Dict[str, Any]]:
        p = self.probabilities(rows)
        best = p.argmax(axis=1)
        return [{"species": self.classes[b], "confidence": round(float(p[i, b]), 6)}
                for i, b in enumerate(best)]

    def predict(self, row: Mapping[str, Any]) -> Dict[str, Any]:
        return self.predict_many([row])[0]

    @classmethod
    def fit(cls, rows: Sequence[Mapping[str, Any]], iterations: int = 2000,
            learning_rate: float = 0.5, l2: float = 1e-3) -> "SpeciesModel":
        """Full-batch gradient descent on the rows that have a label."""
        rows = [r for r in rows if r.get(LABEL) is not None]
        classes = sorted({r[LABEL] for r in rows})
        islands = sorted({r["island"] for r in rows if r.get("island") is not None})
        x = np.array([[_number(r.get(n)) for n in NUMERIC] for r in rows], dtype=float)
        mean = np.nanmean(x, axis=0)
        std = np.nanstd(x, axis=0)
        model = cls(classes, islands, mean, std, np.zeros((1 + len(NUMERIC) + len(islands),
                                                           len(classes))))
        design = model._design(rows)
        y = np.zeros((len(rows), len(classes)))
        y[np.arange(len(rows)), [classes.index(r[LABEL]) for r in rows]] = 1.0
        w = model.weights
        for _ in range(iterations):
            z = design @ w
            z -= z.max(axis=1, keepdims=True)
            p = np.exp(z)
            p /= p.sum(axis=1, keepdims=True)
            w -= learning_rate * (design.T @ (p - y) / len(rows) + l2 * w)
        return model

    def accuracy(self, rows: Sequence[Mapping[str, Any]]) -> float:
        rows = [r for r in rows if r.get(LABEL) is not None]
        preds = self.predict_many(rows)
        return float(np.mean([p["species"] == r[LABEL] for p, r in zip(preds, rows)]))

    def to_dict(self) -> Dict[str, Any]:
        return {"classes": self.classes, "islands": self.islands, "mean": self.mean.tolist(),
                "std": self.std.tolist(), "weights": self.weights.tolist()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SpeciesModel":
        return cls(d["classes"], d["islands"], d["mean"], d["std"], d["weights"])

    def save(self, path: str) -> None:
        from promdrift.instrumentation.files import atomic_write
        atomic_write(path, json.dumps(self.to_dict()), shared=True)

    @classmethod
    def load(cls, path: str) -> "SpeciesModel":
        with open(path) as f:
            return cls.from_dict(json.load(f))


def train(workdir: str) -> Tuple[str, str, float]:
    """Train the model and fit its drift baseline into ``workdir``.

    Returns ``(model_path, baseline_path, training_accuracy)``. The baseline covers the six
    input features and both outputs (``species`` as a class, ``confidence`` as a number), as
    the model predicted them on its training rows.
    """
    from promdrift.instrumentation import Baseline

    os.makedirs(workdir, exist_ok=True)
    rows = load_rows()
    model = SpeciesModel.fit(rows)
    preds = model.predict_many(rows)
    data = {name: [r[name] for r in rows] for name in FEATURES}
    baseline = Baseline.fit(
        data, model=MODEL_NAME, categorical=list(CATEGORICAL),
        predictions={"species": [p["species"] for p in preds],
                     "confidence": [p["confidence"] for p in preds]})
    model_path = os.path.join(workdir, "model.json")
    baseline_path = os.path.join(workdir, "baseline.json")
    model.save(model_path)
    baseline.save(baseline_path)
    return model_path, baseline_path, model.accuracy(rows)
