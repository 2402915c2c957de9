"""The demo model server: penguin species over HTTP, instrumented with promdrift.

    python demo/app.py --workdir .demo --listen 127.0.0.1:8000

``POST /predict`` takes ``{"features": {"bill_length_mm": 39.1, ..., "island": "Biscoe",
"sex": "male"}}`` and answers ``{"species": "Adelie", "confidence": 0.98}``; ``GET /metrics``
serves the drift metrics (docs/metrics.md). The model and its drift baseline are read from
``--workdir`` (``model.json``, ``baseline.json``) and trained there first if missing, so the
server also runs alone (as in docker-compose.yml).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from typing import Any, Optional, Sequence

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import model as demo_model  # noqa: E402


def _prediction(result: Any) -> Any:
    """The outputs from the view's response (None for an error response: a tuple)."""
    return None if isinstance(result, tuple) else result.get_json()


def create_app(model_path: str, baseline_path: str, registry: Any = None,
               capture_dir: Optional[str] = None, capture_rate: float = 1.0) -> Any:
    """The Flask app: ``/predict``, ``/metrics``, the landing page at ``/``. With
    ``capture_dir``, a ``capture_rate`` sample of the served rows is written there as JSON
    Lines for ``promdrift report``."""
    from flask import Flask, jsonify, request
    from prometheus_client import CollectorRegistry

    from promdrift.instrumentation import DriftMonitor

    species_model = demo_model.SpeciesModel.load(model_path)
    capture = None
    if capture_dir:
        from promdrift.instrumentation.capture import DataCapture
        capture = DataCapture(capture_dir, sample_rate=capture_rate)
    monitor = DriftMonitor(baseline_path, model_version="demo-1", capture=capture,
                           registry=registry if registry is not None else CollectorRegistry())
    app = Flask("promdrift-demo")
    monitor.instrument(app)

    @app.post("/predict")
    @monitor.track(features="features", prediction=_prediction)
    def predict() -> Any:
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not isinstance(body.get("features"), dict):
            return jsonify(error='expected a JSON object {"features": {...}}'), 400
        return jsonify(species_model.predict(body["features"]))

    @app.get("/healthz")
    def healthz() -> Any:
        return {"status": "ok"}

    app.config["PROMDRIFT_MONITOR"] = monitor
    return app


def ensure_trained(workdir: str) -> Sequence[str]:
    model_path = os.path.join(workdir, "model.json")
    baseline_path = os.path.join(workdir, "baseline.json")
    if not (os.path.exists(model_path) and os.path.exists(baseline_path)):
        model_path, baseline_path, _ = demo_model.train(workdir)
    return model_path, baseline_path


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description="promdrift demo model server")
    p.add_argument("--workdir", default=".demo", help="where model.json and baseline.json live")
    p.add_argument("--listen", default="127.0.0.1:8000", help="host:port (default %(default)s)")
    p.add_argument("--capture-dir", help="keep a sample of the served rows here (JSON Lines)")
    p.add_argument("--capture-rate", type=float, default=1.0,
                   help="share of the rows captured (default %(default)s)")
    args = p.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    model_path, baseline_path = ensure_trained(args.workdir)

    from werkzeug.serving import WSGIRequestHandler, make_server

    class QuietHandler(WSGIRequestHandler):
        def log_request(self, *a: Any, **k: Any) -> None:
            pass

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    app = create_app(model_path, baseline_path, capture_dir=args.capture_dir,
                     capture_rate=args.capture_rate)
    server = make_server(host or "127.0.0.1", int(port), app,
                         threaded=True, request_handler=QuietHandler)
    # SIGTERM (docker stop, the demo's shutdown) ends like Ctrl-C: captured rows are flushed.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    print(f"demo model server on http://{args.listen} (POST /predict, GET /metrics)",
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        monitor = app.config["PROMDRIFT_MONITOR"]
        if monitor.capture is not None:
            monitor.capture.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
