#!/usr/bin/env python3
"""Offline checks behind deploy/validate.sh (run with the validation venv's python: PyYAML).

    check_manifests.py split RENDERED OUTDIR        built-in kinds -> OUTDIR/builtin.yaml,
                                                    each ScaledObject -> OUTDIR/scaledobject-N.yaml
    check_manifests.py overlay NAME RENDERED        cross-references and project rules of one overlay
    check_manifests.py compose COMPOSE_FILE         rules of docker-compose.yml beyond its schema
    check_manifests.py otel CONFIG COMPOSE_FILE     the collector config's pipelines are wired
    check_manifests.py dockerfile DOCKERFILE        the Dockerfile matches the Cargo workspace

Each command prints nothing and exits 0 when everything holds; otherwise one line per
problem on stdout and exit 1. Schema validation is not done here (kubernetes-validate and
check-jsonschema do it); these are the rules a schema cannot express.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from urllib.parse import urlparse

import yaml

# Kinds kubernetes-validate has schemas for are validated there; these are CRDs we validate
# against our own schema in deploy/schemas/.
CRD_KINDS = {"ScaledObject": "scaledobject"}

SERVICE_COMMANDS = {
    "sepay-ingress": ["sepay-ingress"],
    "sepay-processor": ["sepay-processor"],
}
DOCS_DEFAULTS = {"PROCESSOR_CONCURRENCY": 16, "PROCESSOR_MAX_ACK_PENDING": 1000}

# What each overlay is for (docs/deployment.md): checked so an edit cannot silently change it.
OVERLAYS = {
    "local": {"autoscaler": "ScaledObject", "ingress_replicas": 1, "image_tag": "local"},
    "production": {"autoscaler": "ScaledObject", "ingress_replicas": 3, "spread": True},
    "hpa": {"autoscaler": "HorizontalPodAutoscaler"},
}


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

    if by_kind.get("Secret"):
        p("a Secret is rendered: secrets are created out of band, never committed")
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
            db = env.get("DATABASE_URL", {}).get("valueFrom", {}).get("secretKeyRef", {})
            if db.get("name") != "sepay-secrets" or db.get("key") != "DATABASE_URL":
                p(f"{cwho}: DATABASE_URL must come from Secret sepay-secrets key DATABASE_URL")
            for e in c.get("env", []):
                if "value" in e and re.search(r"(?i)(password|secret|token)", e["name"]):
                    p(f"{cwho}: {e['name']} has a literal value; use a Secret")
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

    # Ingresses: one routes the webhook path, one the admin pages (connector)
    ingresses = by_kind.get("Ingress", [])
    all_paths = [
        (ing["metadata"]["name"], pa)
        for ing in ingresses
        for rule in ing["spec"].get("rules", [])
        for pa in rule.get("http", {}).get("paths", [])
    ]
    if not any(pa.get("path") == "/api/v1/webhooks/sepay" for _, pa in all_paths):
        p("no Ingress rule for /api/v1/webhooks/sepay")
    if not any(pa.get("backend", {}).get("service", {}).get("name") == "sepay-connector" for _, pa in all_paths):
        p("no Ingress rule for the connector's admin pages")
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
    return problems


# --------------------------------------------------------------------------- compose
def cmd_compose(path: str) -> list[str]:
    problems: list[str] = []
    p = problems.append
    root = Path(path).resolve().parent
    with open(path, encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    services = doc.get("services", {})
    for want in ("postgres", "nats", "otel-collector", "jaeger", "migrate", "ingress", "processor"):
        if want not in services:
            p(f"service {want} missing")
    commands = {
        "migrate": ["sepayctl", "migrate"],
        "ingress": ["sepay-ingress"],
        "processor": ["sepay-processor"],
        "provisioner": ["sepay-provisioner"],
        "connector": ["sepay-connector"],
        "demo": ["sepayctl", "demo"],
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
            host = urlparse(str(env.get(key, ""))).hostname
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


def main(argv: list[str]) -> int:
    commands = {
        "split": (cmd_split, 2),
        "overlay": (cmd_overlay, 2),
        "compose": (cmd_compose, 1),
        "otel": (cmd_otel, 2),
        "dockerfile": (cmd_dockerfile, 1),
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
