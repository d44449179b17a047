#!/usr/bin/env python3
"""Issue 14's acceptance probe of a release ingress, run by hand (docs/security.md):

1. a 20 s junk flood at full speed from one client, nothing scraping /metrics: RSS growth;
2. 3000 connections that never complete their headers: how long until the ingress closes them,
   and an honest delivery sent meanwhile (its status and latency);
3. RSS with those connections open.

    cargo build --release -p sepayctl -p sepay-dev && python3 .ci/probes/ingress_hardening.py

Uses Postgres and NATS at DATABASE_URL / NATS_URL (defaults: the local ones), a database and bus
prefix of its own.
"""
import json, os, select, socket, subprocess, sys, time, urllib.request, uuid

SEPAYCTL = os.environ.get("SEPAYCTL", "target/release/sepayctl")
SEPAY_DEV = os.environ.get("SEPAY_DEV", "target/release/sepay-dev")
PORT, ADMIN_PORT = 18080, 19080
STALLED = int(os.environ.get("STALLED", "3000"))
FLOOD_SECS = int(os.environ.get("FLOOD_SECS", "20"))
server = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/sepay").rsplit("/", 1)[0]
env = dict(
    os.environ,
    DATABASE_URL=f"{server}/sepay_probe_{uuid.uuid4().hex[:8]}",
    BUS_PREFIX=f"probe{uuid.uuid4().hex[:8]}",
    LOG_FORMAT="text",
    RUST_LOG="warn",
    SEPAY_DEV_MODE="true",
)


def ctl(*args):
    out = subprocess.run([SEPAYCTL, "--json", *args], env=env, check=True, capture_output=True, text=True)
    return json.loads(out.stdout) if out.stdout.strip() else None


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))


def deliver(url, auth, n):
    body = json.dumps({
        "id": 900000 + n, "gateway": "Vietcombank", "transactionDate": "2026-12-01 10:00:00",
        "accountNumber": "0071000888888", "code": None, "content": f"probe {n}", "transferType": "in",
        "transferAmount": 1000, "accumulated": 0, "subAccount": None, "referenceCode": f"P{n}",
        "description": "",
    }).encode()
    req = urllib.request.Request(url, body, {"Authorization": auth, "Content-Type": "application/json"})
    started = time.monotonic()
    with urllib.request.urlopen(req, timeout=60) as res:
        return res.status, time.monotonic() - started


ctl("migrate")
ws = ctl("workspace", "create", "--name", "Probe")["id"]
wallet = ctl("wallet", "create", "--ws", ws, "--name", "VCB")["id"]
endpoint = ctl("--public-base-url", f"http://127.0.0.1:{PORT}", "endpoint", "create", "--ws", ws, "--wallet", wallet)
url, auth = endpoint["webhook_url"], endpoint["authorization_header"]

ingress = subprocess.Popen(
    [SEPAY_DEV, "serve", "ingress", "--ingress-addr", f"127.0.0.1:{PORT}", "--ingress-admin-addr", f"127.0.0.1:{ADMIN_PORT}"],
    env=env, stdin=subprocess.DEVNULL,
)
report = {}
try:
    for _ in range(200):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{ADMIN_PORT}/readyz", timeout=1)
            break
        except Exception:
            time.sleep(0.1)
    for n in range(20):
        deliver(url, auth, n)

    # 1. junk at full speed from one client, nothing scraping
    junk = subprocess.Popen(
        [SEPAY_DEV, "junk", "--base", f"http://127.0.0.1:{PORT}", "--real-url", url, "--rate", "1000000"],
        env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    time.sleep(1)
    before = rss_kib(ingress.pid)
    time.sleep(FLOOD_SECS)
    junk.stdin.close()
    report["junk"] = junk.stdout.read().strip()
    junk.wait()
    after = rss_kib(ingress.pid)
    report["flood_rss_kib"] = {"before": before, "after": after, "grown": after - before}

    # 2. stalled connections: a request head begun, never finished
    idle_rss = rss_kib(ingress.pid)
    socks, opened_at = [], time.monotonic()
    for _ in range(STALLED):
        s = socket.create_connection(("127.0.0.1", PORT))
        s.sendall(b"POST /api/v1/webhooks/sepay/spwh_x HTTP/1.1\r\nHost: x\r\nContent-Type: applic")
        s.setblocking(False)
        socks.append(s)
    time.sleep(0.5)
    report["stalled_rss_kib"] = {"before": idle_rss, "with_stalled": rss_kib(ingress.pid)}
    status, latency = deliver(url, auth, 1000)
    report["honest_delivery_meanwhile"] = {"status": status, "seconds": round(latency, 3)}
    poller, by_fd, last_closed = select.poll(), {s.fileno(): s for s in socks}, 0.0
    for fd in by_fd:
        poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
    while by_fd and time.monotonic() - opened_at < 60:
        for fd, _ in poller.poll(1000):
            try:
                data = by_fd[fd].recv(4096)
            except (ConnectionResetError, BlockingIOError):
                data = b""
            if not data:
                poller.unregister(fd)
                by_fd.pop(fd).close()
                last_closed = time.monotonic() - opened_at
    open_socks = by_fd
    report["stalled"] = {"opened": STALLED, "still_open_after_60s": len(open_socks),
                         "all_closed_after_secs": round(last_closed, 1)}
finally:
    ingress.terminate()
    ingress.wait()
    subprocess.run(["psql", server.replace("postgres://", "postgresql://") + "/postgres", "-qc",
                    f"drop database if exists {env['DATABASE_URL'].rsplit('/', 1)[1]}"],
                   capture_output=True)
print(json.dumps(report, indent=2))
