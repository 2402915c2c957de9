# The demo model server and traffic generator of docker-compose.yml (services `model` and
# `traffic`): promdrift installed from this checkout, plus demo/ and the datasets of tests/data.
# Also the image of deploy/exporter.yaml, which runs `promdrift exporter` in it: the
# `exporter` extra (Flask for the demo app and the exporter's, gunicorn, h11, bcrypt, PyYAML).
FROM python:3.11.9-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md LICENSE ./
COPY promdrift/ promdrift/
COPY instrumentation/ instrumentation/
COPY exporter/ exporter/
COPY promql/ promql/
COPY grafana/ grafana/
# The installed package is what runs: the sources go once installed (python run in /app would
# otherwise import the folder promdrift/ rather than the installed package).
RUN pip install .[exporter] && rm -rf promdrift instrumentation exporter promql grafana \
    && useradd --system --uid 10001 --home-dir /app promdrift

COPY tests/data/ tests/data/
COPY demo/ demo/
RUN chown -R promdrift /app
USER promdrift

EXPOSE 8000
CMD ["python", "demo/app.py", "--listen", "0.0.0.0:8000"]
