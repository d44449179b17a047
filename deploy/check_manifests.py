#!/usr/bin/env python3
"""Offline checks behind deploy/validate.sh (run with the validation venv's python: PyYAML).

    check_manifests.py split RENDERED OUTDIR        built-in kinds -> OUTDIR/builtin.yaml,
                                                    each ScaledObject -> OUTDIR/scaledobject-N.yaml
    check_manifests.py overlay NAME RENDERED        cross-references and project rules of one overlay
    check_manifests.py compose COMPOSE_FILE         rules of docker-compose.yml (and the .env.example
                                                    next to it) beyond its schema
    check_manifests.py otel CONFIG COMPOSE_FILE     the collector config's pipelines are wired
    check_manifests.py dockerfile DOCKERFILE        the Dockerfile matches the Cargo workspace
    check_manifests.py alerts RULES TESTS PROMETHEUSRULE OPERATIONS_MD
                                                    the alert rules: labels, annotations, runbook
                                                    anchors, metrics, tests, and the PrometheusRule
                                                    generated from RULES is up to date
    check_manifests.py prometheusrule RULES         print the PrometheusRule generated from RULES
                                                    (the production overlay's prometheusrule.yaml)

Each checking command prints nothing and exits 0 when everything holds; otherwise one line per
problem on stdout and exit 1. Schema validation is not done here (kubernetes-validate and
check-jsonschema do it); these are the rules a schema cannot express.
"""

from __future__ import annotations

import base64
import os
import re
import sys
from pathlib import Path
from urllib.parse import urlparse

import yaml

# Kinds kubernetes-validate has schemas for are validated there; these are CRDs we validate
# against our own schema in deploy/schemas/.
CRD_KINDS = {"ScaledObject": "scaledobject", "PrometheusRule": "prometheusrule"}

SERVICE_COMMANDS = {
    "sepay-ingress": ["sepay-ingress"],
    "sepay-processor": ["sepay-processor"],
}
DOCS_DEFAULTS = {"PROCESSOR_CONCURRENCY": 16, "PROCESSOR_MAX_ACK_PENDING": 1000}

# What each overlay is for (docs/deployment.md): checked so an edit cannot silently change it.
OVERLAYS = {
    "local": {
        "autoscaler": "ScaledObject",
        "ingress_replicas": 1,
        "image_tag": "local",
        "local_secrets": True,
        "stream_replicas": 1,
    },
    "production": {
        "autoscaler": "ScaledObject",
        "ingress_replicas": 3,
        "spread": True,
        "alerts": True,
        "stream_replicas": 3,
    },
    "hpa": {"autoscaler": "HorizontalPodAutoscaler"},
}

# Paths the webhook Ingress must route (Prefix): SePay's and Striga's deliveries.
WEBHOOK_PREFIXES = ("/api/v1/webhooks/sepay", "/api/v1/webhooks/striga")

# Health and metrics live on a container port named `admin`, bound by the given variable.
# The ingress and connector also have a public port (`http`) that must never serve them.
ADMIN_PORTS = {
    "sepay-ingress": {"addr": "INGRESS_ADMIN_ADDR", "public": "http"},
    "sepay-connector": {"addr": "CONNECTOR_ADMIN_ADDR", "public": "http"},
    "sepay-processor": {"addr": "PROCESSOR_ADDR"},
    "sepay-provisioner": {"addr": "PROVISIONER_ADDR"},
}
SCRAPE_ANNOTATIONS = ("prometheus.io/scrape", "prometheus.io/port", "prometheus.io/path")

# The services refuse to start without these (unless SEPAY_DEV_MODE, which nothing here sets).
REQUIRED_SECRETS = {
    "sepay-ingress": ["SEPAY_TOKEN_KEYS"],
    "sepay-connector": ["ADMIN_JWT_SECRET", "SEPAY_TOKEN_KEYS"],
    "sepay-provisioner": ["SEPAY_TOKEN_KEYS"],
}
DEV_MODE = "SEPAY_DEV_MODE"

# Compose: the secrets each service reads from .env (interpolated, never literal; migrate is
# also the shell for other sepayctl commands), and the address its health check probes.
COMPOSE_SECRETS = {
    "migrate": ["SEPAY_TOKEN_KEYS", "ADMIN_JWT_SECRET"],
    "ingress": ["SEPAY_TOKEN_KEYS"],
    "connector": ["SEPAY_TOKEN_KEYS", "ADMIN_JWT_SECRET", "CONNECTOR_CSRF_SECRET"],
    "provisioner": ["SEPAY_TOKEN_KEYS"],
    "demo": ["SEPAY_TOKEN_KEYS"],
    "postgres": ["POSTGRES_PASSWORD"],
}
COMPOSE_HEALTH = {
    "ingress": "INGRESS_ADMIN_ADDR",
    "connector": "CONNECTOR_ADMIN_ADDR",
    "processor": "PROCESSOR_ADDR",
    "provisioner": "PROVISIONER_ADDR",
}
INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?[-?+][^}]*)?\}")

# Alert rules: deploy/prometheus/alerts.yaml is the one source; the production overlay's
# PrometheusRule is generated from it (`prometheusrule`) and must stay equal to it.
ROOT = Path(__file__).resolve().parent.parent
ALERT_RULES = ROOT / "deploy" / "prometheus" / "alerts.yaml"
PROMETHEUSRULE = ROOT / "deploy" / "k8s" / "overlays" / "production" / "prometheusrule.yaml"
PROMETHEUSRULE_NAME = "sepay-finance"
SEVERITIES = ("critical", "warning", "info")
ALERT_ANNOTATIONS = ("summary", "description", "runbook_url")
# the runbook is a heading of docs/operations.md's "Alerts" section; one prefix for every rule
RUNBOOK_URL = re.compile(r"^(https?://\S+/)docs/operations\.md#([a-z0-9_-]+)$")
RUNBOOK_SECTION = "Alerts"
PROMETHEUSRULE_HEADER = """\
# GENERATED from {src}, the rules' one source: do not edit here.
# After changing that file:
#   python3 deploy/check_manifests.py prometheusrule {src} \\
#     > {out}
# (deploy/validate.sh fails while this file differs). Needs the Prometheus Operator's CRDs; your
# Prometheus picks it up through its ruleSelector: add the labels it asks for in the overlay.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: {name}
  labels:
    app.kubernetes.io/part-of: sepay-finance
"""


def load_all(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d]


# ----------------------------------------------------------------------------- split
def cmd_split(rendered: str, outdir: str) -> list[str]:
    docs = load_all(rendered)
    os.makedirs(outdir, exist_ok=True)
    builtin, counters = [], {}
    for doc in docs:
        prefix = CRD_KINDS.get(doc.get("kind", ""))
        if prefix is None:
            builtin.append(doc)
            continue
        counters[prefix] = counters.get(prefix, 0) + 1
        with open(os.path.join(outdir, f"{prefix}-{counters[prefix]}.yaml"), "w") as f:
            yaml.safe_dump(doc, f, sort_keys=False)
    with open(os.path.join(outdir, "builtin.yaml"), "w") as f:
        yaml.safe_dump_all(builtin, f, sort_keys=False)
    return []


# --------------------------------------------------------------------------- overlay
def matches(selector: dict, labels: dict) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def pod_templates(docs: list[dict]):
    for d in docs:
        if d["kind"] in ("Deployment", "Job"):
            yield d, d["spec"]["template"]


def env_value(c: dict, key: str, configmaps: dict[str, dict]) -> str | None:
    """KEY as the container sees it: its own env (literal value), else an envFrom ConfigMap."""
    for e in c.get("env", []):
        if e["name"] == key:
            return e.get("value")
    for ref in c.get("envFrom", []):
        cm = configmaps.get(ref.get("configMapRef", {}).get("name"), {})
        if key in (cm.get("data") or {}):
            return cm["data"][key]
    return None


def check_admin_port(p, dname: str, cwho: str, c: dict, configmaps: dict[str, dict]) -> None:
    """Health and metrics on the container port named admin, bound on every interface by the
    service's address variable; probes there, and a public port (if any) kept apart."""
    rule = ADMIN_PORTS.get(dname)
    ports = {pt.get("name"): pt.get("containerPort") for pt in c.get("ports", [])}
    admin = ports.get("admin")
    if admin is None:
        p(f"{cwho}: no container port named admin (health and metrics)")
        return
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        get = c.get(probe, {}).get("httpGet")
        if get and get.get("port") not in ("admin", admin):
            p(f"{cwho}: {probe} must use the admin port ({admin}), not {get.get('port')!r}")
    if rule is None:
        return
    if "public" in rule:
        public = ports.get(rule["public"])
        if public is None:
            p(f"{cwho}: no container port named {rule['public']} (the public listener)")
        elif public == admin:
            p(f"{cwho}: the public port and the admin port are both {admin}")
    addr = env_value(c, rule["addr"], configmaps)
    if addr is None:
        p(f"{cwho}: {rule['addr']} is not set (its default is loopback: the kubelet could not probe it)")
        return
    host, _, port = addr.rpartition(":")
    if port != str(admin):
        p(f"{cwho}: {rule['addr']}={addr} does not listen on the admin container port {admin}")
    if host.strip("[]") in ("127.0.0.1", "localhost", "::1"):
        p(f"{cwho}: {rule['addr']}={addr} is loopback: the kubelet and Prometheus could not reach it")


def cmd_overlay(name: str, rendered: str) -> list[str]:
    problems: list[str] = []
    p = problems.append
    expect = OVERLAYS.get(name)
    if expect is None:
        return [f"unknown overlay {name!r}: add its expectations to OVERLAYS in {__file__}"]
    docs = load_all(rendered)
    by_kind: dict[str, list[dict]] = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    deployments = {d["metadata"]["name"]: d for d in by_kind.get("Deployment", [])}
    configmaps = {d["metadata"]["name"]: d for d in by_kind.get("ConfigMap", [])}

    secrets = {s["metadata"]["name"]: s for s in by_kind.get("Secret", [])}
    if secrets and not expect.get("local_secrets"):
        p("a Secret is rendered: secrets are created out of band, never committed")
    for sname, s in secrets.items():
        values = {k: base64.b64decode(v).decode("utf-8", "replace") for k, v in (s.get("data") or {}).items()}
        values.update(s.get("stringData") or {})
        for key, value in values.items():
            if "local" not in value:
                p(f"Secret/{sname} key {key}: a committed value must say 'local', so nobody takes it for a real one")
    for cm in configmaps.values():
        if DEV_MODE in (cm.get("data") or {}):
            p(f"ConfigMap/{cm['metadata']['name']} sets {DEV_MODE}: the services must run with real secrets")
    for d in docs:
        if "namespace" in d.get("metadata", {}):
            p(f"{d['kind']}/{d['metadata']['name']} sets a namespace: manifests stay namespace-agnostic")

    for want in ("sepay-ingress", "sepay-processor"):
        if want not in deployments:
            p(f"Deployment {want} missing")
    if len(by_kind.get("Job", [])) != 1:
        p("expected exactly one Job (sepay-migrate)")

    # pods: security, resources, env, probes, commands
    for owner, tpl in pod_templates(docs):
        who = f"{owner['kind']}/{owner['metadata']['name']}"
        spec = tpl["spec"]
        psc = spec.get("securityContext", {})
        if psc.get("runAsNonRoot") is not True or psc.get("runAsUser") != 10001:
            p(f"{who}: pod securityContext must be runAsNonRoot with runAsUser 10001")
        if psc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            p(f"{who}: pod seccompProfile must be RuntimeDefault")
        if spec.get("automountServiceAccountToken") is not False:
            p(f"{who}: automountServiceAccountToken should be false (no API access needed)")
        for c in spec["containers"]:
            cwho = f"{who} container {c['name']}"
            sc = c.get("securityContext", {})
            if sc.get("allowPrivilegeEscalation") is not False:
                p(f"{cwho}: allowPrivilegeEscalation must be false")
            if sc.get("readOnlyRootFilesystem") is not True:
                p(f"{cwho}: readOnlyRootFilesystem must be true")
            if "ALL" not in sc.get("capabilities", {}).get("drop", []):
                p(f"{cwho}: capabilities must drop ALL")
            res = c.get("resources", {})
            for part in ("requests", "limits"):
                for r in ("cpu", "memory"):
                    if r not in res.get(part, {}):
                        p(f"{cwho}: resources.{part}.{r} missing")
            for ref in c.get("envFrom", []):
                cm = ref.get("configMapRef", {}).get("name")
                if cm is not None and cm not in configmaps:
                    p(f"{cwho}: envFrom ConfigMap {cm} is not rendered")
                if "secretRef" in ref:
                    p(f"{cwho}: use secretKeyRef per key, not envFrom secretRef")
            env = {e["name"]: e for e in c.get("env", [])}
            for key in ["DATABASE_URL"] + REQUIRED_SECRETS.get(owner["metadata"]["name"], []):
                ref = env.get(key, {}).get("valueFrom", {}).get("secretKeyRef", {})
                if ref.get("name") != "sepay-secrets" or ref.get("key") != key or ref.get("optional"):
                    p(f"{cwho}: {key} must come from Secret sepay-secrets key {key} (not optional)")
            for e in c.get("env", []):
                if "value" in e and re.search(r"(?i)(password|secret|token)", e["name"]):
                    p(f"{cwho}: {e['name']} has a literal value; use a Secret")
                ref = e.get("valueFrom", {}).get("secretKeyRef", {})
                rendered_secret = secrets.get(ref.get("name"))
                if rendered_secret is not None and ref.get("key") not in {
                    **(rendered_secret.get("data") or {}),
                    **(rendered_secret.get("stringData") or {}),
                }:
                    p(f"{cwho}: {e['name']} reads key {ref.get('key')} of Secret/{ref['name']}, which lacks it")
            if DEV_MODE in env:
                p(f"{cwho}: sets {DEV_MODE}: the services must run with real secrets")
            if owner["kind"] == "Job":
                if c.get("command") != ["sepayctl", "migrate"]:
                    p(f"{cwho}: the migration Job must run `sepayctl migrate`")
                continue
            want_cmd = SERVICE_COMMANDS.get(owner["metadata"]["name"])
            if want_cmd is not None and c.get("command") != want_cmd:
                p(f"{cwho}: command should be {want_cmd}")
            port_names = {pt.get("name") for pt in c.get("ports", [])}
            for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
                get = c.get(probe, {}).get("httpGet")
                if not get:
                    p(f"{cwho}: {probe} (httpGet {path}) missing")
                    continue
                if get.get("path") != path:
                    p(f"{cwho}: {probe} path should be {path}, is {get.get('path')}")
                if isinstance(get.get("port"), str) and get["port"] not in port_names:
                    p(f"{cwho}: {probe} port {get['port']!r} is not a named container port")
            check_admin_port(p, owner["metadata"]["name"], cwho, c, configmaps)

    # Deployments: Prometheus scrapes /metrics on the admin port of every pod
    for dname, d in deployments.items():
        meta = d["spec"]["template"]["metadata"]
        ann = meta.get("annotations") or {}
        admin = [
            pt["containerPort"]
            for c in d["spec"]["template"]["spec"]["containers"]
            for pt in c.get("ports", [])
            if pt.get("name") == "admin"
        ]
        want = {"prometheus.io/scrape": "true", "prometheus.io/path": "/metrics"}
        if admin:
            want["prometheus.io/port"] = str(admin[0])
        for key in SCRAPE_ANNOTATIONS:
            if key in want and ann.get(key) != want[key]:
                p(f"Deployment/{dname}: pod annotation {key} should be {want[key]!r}, is {ann.get(key)!r}")

    # Deployments: selectors select their own template
    for dname, d in deployments.items():
        sel = d["spec"]["selector"].get("matchLabels", {})
        if not matches(sel, d["spec"]["template"]["metadata"].get("labels", {})):
            p(f"Deployment/{dname}: selector does not match its pod template labels")

    def pods_selected(selector: dict) -> list[dict]:
        return [
            d["spec"]["template"]
            for d in deployments.values()
            if matches(selector, d["spec"]["template"]["metadata"].get("labels", {}))
        ]

    # Services select pods and name real ports
    services = {s["metadata"]["name"]: s for s in by_kind.get("Service", [])}
    for sname, s in services.items():
        pods = pods_selected(s["spec"].get("selector", {}))
        if not pods:
            p(f"Service/{sname}: selector matches no Deployment")
            continue
        names = {pt.get("name") for tpl in pods for c in tpl["spec"]["containers"] for pt in c.get("ports", [])}
        for port in s["spec"].get("ports", []):
            tp = port.get("targetPort")
            if isinstance(tp, str) and tp not in names:
                p(f"Service/{sname}: targetPort {tp!r} is not a container port of the selected pods")

    # Services and Ingresses never publish an admin port (health, metrics)
    def admin_target(svc: dict, sp: dict) -> bool:
        pods = pods_selected(svc["spec"].get("selector", {}))
        numbers = {
            pt["containerPort"]
            for tpl in pods
            for c in tpl["spec"]["containers"]
            for pt in c.get("ports", [])
            if pt.get("name") == "admin"
        }
        return sp.get("targetPort") == "admin" or sp.get("targetPort") in numbers

    for sname, s in services.items():
        public = any(
            "public" in ADMIN_PORTS.get(dname, {})
            for dname, d in deployments.items()
            if matches(s["spec"].get("selector", {}), d["spec"]["template"]["metadata"].get("labels", {}))
        )
        for sp in s["spec"].get("ports", []):
            if public and admin_target(s, sp):
                p(f"Service/{sname}: port {sp.get('name')} exposes the admin port; only the public port belongs here")

    # Ingresses: one routes the webhook paths (SePay and Striga), one the admin pages (connector)
    ingresses = by_kind.get("Ingress", [])
    all_paths = [
        (ing["metadata"]["name"], pa)
        for ing in ingresses
        for rule in ing["spec"].get("rules", [])
        for pa in rule.get("http", {}).get("paths", [])
    ]
    if not any(pa.get("backend", {}).get("service", {}).get("name") == "sepay-ingress" for _, pa in all_paths):
        p("no Ingress rule routes to Service sepay-ingress (the webhooks)")
    if not any(pa.get("backend", {}).get("service", {}).get("name") == "sepay-connector" for _, pa in all_paths):
        p("no Ingress rule for the connector's admin pages")
    for ing in ingresses:
        for rule in ing["spec"].get("rules", []):
            where = f"Ingress/{ing['metadata']['name']} host {rule.get('host', '*')}"
            hooks = [
                pa
                for pa in rule.get("http", {}).get("paths", [])
                if pa.get("backend", {}).get("service", {}).get("name") == "sepay-ingress"
            ]
            if not hooks:
                continue
            for prefix in WEBHOOK_PREFIXES:
                if not any(pa.get("path") == prefix and pa.get("pathType") == "Prefix" for pa in hooks):
                    p(f"{where}: no Prefix rule for {prefix}")
            for pa in hooks:
                path = pa.get("path", "")
                if not any(path == w or path.startswith(w + "/") for w in WEBHOOK_PREFIXES):
                    p(f"{where}: routes {path!r} to sepay-ingress; only the webhook prefixes are published")
    for ing in ingresses:
        paths = [pa for rule in ing["spec"].get("rules", []) for pa in rule.get("http", {}).get("paths", [])]
        for pa in paths:
            backend = pa["backend"]["service"]
            svc = services.get(backend["name"])
            if svc is None:
                p(f"Ingress: backend Service {backend['name']} is not rendered")
                continue
            port = backend.get("port", {})
            ok = any(
                port.get("name") == sp.get("name") if "name" in port else port.get("number") == sp.get("port")
                for sp in svc["spec"]["ports"]
            )
            if not ok:
                p(f"Ingress: backend port {port} is not a port of Service {backend['name']}")
            for sp in svc["spec"]["ports"]:
                hit = port.get("name") == sp.get("name") if "name" in port else port.get("number") == sp.get("port")
                if hit and admin_target(svc, sp):
                    p(f"Ingress: {pa.get('path')} publishes the admin port of Service {backend['name']}")

    # PodDisruptionBudgets
    pdb_targets = set()
    for pdb in by_kind.get("PodDisruptionBudget", []):
        if pdb["spec"].get("minAvailable") != 1:
            p(f"PodDisruptionBudget/{pdb['metadata']['name']}: minAvailable should be 1")
        sel = pdb["spec"].get("selector", {}).get("matchLabels", {})
        hit = [n for n, d in deployments.items() if matches(sel, d["spec"]["template"]["metadata"].get("labels", {}))]
        if not hit:
            p(f"PodDisruptionBudget/{pdb['metadata']['name']}: selector matches no Deployment")
        pdb_targets.update(hit)
    for want in ("sepay-ingress", "sepay-processor"):
        if want not in pdb_targets:
            p(f"no PodDisruptionBudget covers {want}")

    # Autoscaling: exactly one autoscaler for the processor, of the overlay's kind
    scalers = by_kind.get("ScaledObject", []) + by_kind.get("HorizontalPodAutoscaler", [])
    targets = [s["spec"]["scaleTargetRef"]["name"] for s in scalers]
    for t in targets:
        if t not in deployments:
            p(f"autoscaler targets Deployment {t}, which is not rendered")
    if targets.count("sepay-processor") != 1:
        p(f"sepay-processor must have exactly one autoscaler, has {targets.count('sepay-processor')}")
    kinds = {s["kind"] for s in scalers}
    if kinds != {expect["autoscaler"]}:
        p(f"overlay {name} should scale with {expect['autoscaler']} only, renders {sorted(kinds) or 'none'}")
    proc = deployments.get("sepay-processor")
    if proc is not None and "replicas" in proc["spec"]:
        p("Deployment/sepay-processor sets spec.replicas: it would fight the autoscaler on every apply")

    max_replicas = None
    for so in by_kind.get("ScaledObject", []):
        spec = so["spec"]
        lo, hi = spec.get("minReplicaCount", 0), spec.get("maxReplicaCount", 100)
        max_replicas = hi
        if lo > hi:
            p(f"ScaledObject/{so['metadata']['name']}: minReplicaCount {lo} > maxReplicaCount {hi}")
        if lo < 1:
            p(f"ScaledObject/{so['metadata']['name']}: minReplicaCount < 1 leaves no consumer to report lag")
        trig = [t for t in spec["triggers"] if t["type"] == "nats-jetstream"]
        if len(trig) != 1:
            p("ScaledObject: expected one nats-jetstream trigger")
            continue
        md = trig[0]["metadata"]
        if md.get("stream") != "SEPAY_EVENTS" or md.get("consumer") != "sepay-processor":
            p("ScaledObject: trigger must watch stream SEPAY_EVENTS, consumer sepay-processor")
        if md.get("account") != "$G":
            p("ScaledObject: account should be $G (no NATS accounts configured)")
    for hpa in by_kind.get("HorizontalPodAutoscaler", []):
        max_replicas = hpa["spec"]["maxReplicas"]
        if hpa["apiVersion"] != "autoscaling/v2":
            p("HorizontalPodAutoscaler must be autoscaling/v2")
        if not any(m.get("resource", {}).get("name") == "cpu" for m in hpa["spec"].get("metrics", [])):
            p("HorizontalPodAutoscaler should scale on cpu")

    # The shared durable consumer's max_ack_pending must cover every replica's concurrency
    cfg = {}
    for cm in configmaps.values():
        if cm["metadata"]["name"].startswith("sepay-config"):
            cfg = cm.get("data", {})
    if max_replicas is not None:
        conc = int(cfg.get("PROCESSOR_CONCURRENCY", DOCS_DEFAULTS["PROCESSOR_CONCURRENCY"]))
        pending = int(cfg.get("PROCESSOR_MAX_ACK_PENDING", DOCS_DEFAULTS["PROCESSOR_MAX_ACK_PENDING"]))
        if pending < max_replicas * conc:
            p(f"PROCESSOR_MAX_ACK_PENDING {pending} < max replicas {max_replicas} x PROCESSOR_CONCURRENCY {conc}")
    # JetStream keeps 1 to 5 copies of a stream; production runs the 3-node cluster
    stream_replicas = cfg.get("NATS_STREAM_REPLICAS", "1")
    if not stream_replicas.isdigit() or not 1 <= int(stream_replicas) <= 5:
        p(f"sepay-config: NATS_STREAM_REPLICAS {stream_replicas!r} is not a number from 1 to 5")
    elif "stream_replicas" in expect and int(stream_replicas) != expect["stream_replicas"]:
        p(f"sepay-config: NATS_STREAM_REPLICAS should be {expect['stream_replicas']}, is {stream_replicas}")
    if cfg.get("LOG_FORMAT") != "json":
        p("sepay-config: LOG_FORMAT should be json")
    endpoint = cfg.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if endpoint is not None and not endpoint:
        p("sepay-config: an empty OTEL_EXPORTER_OTLP_ENDPOINT still counts as set; omit the key instead")

    # What this overlay is for
    ing = deployments.get("sepay-ingress")
    if ing is not None and "ingress_replicas" in expect and ing["spec"].get("replicas") != expect["ingress_replicas"]:
        p(f"sepay-ingress should have {expect['ingress_replicas']} replicas, has {ing['spec'].get('replicas')}")
    for _, tpl in pod_templates(docs):
        for c in tpl["spec"]["containers"]:
            tag = c["image"].rsplit(":", 1)[-1] if ":" in c["image"].rsplit("/", 1)[-1] else "latest"
            if "image_tag" in expect and tag != expect["image_tag"]:
                p(f"{c['name']}: image tag should be {expect['image_tag']}, is {tag}")
            if name == "production" and tag in ("latest", "local"):
                p(f"{c['name']}: production must pin an image tag, not {tag}")
    if expect.get("spread"):
        for dname, d in deployments.items():
            if not d["spec"]["template"]["spec"].get("topologySpreadConstraints"):
                p(f"Deployment/{dname}: production needs topologySpreadConstraints")

    # Alert rules: production ships the PrometheusRule generated from the rule file, unchanged
    prules = by_kind.get("PrometheusRule", [])
    if expect.get("alerts"):
        names = [r["metadata"]["name"] for r in prules]
        if names != [PROMETHEUSRULE_NAME]:
            p(f"expected one PrometheusRule {PROMETHEUSRULE_NAME} (the alert rules), renders {names or 'none'}")
        want = yaml.safe_load(ALERT_RULES.read_text(encoding="utf-8"))
        for r in prules:
            if r.get("spec") != want:
                p(f"PrometheusRule/{r['metadata']['name']}: spec differs from {relative(ALERT_RULES)}; "
                  "rules change in that file only (no patches in the overlay)")
    elif prules:
        p("a PrometheusRule is rendered: only production ships the alert rules (a cluster without "
          "the Prometheus Operator's CRDs would refuse the apply)")
    return problems


# --------------------------------------------------------------------------- compose
def read_env_file(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            out[key.strip()] = value.strip()
    return out


def cmd_compose(path: str) -> list[str]:
    problems: list[str] = []
    p = problems.append
    root = Path(path).resolve().parent
    text = Path(path).read_text(encoding="utf-8")
    doc = yaml.safe_load(text)
    services = doc.get("services", {})

    # Secrets: every ${VAR} is required (:?) somewhere, so compose stops without .env, and is
    # documented in .env.example (which validate.sh renders the file with)
    example_path = root / ".env.example"
    example = read_env_file(example_path) if example_path.exists() else {}
    if not example_path.exists():
        p(".env.example missing: compose reads its secrets from .env, made from it")
    used = set(INTERPOLATION.findall(text))
    required = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*):\?", text))
    for var in sorted(used - required):
        p(f"${{{var}}} is never required (${{{var}:?...}}): compose would start with it empty")
    for var in sorted(used - set(example)):
        p(f"${{{var}}} is not in .env.example")
    for var in sorted(set(example) - used):
        p(f".env.example sets {var}, which docker-compose.yml never reads")
    for sname, keys in COMPOSE_SECRETS.items():
        env = (services.get(sname) or {}).get("environment", {})
        for key in keys:
            if not re.fullmatch(r"\$\{" + key + r"(:\?[^}]*)?\}", str(env.get(key, ""))):
                p(f"{sname}: {key} must be ${{{key}:?...}} (read from .env), is {env.get(key)!r}")
    for sname, svc in services.items():
        env = svc.get("environment") or {}
        if DEV_MODE in env or any(str(e).startswith(DEV_MODE + "=") for e in env if isinstance(env, list)):
            p(f"{sname}: sets {DEV_MODE}: compose runs on the real secrets from .env")
        url = urlparse(str(env.get("DATABASE_URL", ""))) if isinstance(env, dict) else None
        if url and url.password is not None and url.password != "${POSTGRES_PASSWORD}":
            p(f"{sname}: DATABASE_URL's password must be ${{POSTGRES_PASSWORD}}, not a literal")

    # Health: the check probes /readyz on the admin address, which is never published
    for sname, var in COMPOSE_HEALTH.items():
        svc = services.get(sname)
        if svc is None:
            continue
        addr = str(svc.get("environment", {}).get(var, ""))
        port = addr.rpartition(":")[2]
        if not port.isdigit():
            p(f"{sname}: {var} not set to host:port (its default is loopback-only)")
            continue
        test = " ".join(map(str, svc.get("healthcheck", {}).get("test", [])))
        if f"/dev/tcp/127.0.0.1/{port}" not in test or "/readyz" not in test:
            p(f"{sname}: the health check should GET /readyz on {var}'s port {port}")
        for published in svc.get("ports", []):
            target = str(published.get("target") if isinstance(published, dict) else published)
            if target.rsplit(":", 1)[-1].split("/")[0] == port:
                p(f"{sname}: publishes its health port {port}; health and metrics stay inside")
    for want in ("postgres", "nats", "otel-collector", "jaeger", "migrate", "ingress", "processor"):
        if want not in services:
            p(f"service {want} missing")
    commands = {
        "migrate": ["sepayctl", "migrate"],
        "ingress": ["sepay-ingress"],
        "processor": ["sepay-processor"],
        "provisioner": ["sepay-provisioner"],
        "connector": ["sepay-connector"],
        "demo": ["sepay-dev", "demo"],
    }
    for sname, cmd in commands.items():
        svc = services.get(sname)
        if svc is None:
            continue
        build = svc.get("build", {})
        if build.get("context") != "." or build.get("dockerfile") != "deploy/Dockerfile":
            p(f"{sname}: must build from deploy/Dockerfile with context .")
        if svc.get("command") != cmd:
            p(f"{sname}: command should be {cmd}")
        env = svc.get("environment", {})
        for key in ("DATABASE_URL", "NATS_URL", "OTEL_EXPORTER_OTLP_ENDPOINT"):
            if key not in env:
                p(f"{sname}: {key} not set")
        for key in ("DATABASE_URL", "NATS_URL", "OTEL_EXPORTER_OTLP_ENDPOINT"):
            value = INTERPOLATION.sub(lambda m: example.get(m.group(1), "x"), str(env.get(key, "")))
            host = urlparse(value).hostname
            if host and host not in services:
                p(f"{sname}: {key} points at {host}, which is not a compose service")
        if sname in ("ingress", "processor", "provisioner", "connector"):
            dep = svc.get("depends_on", {})
            if dep.get("migrate", {}).get("condition") != "service_completed_successfully":
                p(f"{sname}: must depend on migrate with condition service_completed_successfully")
            if "healthcheck" not in svc:
                p(f"{sname}: healthcheck missing")
    nats = services.get("nats", {})
    if not any(a in ("-js", "--jetstream") for a in nats.get("command", [])):
        p("nats: JetStream is not enabled (-js / --jetstream)")
    if "8222" not in " ".join(map(str, nats.get("command", []))):
        p("nats: monitoring port 8222 not enabled")
    for sname, svc in services.items():
        for vol in svc.get("volumes", []):
            src = vol.split(":", 1)[0] if isinstance(vol, str) else vol.get("source", "")
            if src.startswith(("./", "../")) and not (root / src).exists():
                p(f"{sname}: bind-mounted {src} does not exist")
    return problems


# ------------------------------------------------------------------------------ otel
def cmd_otel(config: str, compose: str) -> list[str]:
    problems: list[str] = []
    p = problems.append
    with open(config, encoding="utf-8") as f:
        cfg = yaml.safe_load(f)
    with open(compose, encoding="utf-8") as f:
        services = yaml.safe_load(f).get("services", {})
    service = cfg.get("service", {})
    for ext in service.get("extensions", []):
        if ext not in cfg.get("extensions", {}):
            p(f"extension {ext} is enabled but not defined")
    pipelines = service.get("pipelines", {})
    if "traces" not in pipelines:
        p("no traces pipeline")
    for pname, pipe in pipelines.items():
        for section in ("receivers", "processors", "exporters"):
            for comp in pipe.get(section, []):
                if comp not in (cfg.get(section) or {}):
                    p(f"pipeline {pname}: {section[:-1]} {comp} is not defined")
    http = (cfg.get("receivers", {}).get("otlp", {}).get("protocols", {}) or {}).get("http") or {}
    if not str(http.get("endpoint", "")).endswith(":4318"):
        p("otlp receiver must listen for OTLP/HTTP on :4318 (the services export there)")
    for ename, exp in (cfg.get("exporters") or {}).items():
        host = str((exp or {}).get("endpoint", "")).split("://")[-1].split(":")[0]
        if host and host not in services:
            p(f"exporter {ename} sends to {host}, which is not a compose service")
    return problems


# ------------------------------------------------------------------------ dockerfile
def cmd_dockerfile(path: str) -> list[str]:
    problems: list[str] = []
    p = problems.append
    text = Path(path).read_text(encoding="utf-8")
    root = Path(path).resolve().parent.parent
    workspace = (root / "Cargo.toml").read_text(encoding="utf-8")
    packages = set()
    for member in re.findall(r'"((?:shared|services)/[^"]+)"', workspace):
        manifest = root / member / "Cargo.toml"
        if manifest.exists():
            m = re.search(r'^name\s*=\s*"([^"]+)"', manifest.read_text(encoding="utf-8"), re.M)
            if m:
                packages.add(m.group(1))
    built = re.findall(r"-p\s+([A-Za-z0-9_-]+)", text)
    if not built:
        p("no `cargo build -p ...` found")
    for pkg in built:
        if pkg not in packages:
            p(f"cargo build -p {pkg}: no such workspace package")
    if "--locked" not in text or "--release" not in text:
        p("cargo build must use --release --locked")
    for binary in re.findall(r"target/release/([A-Za-z0-9_-]+)", text):
        if binary not in built:
            p(f"copies target/release/{binary}, which is not built with -p")
    rv = re.search(r'rust-version\s*=\s*"([0-9.]+)"', workspace)
    img = re.search(r"rust:([0-9.]+)-", text)
    if rv and img and img.group(1) != rv.group(1):
        p(f"builder image rust:{img.group(1)} differs from workspace rust-version {rv.group(1)}")
    for src in re.findall(r"^COPY\s+(?!--)(.+?)\s+\S+$", text, re.M):
        for item in src.split():
            if not (root / item).exists():
                p(f"COPY source {item} does not exist in the repository")
    ignore = Path(path).with_name(Path(path).name + ".dockerignore")
    if not ignore.exists():
        p(f"{ignore.name} missing: the whole repository (target/, .git) would be sent as context")
    if not re.search(r"^USER\s+10001", text, re.M):
        p("runtime stage must run as USER 10001")
    if re.search(r"^ENTRYPOINT", text, re.M):
        p("no ENTRYPOINT: each service chooses its binary as the command")
    return problems


# ---------------------------------------------------------------------------- alerts
def relative(path: Path | str) -> str:
    path = Path(path).resolve()
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def prometheusrule_text(rules: str) -> str:
    """The production overlay's PrometheusRule: the rule file below `spec:`, text for text
    (comments and block scalars kept), after a header saying where it comes from."""
    lines = Path(rules).read_text(encoding="utf-8").splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("groups:")), None)
    if start is None:
        raise SystemExit(f"{rules}: no top-level `groups:` (a Prometheus rule file)")
    body = "\n".join("  " + line if line.strip() else "" for line in lines[start:])
    header = PROMETHEUSRULE_HEADER.format(src=relative(rules), out=relative(PROMETHEUSRULE), name=PROMETHEUSRULE_NAME)
    return f"{header}spec:\n{body}\n"


def markdown_headings(path: Path) -> dict[str, str]:
    """GitHub's anchor of every heading of a Markdown file -> the `## ` section it is in."""
    anchors: dict[str, str] = {}
    seen: dict[str, int] = {}
    section, fence = "", False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fence = not fence
            continue
        m = None if fence else re.match(r"^(#{1,6})\s+(.+?)\s*#*\s*$", line)
        if not m:
            continue
        text = m.group(2).strip()
        slug = re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        if n:
            slug = f"{slug}-{n}"
        if len(m.group(1)) <= 2:
            section = text
        anchors[slug] = section
    return anchors


def documented_metrics(path: Path) -> set[str]:
    """The metric names of the table in docs/operations.md's "Metrics" section (first column)."""
    names, section = set(), ""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            section = line[3:].strip()
        elif section == "Metrics" and line.startswith("|"):
            names.update(re.findall(r"`(sepay_[a-z0-9_]+)`", line.split("|")[1]))
    return names


def cmd_alerts(rules: str, tests: str, prometheusrule: str, operations_md: str) -> list[str]:
    problems: list[str] = []
    p = problems.append
    doc = yaml.safe_load(Path(rules).read_text(encoding="utf-8")) or {}
    anchors = markdown_headings(Path(operations_md))
    metrics = documented_metrics(Path(operations_md))
    if not metrics:
        p(f"{operations_md}: no metrics table found in its Metrics section")
    alerts: list[str] = []
    groups = [g.get("name") for g in doc.get("groups", [])]
    for dup in sorted({g for g in groups if groups.count(g) > 1}):
        p(f"group {dup} appears twice (the PrometheusRule lists groups by name)")
    prefixes = set()
    for group in doc.get("groups", []):
        for rule in group.get("rules", []):
            name = rule.get("alert")
            if name is None:
                continue
            alerts.append(name)
            who = f"alert {name}"
            severity = (rule.get("labels") or {}).get("severity")
            if severity not in SEVERITIES:
                p(f"{who}: label severity must be one of {', '.join(SEVERITIES)}, is {severity!r}")
            annotations = rule.get("annotations") or {}
            for key in ALERT_ANNOTATIONS:
                if not str(annotations.get(key, "")).strip():
                    p(f"{who}: annotation {key} missing")
            url = str(annotations.get("runbook_url", ""))
            m = RUNBOOK_URL.match(url)
            if url and not m:
                p(f"{who}: runbook_url {url!r} must end in docs/operations.md#<anchor>")
            elif m:
                prefixes.add(m.group(1))
                section = anchors.get(m.group(2))
                if section is None:
                    p(f"{who}: runbook anchor #{m.group(2)} is no heading of {operations_md}")
                elif section != RUNBOOK_SECTION:
                    p(f"{who}: runbook anchor #{m.group(2)} is in section {section!r}, not {RUNBOOK_SECTION!r}")
            for metric in sorted(set(re.findall(r"\b(sepay_[a-z0-9_]+)", str(rule.get("expr", ""))))):
                if metrics and metric not in metrics:
                    p(f"{who}: reads {metric}, which is not in the metrics table of {operations_md}")
    for dup in sorted({a for a in alerts if alerts.count(a) > 1}):
        p(f"alert {dup} is defined twice")
    if not alerts:
        p(f"{rules}: no alert rules")
    if len(prefixes) > 1:
        p(f"runbook_url prefixes differ ({', '.join(sorted(prefixes))}): one place serves the docs")

    # every alert is unit-tested: it fires in one case and stays quiet in another
    tdoc = yaml.safe_load(Path(tests).read_text(encoding="utf-8")) or {}
    tested = {(Path(tests).resolve().parent / f).resolve() for f in tdoc.get("rule_files", [])}
    if Path(rules).resolve() not in tested:
        p(f"{tests}: rule_files does not load {rules}")
    fires, quiet = set(), set()
    for case in tdoc.get("tests", []):
        for t in case.get("alert_rule_test", []):
            (fires if t.get("exp_alerts") else quiet).add(t.get("alertname"))
    for name in alerts:
        if name not in fires:
            p(f"alert {name}: no test in {tests} where it fires")
        if name not in quiet:
            p(f"alert {name}: no test in {tests} where it stays quiet")
    for name in sorted((fires | quiet) - set(alerts)):
        p(f"{tests}: tests alert {name}, which {rules} does not define")

    # the PrometheusRule is generated from the rule file, never edited by hand
    want = prometheusrule_text(rules)
    have = Path(prometheusrule).read_text(encoding="utf-8") if Path(prometheusrule).exists() else None
    if have != want:
        p(f"{prometheusrule} is {'missing' if have is None else 'stale'}: regenerate it with "
          f"`{sys.executable} deploy/check_manifests.py prometheusrule {rules} > {prometheusrule}`")
    return problems


def cmd_prometheusrule(rules: str) -> list[str]:
    sys.stdout.write(prometheusrule_text(rules))
    return []


def main(argv: list[str]) -> int:
    commands = {
        "split": (cmd_split, 2),
        "overlay": (cmd_overlay, 2),
        "compose": (cmd_compose, 1),
        "otel": (cmd_otel, 2),
        "dockerfile": (cmd_dockerfile, 1),
        "alerts": (cmd_alerts, 4),
        "prometheusrule": (cmd_prometheusrule, 1),
    }
    if len(argv) < 2 or argv[1] not in commands or len(argv) - 2 != commands[argv[1]][1]:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    fn, _ = commands[argv[1]]
    problems = fn(*argv[2:])
    for line in problems:
        print(line)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
