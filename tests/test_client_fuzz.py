"""Client fuzz: 10,000 seeded request bodies (valid rows and batches, garbage JSON, bodies
that are not JSON or not sent as JSON, arrays, scalars, missing and misspelt keys, features
of every wrong shape, numbers sent as text, huge and odd numbers, unicode, nesting) through
a Flask app's ``track`` (Flask's test client), a FastAPI app's ``track`` (httpx's in-process
ASGI transport, which FastAPI's ``TestClient`` wraps, without the thread hop per request that
would make 10,000 bodies too slow for ``make test``) and the standalone exporter. For every
body:

- each tracked app answers exactly (status and body) what its copy without promdrift
  answers: promdrift never changes an answer, and never causes a 5xx;
- the exporter answers what its contract says (``test_exporter_fuzz._expected``), never 5xx;

and at the end every monitor has counted no instrumentation error, every request once
(refused ones by their reason) and exactly the counts of the well-formed rows, computed here
independently of promdrift: JSON as Python's ``json`` reads it, a string for a numeric
feature as pydantic reads a float, the row shapes and the category keys as docs/metrics.md
states them.

``PROMDRIFT_FUZZ_BODIES`` lowers the number of bodies for a quick local run. (No
``from __future__ import annotations`` here: FastAPI reads the request models of the app
built in a function from their annotations.)
"""

import asyncio
import bisect
import json
import math
import os
import random
import time
from collections import Counter
from typing import Any, Dict, List, Optional, Tuple

import pytest
from prometheus_client import CollectorRegistry

from promdrift.exporter.service.app import create_app
from promdrift.instrumentation import DriftMonitor
from promdrift.instrumentation.training.baseline import CategoricalColumn, NumericColumn

from test_exporter_fuzz import FUZZ_MAX_BODY, FUZZ_MAX_ROWS, _expected

fastapi = pytest.importorskip("fastapi")
flask = pytest.importorskip("flask")
httpx = pytest.importorskip("httpx")
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError, create_model  # noqa: E402

BODIES = int(os.environ.get("PROMDRIFT_FUZZ_BODIES", 10_000))
#: A bound on the loop, not a speed requirement: the counts are checked for what was sent.
DEADLINE_SECONDS = 300.0
JSON = "application/json"
REASONS = ("missing", "null", "nan", "inf", "wrong_type")
REQUEST_REASONS = ("not_json", "not_object", "no_features", "bad_shape")
MISSING = object()
_FLOAT = TypeAdapter(float)


# ------------------------------------------------------------------------------ bodies

NUMBER_TEXT = [" 27 ", "1e3", "-.5", "+5", "1_000", "2.5", "0", "nan", "NaN", "inf",
               "-Infinity", "1e400", "\u00a045\u3000", "00012", "5."]
OTHER_TEXT = ["", " ", "27 kg", "N/A", "1,5", "0x1F", "1__0", " 1_000", "\uff11\uff12",
              "\U0001F427", "é" * 20, "\u202e\u0000", "None", "null", "true", "Biscoe",
              "Dream", "male"]
CATEGORIES = ["Biscoe", "Dream", "Torgersen", "Atlantis", "male", "female", "", "MALE",
              "\U0001F427", "2", "2.0"]
ODD_NUMBERS = [0, -0.0, 5e-324, 1e308, -1e308, 2 ** 63, -(2 ** 70), 10 ** 400, math.nan,
               math.inf, -math.inf, True, False, 2, 1e16, 0.1]


class Bodies:
    """Seeded request bodies for the penguins model: ``next()`` gives ``(raw bytes, content
    type)``."""

    def __init__(self, baseline: Any, seed: int = 17):
        self.rng = random.Random(seed)
        self.columns = baseline.features
        self.names = baseline.feature_names

    def value(self, col: Any, depth: int = 0) -> Any:
        r = self.rng.random()
        if isinstance(col, NumericColumn):
            if r < 0.45:
                return self.rng.uniform(col.min - 0.1 * (col.max - col.min),
                                        col.max + 0.1 * (col.max - col.min))
            if r < 0.5:
                return self.rng.randint(int(col.min), int(col.max))
            if r < 0.6:
                return self.rng.choice([f"{self.rng.uniform(col.min, col.max):.3f}",
                                        f" {int(col.max)} "] + NUMBER_TEXT)
        elif r < 0.6:
            return self.rng.choice(CATEGORIES)
        if r < 0.7:
            return self.rng.choice(ODD_NUMBERS)
        if r < 0.8:
            return self.rng.choice(OTHER_TEXT)
        if r < 0.87:
            return None
        if depth < 3:
            if r < 0.93:
                return [self.value(col, depth + 1) for _ in range(self.rng.randint(0, 3))]
            return {self.rng.choice(["v", "x", "é"]): self.value(col, depth + 1)}
        return self.rng.random()

    def row(self) -> Dict[str, Any]:
        row = {c.name: self.value(c) for c in self.columns if self.rng.random() > 0.1}
        if self.rng.random() < 0.1:
            row[self.rng.choice(["unknown", "Island", "bill length", "\u00e9"])] = 1.0
        return row

    def document(self) -> Any:
        """A JSON document of one of the shapes clients send."""
        k = self.rng.random()
        if k < 0.45:
            return {"features": self.row()}
        if k < 0.5:
            return {"features": self.row(), "prediction": self.rng.choice(
                ["Adelie", "Gentoo", "Emperor", 2, 2.0, True, None, math.nan, [1], {"a": 1}])}
        if k < 0.53:
            return {"features": self.row(), "id": self.rng.choice(["r1", 7, -1.5, None]),
                    "truth": "Adelie"}
        if k < 0.58:
            return {"features": [self.row() for _ in range(self.rng.randint(0, 3))]}
        if k < 0.6:
            return {"features": [self.row(), self.rng.choice(["x", 3, None, [1.0]])]}
        if k < 0.64:
            n = self.rng.choice([len(self.names)] * 3 + [0, 1, 2, len(self.names) + 1])
            return {"features": [self.value(c) for c in (self.columns * 2)[:n]]}
        if k < 0.67:
            n = len(self.names)
            return {"features": [[self.value(c) for c in self.columns],
                                 [1.0] * self.rng.choice([n, n - 1])]}
        if k < 0.72:
            return {"features": self.rng.choice(["hello", "", 5, -2.5, True, None,
                                                 math.nan, {"": {}}])}
        if k < 0.76:
            return self.rng.choice([{}, {"feature": self.row()}, {"Features": self.row()},
                                    {"prediction": "Adelie"}])
        if k < 0.8:
            return self.rng.choice([[{"features": self.row()}],
                                    [{"features": self.row()}, {"features": self.row()}],
                                    [1, 2], [], [[1.0] * len(self.names)]])
        if k < 0.83:
            return self.rng.choice(["hello", 27, -0.5, True, None, "{\"features\": {}}"])
        return {"features": {self.rng.choice(self.names): self.value(self.columns[0], 2)
                             for _ in range(self.rng.randint(1, 4))}}

    def __next__(self) -> Tuple[bytes, str]:
        k = self.rng.random()
        if k < 0.06:  # not JSON at all
            raw = self.rng.choice([
                b"", b" ", b"{not json", b'{"features": {"island": "Dream"}', b"features=1",
                b"\xff\xfe\x00garbage", b"\x80\x81", b"NaN x", b"[1, 2,]", b"{'a': 1}",
                bytes(self.rng.randrange(256) for _ in range(self.rng.randint(1, 40)))])
            return raw, JSON
        if k < 0.075:  # JSON nested beyond what a parser takes
            depth = self.rng.choice([70, 3000])
            return ('{"features": {"bill_length_mm": ' + "[" * depth + "]" * depth
                    + "}}").encode(), JSON
        raw = json.dumps(self.document(), allow_nan=True).encode("utf-8")
        if k < 0.1:  # JSON, but not sent as JSON
            return raw, "text/plain"
        return raw, JSON


# ------------------------------------------------------------------------------ apps

def flask_app(monitor: Optional[DriftMonitor]) -> Any:
    """A Flask model server as one is written: its own 400 for what it cannot use."""
    from flask import Flask, request
    app = Flask("fuzz")

    def predict() -> Any:
        try:
            body = request.get_json(silent=True)
        except Exception:  # nested too deep for the parser
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("features"), dict):
            return {"error": 'expected {"features": {...}}'}, 400
        return {"species": "Gentoo" if body["features"].get("island") == "Biscoe"
                else "Adelie"}

    if monitor is not None:
        monitor.instrument(app)
        predict = monitor.track(features="features", prediction="species")(predict)
    app.add_url_rule("/predict", view_func=predict, methods=["POST"])
    return app


def fastapi_app(monitor: Optional[DriftMonitor], baseline: Any) -> Any:
    """A FastAPI model server with a typed request model (pydantic's lax mode), and a 422
    that names the fields without echoing their values (FastAPI's own echoes them, and
    cannot render a NaN a client sent)."""
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    fields = {c.name: (Optional[float] if isinstance(c, NumericColumn) else Optional[str],
                       None) for c in baseline.features}
    Features = create_model("Features", __config__=ConfigDict(extra="ignore"), **fields)

    class Body(BaseModel):
        features: Features  # type: ignore[valid-type]

    app = FastAPI()
    if monitor is not None:
        monitor.instrument(app)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": [{"loc": [str(x) for x in e["loc"]], "type": e["type"]}
                                        for e in exc.errors()]}, status_code=422)

    async def predict(body: Body) -> Dict[str, str]:
        return {"species": "Gentoo" if body.features.island == "Biscoe" else "Adelie"}

    if monitor is not None:
        predict = monitor.track(features="features", prediction="species")(predict)
    app.post("/predict")(predict)
    return app


# ------------------------------------------------------------------------------ expectations

class Expected:
    """The counts a monitor must show, computed here from the bodies."""

    def __init__(self, baseline: Any):
        self.baseline = baseline
        self.columns = {c.name: c for c in baseline.features}
        self.numbers: Dict[str, List[float]] = {n: [] for n, c in self.columns.items()
                                                if isinstance(c, NumericColumn)}
        self.invalid: Counter = Counter()  # (feature, reason)
        self.coerced: Counter = Counter()  # feature
        self.categories: Counter = Counter()  # (feature, category)
        self.classes: Counter = Counter()  # class of the prediction output
        self.class_invalid: Counter = Counter()  # reason
        self.rows = 0
        self.requests = 0
        self.refused: Counter = Counter()  # request reason

    def number(self, name: str, v: Any) -> None:
        if v is MISSING or v is None:
            self.invalid[name, "missing" if v is MISSING else "null"] += 1
            return
        if isinstance(v, str):
            try:
                x = _FLOAT.validate_python(v)  # what a FastAPI model serves
            except ValidationError:
                self.invalid[name, "wrong_type"] += 1
                return
            self.coerced[name] += 1
        elif isinstance(v, (bool, int, float)):
            try:
                x = float(v)
            except OverflowError:
                x = math.inf
        else:
            self.invalid[name, "wrong_type"] += 1
            return
        if math.isnan(x) or math.isinf(x):
            self.invalid[name, "nan" if math.isnan(x) else "inf"] += 1
        else:
            self.numbers[name].append(x)

    @staticmethod
    def key(v: Any) -> Tuple[Optional[str], Optional[str]]:
        """(category key, None) or (None, reason), as docs/metrics.md states the keys."""
        if v is MISSING:
            return None, "missing"
        if v is None:
            return None, "null"
        if isinstance(v, str):
            return v, None
        if isinstance(v, bool):
            return str(v), None
        if isinstance(v, int):
            return str(v), None
        if isinstance(v, float):
            if math.isnan(v) or math.isinf(v):
                return None, "nan" if math.isnan(v) else "inf"
            return (str(int(v)) if v.is_integer() and abs(v) < 1e16 else repr(v)), None
        return None, "wrong_type"

    def category(self, name: str, v: Any) -> None:
        key, reason = self.key(v)
        if reason is not None:
            self.invalid[name, reason] += 1
        else:
            known = self.columns[name].categories
            self.categories[name, key if key in known else "__other__"] += 1

    def row(self, row: Dict[str, Any], prediction: Any = None) -> None:
        self.rows += 1
        for name, col in self.columns.items():
            v = row.get(name, MISSING)
            if isinstance(col, NumericColumn):
                self.number(name, v)
            else:
                self.category(name, v)
        if prediction is not None:
            out = self.baseline.predictions[0].name
            if isinstance(prediction, dict):  # {output: value}
                prediction = prediction.get(out, MISSING)
            key, reason = self.key(prediction)
            if reason is not None:
                self.class_invalid[reason] += 1
            else:
                known = self.baseline.predictions[0].categories
                self.classes[key if key in known else "__other__"] += 1

    def tracked(self, raw: bytes, ctype: str, prediction: Any) -> None:
        """A request to a tracked view: ``prediction`` what its 200 answer held (or None)."""
        self.requests += 1
        if ctype != JSON:
            self.refused["not_json"] += 1
            return
        try:
            doc = json.loads(raw)
        except (ValueError, RecursionError):
            self.refused["not_json"] += 1
            return
        if not isinstance(doc, dict):
            self.refused["not_object"] += 1
            return
        features = doc.get("features")
        if features is None:
            self.refused["no_features"] += 1
            return
        rows = self.shape(features)
        if rows is None:
            self.refused["bad_shape"] += 1
            return
        for r in rows:
            self.row(r, prediction)

    def shape(self, features: Any) -> Optional[List[Dict[str, Any]]]:
        """The rows of ``features`` (a row dict, a sequence in baseline order, a batch of
        either), or None for a shape no row or batch has."""
        names = self.baseline.feature_names
        if isinstance(features, dict):
            return [features]
        if not isinstance(features, list):
            return None
        if features and isinstance(features[0], (dict, list)):  # a batch
            rows = []
            for r in features:
                if isinstance(r, dict):
                    rows.append(r)
                elif isinstance(r, list) and len(r) == len(names):
                    rows.append(dict(zip(names, r)))
                else:
                    return None
            return rows
        if not features:
            return []
        return [dict(zip(names, features))] if len(features) == len(names) else None

    def exported(self, raw: bytes, ctype: str, status: int) -> None:
        """An observations request to the exporter, answered ``status``."""
        want, rows, counted = _expected(raw, ctype, "penguins", 1)
        assert status == want, (raw[:200], status, want)
        if counted is not None:
            self.requests += 1
            if counted[1] is not None:
                self.refused[counted[1]] += 1
        for r in rows or ():
            self.row(r["features"], r.get("prediction"))

    def check(self, monitor: DriftMonitor, where: str) -> None:
        s = monitor.sample
        assert s("promdrift_instrumentation_errors_total") == 0, where
        assert s("promdrift_requests_total") == self.requests, where
        for reason in REQUEST_REASONS:
            assert s("promdrift_requests_invalid_total", reason=reason) == \
                self.refused[reason], (where, reason)
        assert s("promdrift_inferences_total") == self.rows, where
        for name, col in self.columns.items():
            for reason in REASONS:
                assert s("promdrift_feature_invalid_total", feature=name, reason=reason) == \
                    self.invalid[name, reason], (where, name, reason)
            if isinstance(col, NumericColumn):
                values = sorted(self.numbers[name])
                for edge, le in zip(list(col.edges) + [math.inf], col.labels):
                    assert s("promdrift_feature_value_bucket", feature=name, le=le) == \
                        bisect.bisect_right(values, edge), (where, name, le)
                assert s("promdrift_feature_coerced_total", feature=name) == \
                    self.coerced[name], (where, name)
            else:
                for cat in col.labels:
                    assert s("promdrift_feature_category_total", feature=name,
                             category=cat) == self.categories[name, cat], (where, name, cat)
        out = self.baseline.predictions[0]
        for cls in out.labels:
            assert s("promdrift_prediction_class_total", output=out.name, **{"class": cls}) \
                == self.classes[cls], (where, cls)
        for reason in REASONS:
            assert s("promdrift_prediction_invalid_total", output=out.name, reason=reason) \
                == self.class_invalid[reason], (where, reason)


# ------------------------------------------------------------------------------ the test

def _answer(resp: Any) -> Tuple[int, bytes]:
    """Status and body of a Flask test response or an httpx response."""
    body = resp.content if isinstance(resp, httpx.Response) else resp.get_data()
    return resp.status_code, body


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_client_errors_are_counted_as_the_clients_and_rows_exactly(penguins_species, capsys):
    b = penguins_species
    monitors = {k: DriftMonitor(b, registry=CollectorRegistry()) for k in
                ("flask", "fastapi", "exporter")}
    expected = {k: Expected(b) for k in monitors}
    flask_client = flask_app(monitors["flask"]).test_client()
    flask_plain = flask_app(None).test_client()
    exporter = create_app([monitors["exporter"]], max_body=FUZZ_MAX_BODY,
                          max_rows=FUZZ_MAX_ROWS).test_client()
    bodies = Bodies(b)
    sent, statuses = 0, Counter()

    def asgi(app: Any) -> Any:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://testserver")

    async def drive() -> int:
        sent = 0
        deadline = time.monotonic() + DEADLINE_SECONDS
        async with asgi(fastapi_app(monitors["fastapi"], b)) as fastapi_client, \
                asgi(fastapi_app(None, b)) as fastapi_plain:
            while sent < BODIES and time.monotonic() < deadline:
                raw, ctype = next(bodies)
                headers = {"Content-Type": ctype}
                sent += 1
                # Flask: the answer of the app without promdrift, and never a 5xx
                got = _answer(flask_client.post("/predict", data=raw, headers=headers))
                assert got == _answer(flask_plain.post("/predict", data=raw,
                                                       headers=headers)), raw[:200]
                assert got[0] < 500, raw[:200]
                statuses["flask", got[0]] += 1
                species = json.loads(got[1])["species"] if got[0] == 200 else None
                expected["flask"].tracked(raw, ctype, species)
                # FastAPI, likewise
                got = _answer(await fastapi_client.post("/predict", content=raw,
                                                        headers=headers))
                assert got == _answer(await fastapi_plain.post("/predict", content=raw,
                                                               headers=headers)), raw[:200]
                assert got[0] < 500, raw[:200]
                statuses["fastapi", got[0]] += 1
                species = json.loads(got[1])["species"] if got[0] == 200 else None
                expected["fastapi"].tracked(raw, ctype, species)
                # the exporter: its contract, never a 5xx
                resp = exporter.post("/v1/models/penguins/observations", data=raw,
                                     headers=headers)
                assert resp.status_code < 500, raw[:200]
                statuses["exporter", resp.status_code] += 1
                expected["exporter"].exported(raw, ctype, resp.status_code)
        return sent

    sent = asyncio.run(drive())
    for where, monitor in monitors.items():
        expected[where].check(monitor, where)
    for where in ("flask", "fastapi"):  # every kind of answer and of refusal was exercised
        assert {200, 400 if where == "flask" else 422} <= {s for w, s in statuses
                                                           if w == where}, statuses
    for where, e in expected.items():
        assert all(e.refused[r] > 0 for r in REQUEST_REASONS), (where, e.refused)
        assert e.rows > sent / 3 and sum(e.coerced.values()) > 0, where
    assert {200, 400, 415} <= {s for w, s in statuses if w == "exporter"}, statuses
    with capsys.disabled():
        print(f"\nclient fuzz: {sent} bodies through Flask, FastAPI and the exporter; "
              + "; ".join(f"{w}: {e.rows} rows counted, {e.requests} requests, refused "
                          f"{dict(sorted(e.refused.items()))}" for w, e in expected.items())
              + "; 0 instrumentation errors, 0 5xx")
