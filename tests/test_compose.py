"""Static checks of docker-compose.yml and what it mounts (no container engine runs here).

``docker-compose config`` (Debian's docker-compose, installed by ``make test``) validates the
file against the compose schema; the other tests check that every bind-mounted host path and
every file the images copy exists, that the Prometheus config of the stack is valid for
``promtool`` once its container paths are mapped back to the repository through the compose
mounts, and that the services point at each other consistently.
"""

import os
import re
import shutil
import subprocess

import pytest
import yaml

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
COMPOSE_FILE = os.path.join(ROOT, "docker-compose.yml")
DOCKER_COMPOSE = shutil.which("docker-compose")
PROMTOOL = shutil.which("promtool")
AMTOOL = shutil.which("amtool")
SERVICES = {"model", "traffic", "prometheus", "alertmanager", "grafana"}

with open(COMPOSE_FILE) as _f:
    COMPOSE = yaml.safe_load(_f)

needs_compose = pytest.mark.skipif(
    DOCKER_COMPOSE is None,
    reason="needs docker-compose (Debian package docker-compose; `make test` installs it)")


def _compose(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}
    return subprocess.run([DOCKER_COMPOSE, "--project-directory", ROOT, "-f", COMPOSE_FILE,
                           *args], capture_output=True, text=True, timeout=60, cwd=ROOT, env=env)


def bind_mounts(service: str):
    """``(host path relative to the repository, container path)`` of each bind mount."""
    out = []
    for v in COMPOSE["services"][service].get("volumes", []):
        host, container = v.split(":")[:2]
        if host.startswith((".", "/")):
            out.append((os.path.normpath(host), container))
    return out


def host_path(service: str, container_path: str) -> str:
    """The repository file a container path of ``service`` comes from (through its mounts)."""
    for host, container in sorted(bind_mounts(service), key=lambda m: -len(m[1])):
        if container_path == container:
            return os.path.join(ROOT, host)
        if container_path.startswith(container + "/"):
            return os.path.join(ROOT, host, os.path.relpath(container_path, container))
    raise AssertionError(f"{container_path} of {service} is not bind-mounted")


# ---------------------------------------------------------------------------- docker-compose
@needs_compose
def test_docker_compose_config_accepts_the_file():
    result = _compose("config", "-q")
    assert result.returncode == 0, result.stdout + result.stderr


@needs_compose
def test_docker_compose_config_rejects_a_broken_copy(tmp_path):
    """The check above can fail: an unknown service key is refused."""
    with open(COMPOSE_FILE) as f:
        text = f.read()
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(text.replace("    restart: unless-stopped\n", "    restartt: always\n", 1))
    result = subprocess.run([DOCKER_COMPOSE, "-f", str(broken), "config", "-q"],
                            capture_output=True, text=True, timeout=60, cwd=str(tmp_path))
    assert result.returncode != 0
    assert "restartt" in result.stderr


@needs_compose
def test_normalized_config_resolves_mounts_inside_the_repository():
    result = _compose("config")
    assert result.returncode == 0, result.stderr
    normalized = yaml.safe_load(result.stdout)
    assert set(normalized["services"]) == SERVICES
    for name, service in normalized["services"].items():
        for v in service.get("volumes", []):
            source = v["source"] if isinstance(v, dict) else v.split(":")[0]
            if source.startswith("/"):
                assert os.path.commonpath([source, ROOT]) == ROOT, (name, source)
                assert os.path.exists(source), (name, source)


# -------------------------------------------------------------------------- the compose file
def test_services():
    assert set(COMPOSE["services"]) == SERVICES


def test_external_images_are_pinned():
    for name in ("prometheus", "alertmanager", "grafana"):
        image = COMPOSE["services"][name]["image"]
        repo, _, tag = image.rpartition(":")
        assert repo and re.fullmatch(r"v?\d+\.\d+\.\d+", tag), (name, image)
    assert COMPOSE["services"]["prometheus"]["image"] == "prom/prometheus:v2.42.0"
    assert COMPOSE["services"]["alertmanager"]["image"] == "prom/alertmanager:v0.25.0"


def test_every_bind_mounted_path_exists():
    checked = 0
    for name in COMPOSE["services"]:
        for host, container in bind_mounts(name):
            assert not os.path.isabs(host), f"{name}: {host} must be relative to the repository"
            assert os.path.exists(os.path.join(ROOT, host)), f"{name} mounts missing {host}"
            checked += 1
    assert checked >= 6


def test_model_and_traffic_share_the_demo_image():
    model, traffic = COMPOSE["services"]["model"], COMPOSE["services"]["traffic"]
    assert model["build"] == traffic["build"] == "."
    assert model["image"] == traffic["image"]
    assert os.path.isfile(os.path.join(ROOT, "Dockerfile"))
    assert model["command"] == ["python", "demo/app.py", "--listen", "0.0.0.0:8000"]
    assert traffic["command"] == ["python", "demo/traffic.py", "--target", "http://model:8000",
                                  "--phases", "normal,drift"]
    assert traffic["depends_on"]["model"]["condition"] == "service_healthy"
    assert "8000:8000" in model["ports"]


@pytest.mark.parametrize("service", ["model", "traffic"])
def test_the_demo_scripts_exist(service):
    """The commands run files of the image's /app, which is a copy of the repository."""
    script = COMPOSE["services"][service]["command"][1]
    assert os.path.isfile(os.path.join(ROOT, script)), f"{script} is missing"


def _dockerfile():
    with open(os.path.join(ROOT, "Dockerfile")) as f:
        return [line.strip() for line in f if line.strip() and not line.startswith("#")]


def test_dockerfile_copies_existing_paths():
    copies = [line.split()[1:-1] for line in _dockerfile() if line.startswith("COPY ")]
    assert copies
    for sources in copies:
        for src in sources:
            assert os.path.exists(os.path.join(ROOT, src)), f"Dockerfile copies missing {src}"


def test_dockerfile_copies_every_package_before_installing():
    """``pip install .`` in the image builds the wheel from every package folder of
    pyproject.toml (promql/ and grafana/ included): each must be copied before it."""
    import tomllib
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        folders = set(tomllib.load(f)["tool"]["setuptools"]["package-dir"].values())
    lines = _dockerfile()
    install = next(i for i, line in enumerate(lines) if line.startswith("RUN pip install ."))
    copied = {src.rstrip("/") for line in lines[:install] if line.startswith("COPY ")
              for src in line.split()[1:-1]}
    assert folders and folders <= copied, f"not copied: {sorted(folders - copied)}"


def test_dockerfile_base_image_is_pinned_and_default_command_is_the_model():
    lines = _dockerfile()
    base = next(line for line in lines if line.startswith("FROM ")).split()[1]
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", base), base
    cmd = next(line for line in lines if line.startswith("CMD "))
    assert cmd == 'CMD ["python", "demo/app.py", "--listen", "0.0.0.0:8000"]'


def test_dockerignore_keeps_local_state_out_of_the_image():
    with open(os.path.join(ROOT, ".dockerignore")) as f:
        ignored = f.read().split()
    assert {".git", ".venv"} <= set(ignored)


# ------------------------------------------------------------------------------- Prometheus
def _prometheus_config():
    service = COMPOSE["services"]["prometheus"]
    flag = next(a for a in service["command"] if a.startswith("--config.file="))
    path = host_path("prometheus", flag.split("=", 1)[1])
    with open(path) as f:
        return path, yaml.safe_load(f)


def test_prometheus_loads_the_promql_rules_through_the_mount():
    _, config = _prometheus_config()
    files = [host_path("prometheus", p) for p in config["rule_files"]]
    assert [os.path.relpath(p, ROOT) for p in files] == ["promql/rules.yml", "promql/alerts.yml"]


@pytest.mark.skipif(PROMTOOL is None, reason="needs promtool (Debian package prometheus)")
def test_promtool_accepts_the_stack_prometheus_config(tmp_path):
    """promtool also checks the rule files, so the container paths are mapped to the
    repository's files first."""
    _, config = _prometheus_config()
    config["rule_files"] = [host_path("prometheus", p) for p in config["rule_files"]]
    copy = tmp_path / "prometheus.yml"
    copy.write_text(yaml.safe_dump(config))
    result = subprocess.run([PROMTOOL, "check", "config", str(copy)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 rule files found" in result.stdout + result.stderr


def _targets(config, job):
    scrape = next(s for s in config["scrape_configs"] if s["job_name"] == job)
    return [t for sc in scrape["static_configs"] for t in sc["targets"]]


def test_prometheus_scrapes_the_model_and_alerts_the_alertmanager():
    _, config = _prometheus_config()
    listen = COMPOSE["services"]["model"]["command"][-1]
    assert _targets(config, "model") == [f"model:{listen.rsplit(':', 1)[1]}"]
    am = [t for a in config["alerting"]["alertmanagers"] for sc in a["static_configs"]
          for t in sc["targets"]]
    assert am == ["alertmanager:9093"]
    assert "9093:9093" in COMPOSE["services"]["alertmanager"]["ports"]


# ----------------------------------------------------------------------------- Alertmanager
@pytest.mark.skipif(AMTOOL is None, reason="needs amtool (Debian package prometheus-alertmanager)")
def test_amtool_accepts_the_stack_alertmanager_config():
    service = COMPOSE["services"]["alertmanager"]
    flag = next(a for a in service["command"] if a.startswith("--config.file="))
    path = host_path("alertmanager", flag.split("=", 1)[1])
    result = subprocess.run([AMTOOL, "check-config", path], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr


# ---------------------------------------------------------------------------------- Grafana
def _grafana_yaml(*parts):
    with open(os.path.join(ROOT, "grafana", *parts)) as f:
        return yaml.safe_load(f)


def test_grafana_provisioning_and_dashboards_are_mounted():
    provider = _grafana_yaml("provisioning", "dashboards", "promdrift.yml")["providers"][0]
    dashboards = host_path("grafana", provider["options"]["path"])
    assert os.path.samefile(dashboards, os.path.join(ROOT, "grafana", "dashboards"))
    for kind in ("datasources", "dashboards"):
        assert os.path.samefile(host_path("grafana", f"/etc/grafana/provisioning/{kind}"),
                                os.path.join(ROOT, "grafana", "provisioning", kind))
    env = COMPOSE["services"]["grafana"]["environment"]
    assert os.path.isfile(host_path("grafana", env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]))


def test_grafana_allows_anonymous_viewers_only():
    env = COMPOSE["services"]["grafana"]["environment"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"


def test_grafana_datasource_reaches_the_stack_prometheus():
    (ds,) = _grafana_yaml("provisioning", "datasources", "prometheus.yml")["datasources"]
    assert ds["url"] == "http://prometheus:9090"
    assert "9090:9090" in COMPOSE["services"]["prometheus"]["ports"]
    _, config = _prometheus_config()
    assert ds["jsonData"]["timeInterval"] == config["global"]["scrape_interval"]
