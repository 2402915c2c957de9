"""The Kubernetes manifests of deploy/ and the generated promql/prometheusrule.yaml.

- Kubernetes' own kinds (Deployment, Service) are validated with kubernetes-validate, which
  ships the Kubernetes API's JSON schemas (no network), in strict mode (unknown fields are
  errors), against the oldest and the newest Kubernetes version it knows.
- kubernetes-validate has no schemas for custom resources: ServiceMonitor, PodMonitor and
  PrometheusRule are validated against the prometheus-operator CRDs' own schemas
  (tests/data/crds/, from prometheus-operator v0.93.0) with jsonschema, plus the API
  server's pruning rule (a field the schema does not name is an error here).
- The rule groups inside the PrometheusRule go through ``promtool check rules``.
- The pieces fit: selectors match labels, ports are named alike, every mounted file is the
  one the exporter's arguments read, and those arguments start a real exporter that answers
  the probes and counts a row.
- The exporter comes in two variants, plain HTTP (exporter.yaml, servicemonitor.yaml) and
  HTTPS served by the exporter itself (exporter-tls.yaml, servicemonitor-tls.yaml). Both get
  every check above, the HTTPS one with a certificate made by openssl here; and the HTTPS
  one with its TLS parts taken out must equal the plain one, so the two cannot drift apart.
"""

from __future__ import annotations

import copy
import glob
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
from http.client import HTTPConnection, HTTPSConnection

import jsonschema
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import all_versions

from promdrift.exporter.cli import build_parser
from promdrift.exporter.service.webconfig import WebConfig

from exporter_helpers import GunicornProcess, free_port, http, make_certs, samples
from promql import PROMTOOLS

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
DEPLOY = os.path.join(ROOT, "deploy")
CRDS = os.path.join(ROOT, "tests", "data", "crds")
PROMETHEUS_RULE = os.path.join(ROOT, "promql", "prometheusrule.yaml")
MANIFESTS = sorted(glob.glob(os.path.join(DEPLOY, "*.yaml")))
#: the Kubernetes versions kubernetes-validate ships schemas for: oldest and newest
VERSIONS = sorted({all_versions()[0], all_versions()[-1]})
#: The exporter's variants: the files of its Deployment and Service (and, for HTTPS, its web
#: config Secret), and of the ServiceMonitor scraping them.
VARIANTS = {"http": ("exporter.yaml", "servicemonitor.yaml"),
            "https": ("exporter-tls.yaml", "servicemonitor-tls.yaml")}


def documents(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d]


def resources():
    """(file name, resource) of every manifest of deploy/ and the PrometheusRule."""
    return [(os.path.relpath(p, ROOT), d) for p in MANIFESTS + [PROMETHEUS_RULE]
            for d in documents(p)]


def by_kind(kind):
    found = [d for _, d in resources() if d["kind"] == kind]
    assert found, f"no {kind} in deploy/"
    return found


def variant(name):
    """``kind -> resource`` of one exporter variant's files (one resource of each kind)."""
    found = {}
    for file in VARIANTS[name]:
        for doc in documents(os.path.join(DEPLOY, file)):
            assert doc["kind"] not in found, f"two {doc['kind']} in {VARIANTS[name]}"
            found[doc["kind"]] = doc
    return found


def crd_schema(kind):
    path = os.path.join(CRDS, f"{kind.lower()}-monitoring-v1.json")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def unknown_fields(value, schema, path="$"):
    """Fields of ``value`` that ``schema`` does not name, where it names its fields: what the
    API server prunes from a custom resource (silently, so a misspelt field does nothing)."""
    found = []
    if isinstance(value, dict) and schema.get("type") == "object":
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        if props is not None and not schema.get("x-kubernetes-preserve-unknown-fields"):
            found += [f"{path}.{k}" for k in value if k not in props]
        for k, v in value.items():
            sub = (props or {}).get(k) or (extra if isinstance(extra, dict) else None)
            if sub is not None:
                found += unknown_fields(v, sub, f"{path}.{k}")
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, v in enumerate(value):
            found += unknown_fields(v, schema["items"], f"{path}[{i}]")
    return found


def test_every_manifest_is_checked():
    kinds = sorted(d["kind"] for _, d in resources())
    assert kinds == ["Deployment", "Deployment", "PodMonitor", "PrometheusRule", "Secret",
                     "Service", "Service", "ServiceMonitor", "ServiceMonitor"]
    exporter_files = {n for n, d in resources() if d["kind"] in ("Deployment", "ServiceMonitor")}
    assert exporter_files == {os.path.join("deploy", f) for v in VARIANTS.values() for f in v}


@pytest.mark.parametrize("version", VERSIONS)
def test_kubernetes_kinds_validate_strictly(version):
    checked = 0
    for name, doc in resources():
        if doc["apiVersion"].startswith("monitoring.coreos.com/"):
            with pytest.raises(kubernetes_validate.SchemaNotFoundError):
                kubernetes_validate.validate(doc, version, strict=True)  # custom: see below
            continue
        kubernetes_validate.validate(doc, version, strict=True)
        checked += 1
    assert checked == 5


def test_strict_validation_catches_a_misspelt_field():
    """The check above can fail: a field Kubernetes does not know is an error."""
    bad = copy.deepcopy(variant("https")["Deployment"])
    bad["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError, match="readinesProbe"):
        kubernetes_validate.validate(bad, VERSIONS[-1], strict=True)


@pytest.mark.parametrize("kind", ["ServiceMonitor", "PodMonitor", "PrometheusRule"])
def test_custom_resources_validate_against_the_operator_crds(kind):
    schema = crd_schema(kind)
    for doc in by_kind(kind):
        jsonschema.Draft202012Validator(schema).validate(doc)
        assert unknown_fields(doc, schema) == []
    bad = json.loads(json.dumps(by_kind(kind)[0]))
    key = {"ServiceMonitor": "endpoints", "PodMonitor": "podMetricsEndpoints",
           "PrometheusRule": "groups"}[kind]
    bad["spec"][key][0]["intervall"] = "30s"
    assert unknown_fields(bad, schema) == [f"$.spec.{key}[0].intervall"]
    bad["spec"][key] = "not a list"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema).validate(bad)


@pytest.mark.skipif(not PROMTOOLS, reason="needs promtool")
@pytest.mark.parametrize("promtool", PROMTOOLS)
def test_promtool_checks_the_rule_groups_of_the_prometheusrule(promtool, tmp_path):
    (rule,) = by_kind("PrometheusRule")
    groups = rule["spec"]["groups"]
    with open(os.path.join(ROOT, "promql", "rules.yml"), encoding="utf-8") as f:
        records = len([r for g in yaml.safe_load(f)["groups"] for r in g["rules"]])
    with open(os.path.join(ROOT, "promql", "alerts.yml"), encoding="utf-8") as f:
        alerts = len([r for g in yaml.safe_load(f)["groups"] for r in g["rules"]])
    path = tmp_path / "groups.yml"
    path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    out = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {records + alerts} rules found" in out.stdout + out.stderr


# ------------------------------------------------------------------ the pieces fit
def matches(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


@pytest.mark.parametrize("name", VARIANTS)
def test_selectors_and_ports_fit(name):
    found = variant(name)
    deployment, service, monitor = (found[k] for k in ("Deployment", "Service", "ServiceMonitor"))
    pod = deployment["spec"]["template"]
    assert matches(deployment["spec"]["selector"]["matchLabels"], pod["metadata"]["labels"])
    assert matches(service["spec"]["selector"], pod["metadata"]["labels"])
    assert matches(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    (container,) = pod["spec"]["containers"]
    ((port, number),) = ((p["name"], p["containerPort"]) for p in container["ports"])
    assert port == name  # the protocol in the port's name, as service meshes read it
    assert [p["targetPort"] for p in service["spec"]["ports"]] == [port]
    assert {e["port"] for e in monitor["spec"]["endpoints"]} <= \
        {p["name"] for p in service["spec"]["ports"]}
    assert all(e.get("scheme", "http") == name for e in monitor["spec"]["endpoints"])
    listen = next(a for a in container["args"] if a.startswith("--listen="))
    assert listen == f"--listen=0.0.0.0:{number}"
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["port"] == port
        assert container[probe]["httpGet"].get("scheme", "HTTP") == name.upper()


def test_podmonitor_fits_its_example():
    (podmonitor,) = by_kind("PodMonitor")
    selector = podmonitor["spec"]["selector"]["matchLabels"]
    with open(os.path.join(DEPLOY, "podmonitor.yaml"), encoding="utf-8") as f:
        example = yaml.safe_load("\n".join(
            line[3:] for line in f.read().splitlines() if line.startswith("#  ")))
    assert matches(selector, example["template"]["metadata"]["labels"])
    assert {e["port"] for e in podmonitor["spec"]["podMetricsEndpoints"]} == \
        {p["name"] for p in example["template"]["spec"]["containers"][0]["ports"]}


def container_files(deployment):
    """The Deployment's one container and its ``mount path -> volume``."""
    spec = deployment["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}
    return container, mounts


def readme():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        return f.read()


def web_config_text(found, args):
    """The web config file ``--web-config`` names: the key of the variant's Secret."""
    secret = found["Secret"]
    return secret["stringData"][os.path.basename(args.web_config)]


@pytest.mark.parametrize("name", VARIANTS)
def test_the_exporter_arguments_are_its_own_and_read_mounted_files(name):
    """Every argument is one `promdrift exporter` takes (parsed by its own parser), and
    every file or directory it names is mounted: the baseline from the ConfigMap, the token
    from the Secret (the names the README's kubectl commands create), the counts directory
    writable; with --web-config, the web config from its Secret and the certificate files it
    names from the TLS Secret the ServiceMonitor takes the CA from. The pod's grace period
    outlasts --graceful-timeout."""
    found = variant(name)
    deployment, monitor = found["Deployment"], found["ServiceMonitor"]
    container, mounts = container_files(deployment)
    args = build_parser().parse_args(container["command"][1:] + container["args"])
    assert args.command == "exporter" and container["command"][0] == "promdrift"
    (baseline,) = args.baseline
    assert mounts[os.path.dirname(baseline)]["configMap"]["name"] == "promdrift-baselines"
    assert mounts[os.path.dirname(args.token_file)]["secret"]["secretName"] == "promdrift-token"
    assert "emptyDir" in mounts[args.multiproc_dir]
    assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > \
        args.graceful_timeout
    text = readme()
    assert (f"kubectl create configmap promdrift-baselines --from-file="
            f"{os.path.basename(baseline)}") in text
    assert (f"kubectl create secret generic promdrift-token --from-file="
            f"{os.path.basename(args.token_file)}=") in text
    (endpoint,) = monitor["spec"]["endpoints"]
    if args.protect_metrics:  # the scrape sends the token
        assert endpoint["authorization"]["credentials"] == \
            {"name": "promdrift-token", "key": os.path.basename(args.token_file)}
    if name == "http":
        assert args.web_config is None and "Secret" not in found
        return
    web_mount = mounts[os.path.dirname(args.web_config)]
    assert web_mount["secret"]["secretName"] == found["Secret"]["metadata"]["name"]
    tls = yaml.safe_load(web_config_text(found, args))["tls_server_config"]
    (tls_dir,) = {os.path.dirname(tls[k]) for k in ("cert_file", "key_file")}
    tls_secret = mounts[tls_dir]["secret"]["secretName"]
    ca = endpoint["tlsConfig"]["ca"]["secret"]
    assert ca["name"] == tls_secret
    # the TLS Secret's keys, as the README's kubectl command (and cert-manager) writes them
    command = (f"kubectl create secret generic {tls_secret} --type=kubernetes.io/tls "
               f"--from-file=tls.crt=./tls.crt --from-file=tls.key=./tls.key "
               f"--from-file={ca['key']}=./{ca['key']}")
    assert command in " ".join(text.replace("\\\n", " ").split())
    assert [os.path.basename(tls[k]) for k in ("cert_file", "key_file")] == \
        ["tls.crt", "tls.key"]


def without_tls(found):
    """The https variant's resources with their TLS parts taken out: the web config Secret,
    --web-config and --protect-metrics, the volumes of the web config and TLS Secrets, the
    probes' HTTPS scheme, the port's name https, the ServiceMonitor's scheme, tlsConfig and
    authorization. What is left is what the http variant must be."""
    found = copy.deepcopy(found)
    web_secret = found.pop("Secret")["metadata"]["name"]
    (endpoint,) = found["ServiceMonitor"]["spec"]["endpoints"]
    tls_secret = endpoint["tlsConfig"]["ca"]["secret"]["name"]
    for key in ("scheme", "tlsConfig", "authorization"):
        del endpoint[key]
    endpoint["port"] = "http"
    spec = found["Deployment"]["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    container["args"] = [a for a in container["args"]
                         if not a.startswith("--web-config=") and a != "--protect-metrics"]
    gone = {v["name"] for v in spec["volumes"]
            if v.get("secret", {}).get("secretName") in (web_secret, tls_secret)}
    assert len(gone) == 2
    spec["volumes"] = [v for v in spec["volumes"] if v["name"] not in gone]
    container["volumeMounts"] = [m for m in container["volumeMounts"] if m["name"] not in gone]
    for port in container["ports"]:
        port["name"] = "http"
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"].pop("scheme") == "HTTPS"
        container[probe]["httpGet"]["port"] = "http"
    for port in found["Service"]["spec"]["ports"]:
        port["name"] = port["targetPort"] = "http"
    return found


def test_the_tls_variant_is_the_plain_one_plus_its_tls_parts():
    """One Deployment, Service and ServiceMonitor in two files: apart from the TLS parts
    (:func:`without_tls`) everything (image, arguments, resources, security context, other
    volumes, labels, names) is the same, so a change to one file must be made to the other."""
    plain, tls = variant("http"), variant("https")
    assert without_tls(tls) == plain
    drifted = copy.deepcopy(tls)
    drifted["Deployment"]["spec"]["template"]["spec"]["containers"][0]["args"].append(
        "--workers=4")
    assert without_tls(drifted) != plain


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    """A CA and a server certificate also for the HTTPS ServiceMonitor's serverName."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    (endpoint,) = variant("https")["ServiceMonitor"]["spec"]["endpoints"]
    return make_certs(tmp_path_factory.mktemp("certs"),
                      names=(endpoint["tlsConfig"]["serverName"],))


def scrape(port, endpoint, context, token):
    """GET the endpoint's path from 127.0.0.1:``port`` as Prometheus does with its
    tlsConfig: the pod's address, the certificate checked against ``serverName``."""
    server_name = endpoint.get("tlsConfig", {}).get("serverName", "127.0.0.1")
    if context is None:
        conn = HTTPConnection("127.0.0.1", port, timeout=10)
    else:
        conn = HTTPSConnection(server_name, port, timeout=10, context=context)
        conn._create_connection = lambda address, *a: socket.create_connection(
            ("127.0.0.1", address[1]), *a)
    try:
        conn.request("GET", endpoint["path"],
                     headers={"Authorization": f"Bearer {token}"} if token else {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


@pytest.mark.parametrize("name, mtls", [("http", False), ("https", False), ("https", True)])
def test_the_deployment_command_serves_probes_and_counts(name, mtls, penguins_species,
                                                         tmp_path, request):
    """The container's command and arguments, with its mount paths moved under tmp_path and
    its port to a free one on 127.0.0.1: a real exporter that answers the probe path, takes
    a row with the Secret's token and exposes it on the ServiceMonitor's path. HTTPS: the web
    config of the Secret, the TLS Secret's files made by openssl, the probes and the row sent
    without a client certificate (as the kubelet's are), the scrape verifying serverName with
    the Secret's CA. ``mtls``: the web config's commented mutual TLS lines switched on (with
    VerifyClientCertIfGiven the probes still pass)."""
    found = variant(name)
    container, mounts = container_files(found["Deployment"])
    (endpoint,) = found["ServiceMonitor"]["spec"]["endpoints"]
    port = free_port()
    args = []
    for a in container["args"]:
        option, _, value = a.partition("=")
        if value.startswith("/"):
            value = str(tmp_path) + value
        args.append(f"{option}={value}".replace("0.0.0.0:9108", f"127.0.0.1:{port}")
                    if value else option)
    for path in mounts:
        os.makedirs(str(tmp_path) + path, exist_ok=True)
    parsed = build_parser().parse_args(container["command"][1:] + args)
    penguins_species.save(parsed.baseline[0])
    with open(parsed.token_file, "w", encoding="utf-8") as f:
        f.write("s3cret\n")
    context = None
    if name == "https":
        certs = request.getfixturevalue("certs")
        text = web_config_text(found, parsed)
        if mtls:
            text = text.replace("# client_ca_file:", "client_ca_file:").replace(
                "# client_auth_type: VerifyClientCertIfGiven",
                "client_auth_type: VerifyClientCertIfGiven")
        config = yaml.safe_load(text)
        tls = config["tls_server_config"]
        assert ("client_ca_file" in tls) == mtls
        files = {"tls.crt": "server.crt", "tls.key": "server.key",
                 endpoint["tlsConfig"]["ca"]["secret"]["key"]: "ca.crt"}
        for key, made in files.items():  # the TLS Secret's files, in its mount
            shutil.copy(certs / made, str(tmp_path) + os.path.dirname(tls["cert_file"]) +
                        "/" + key)
        for key in ("cert_file", "key_file", "client_ca_file"):
            if key in tls:
                tls[key] = str(tmp_path) + tls[key]
        with open(parsed.web_config, "w", encoding="utf-8") as f:
            yaml.safe_dump(config, f)
        assert WebConfig.load(parsed.web_config).tls
        context = ssl.create_default_context(cafile=str(certs / "ca.crt"))
    probe = container["readinessProbe"]["httpGet"]["path"]
    argv = [sys.executable, "-m", "promdrift.exporter.cli"] + container["command"][1:] + args
    with GunicornProcess(argv, port, log_path=str(tmp_path / "log"), ready_path=probe,
                         context=context) as srv:
        assert srv.url.startswith(name + "://")
        status, _ = http("GET", srv.url + container["livenessProbe"]["httpGet"]["path"],
                         context=context)
        assert status == 200
        body = json.dumps({"features": {"island": "Dream", "body_mass_g": 3800},
                           "prediction": "Adelie"}).encode()
        status, answer = http("POST", srv.url + "/v1/models/penguins/observations", body,
                              headers={"Authorization": "Bearer s3cret",
                                       "Content-Type": "application/json"}, context=context)
        assert (status, json.loads(answer)) == (200, {"accepted": 1})
        if parsed.protect_metrics:
            assert scrape(port, endpoint, context, None)[0] == 401
        status, text = scrape(port, endpoint, context,
                              "s3cret" if "authorization" in endpoint else None)
    assert status == 200
    got = samples(text.decode())
    (info,) = [dict(k) for n, k in got if n == "promdrift_baseline_info"]
    mb = (("baseline", info["baseline"]),)
    assert got["promdrift_inferences_total", mb + (("model", "penguins"),)] == 1
    assert got["promdrift_feature_category_total", (("baseline", info["baseline"]),
                                                    ("category", "Dream"), ("feature", "island"),
                                                    ("model", "penguins"))] == 1


# ------------------------------------------------------------------ annotations (no operator)
def relabel(labels, configs):
    """Prometheus' relabelling (replace and keep; anchored regex, ``;``-joined sources),
    enough for the annotations job: the target's labels, or None when dropped."""
    labels = dict(labels)
    for c in configs:
        value = ";".join(labels.get(s, "") for s in c["source_labels"])
        m = re.fullmatch(c.get("regex", "(.*)"), value)
        action = c.get("action", "replace")
        if action == "keep":
            if not m:
                return None
        elif action == "replace" and m:
            repl = re.sub(r"\$(\d+)", r"\\\1", c.get("replacement", "$1"))
            labels[c["target_label"]] = m.expand(repl)
    return labels


def test_the_annotations_job_scrapes_annotated_pods_on_their_port_and_path():
    with open(os.path.join(DEPLOY, "prometheus-annotations.yml"), encoding="utf-8") as f:
        text = f.read()
    (job,) = yaml.safe_load(text)["scrape_configs"]
    example = yaml.safe_load("\n".join(
        line[3:] for line in text.splitlines() if line.startswith("#  ")))
    ann = example["template"]["metadata"]["annotations"]
    meta = {f"__meta_kubernetes_pod_annotation_{k.replace('.', '_').replace('/', '_')}": v
            for k, v in ann.items()}
    pod = {"__address__": "10.1.2.3:9999", "__metrics_path__": "/metrics",
           "__meta_kubernetes_namespace": "models", "__meta_kubernetes_pod_name": "m-1", **meta}
    target = relabel(pod, job["relabel_configs"])
    assert target["__address__"] == f"10.1.2.3:{ann['prometheus.io/port']}"
    assert target["__metrics_path__"] == ann["prometheus.io/path"]
    assert (target["namespace"], target["pod"]) == ("models", "m-1")
    portless = relabel({**pod, "__address__": "10.1.2.3"}, job["relabel_configs"])
    assert portless["__address__"] == f"10.1.2.3:{ann['prometheus.io/port']}"
    unannotated = {k: v for k, v in pod.items() if "annotation" not in k}
    assert relabel(unannotated, job["relabel_configs"]) is None


@pytest.mark.skipif(not PROMTOOLS, reason="needs promtool")
@pytest.mark.parametrize("promtool", PROMTOOLS)
def test_promtool_checks_the_annotations_job(promtool):
    out = subprocess.run([promtool, "check", "config",
                          os.path.join(DEPLOY, "prometheus-annotations.yml")],
                         capture_output=True, text=True, timeout=60)
    if "field kubernetes_sd_configs not found" in out.stdout + out.stderr:
        pytest.skip(f"{promtool} is built without Kubernetes service discovery (Debian's)")
    assert out.returncode == 0, out.stdout + out.stderr
