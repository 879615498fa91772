#!/usr/bin/env python3
"""`make bench`: the gateway against baselines measured in the same run.

Everything runs on loopback, every load is bounded in time, every process is
stopped at the end (and on Ctrl-C).  The machine has 2 cores and is shared:
read the ratios, not the absolute figures.  Each cell is the median of
BENCH_RUNS runs; a run during which processes outside the benchmark used
more than BENCH_NOISE_MAX cores is repeated (at most BENCH_EXTRA=1 extra run
per cell, none while the outside load persists) and the quietest runs are
kept; the "noise" column shows that foreign CPU (in cores).

Sections (bench/README.md says what each one measures and against what):
  1  tools/call through /mcp (echo, 300-byte POST), c1/c16/c64; the socket's
     owner in the same worker (1 worker) and forced through the mailbox;
     2 workers; baselines: nginx `return 200` on the same POST, a direct
     WebSocket round trip to the same reverse server, the SDK gateway
  2  idle registered reverse sockets (5 tools each): worker RSS and zone
     pages per socket at 1,000 and 10,000; the SDK gateway's RSS
  3  tools/list over 100, 1,000, 10,000 tools (10 per server); baseline:
     nginx sending the same bytes from a file; the SDK gateway at 10,000
  4  connect storm: 2,000 servers dial at once, time until /status counts
     them all and every one is callable; the SDK gateway
  5  1 MiB tool results, MB/s; baseline: the same result over a direct
     WebSocket (no gateway); the SDK gateway

Environment: BENCH_RUNS (3), BENCH_DUR (2 s per load run), BENCH_BUDGET
(seconds for the whole run, 500), BENCH_SECTIONS (e.g. "1,5"),
BENCH_IDLE_N ("1000,10000"), BENCH_NOISE_MAX (0.3 cores).
Results: bench/results/latest.md (tables) and latest.json (every run).
"""

import atexit
import http.client
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BUILD = os.path.join(ROOT, "build")
MODULE = os.environ.get("BENCH_MODULE", os.path.join(BUILD, "ngx_http_reverse_mcp_module.so"))
MCPFAST = os.path.join(BUILD, "mcpfast")
NGINX = os.environ.get("NGINX", "/usr/sbin/nginx")
LUA = os.path.join(HERE, "mcp.lua")
PEER = os.path.join(HERE, "peer", "gateway.mjs")
RESULTS = os.path.join(HERE, "results")
WORK = os.path.join(BUILD, "bench")

RUNS = int(os.environ.get("BENCH_RUNS", "3"))
DUR = float(os.environ.get("BENCH_DUR", "2"))
BUDGET = float(os.environ.get("BENCH_BUDGET", "500"))
NOISE_MAX = float(os.environ.get("BENCH_NOISE_MAX", "0.3"))
EXTRA = int(os.environ.get("BENCH_EXTRA", "1"))
SECTIONS = set(os.environ.get("BENCH_SECTIONS", "1,2,3,4,5").split(","))
IDLE_N = [int(x) for x in os.environ.get("BENCH_IDLE_N", "1000,10000").split(",") if x]
TOKEN = "bench-token"
HZ = os.sysconf("SC_CLK_TCK")
T_START = time.monotonic()

procs = []            # every long-running process we started
results = {"runs": {}, "cells": {}, "notes": []}


def log(msg):
    print(f"[{time.monotonic() - T_START:6.1f}s] {msg}", flush=True)


def left():
    return BUDGET - (time.monotonic() - T_START)


def note(msg):
    results["notes"].append(msg)
    log("NOTE " + msg)


# ---------------------------------------------------------------- processes

def spawn(cmd, logname, env=None):
    f = open(os.path.join(WORK, logname), "ab")
    p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env,
                         start_new_session=True)
    procs.append(p)
    return p


def stop(p, sig=signal.SIGTERM, wait=5):
    if p is None or p.poll() is not None:
        return
    try:
        os.killpg(p.pid, sig)
    except ProcessLookupError:
        return
    try:
        p.wait(wait)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait(5)


def stop_all():
    for p in procs:
        stop(p, wait=3)


atexit.register(stop_all)
signal.signal(signal.SIGTERM, lambda *a: sys.exit(1))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def children(pid):
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                st = f.read()
        except OSError:
            continue
        if int(st.rsplit(")", 1)[1].split()[1]) == pid:
            out.append(int(d))
    return out


def proc_status(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def proc_cpu(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / HZ
    except OSError:
        return 0.0


def busy_seconds():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return (sum(v) - v[3] - v[4]) / HZ


class CpuWatch:
    """Foreign CPU (cores) during a run: all busy time less ours."""

    def __init__(self, pids):
        self.pids = pids

    def __enter__(self):
        self.t = time.monotonic()
        self.busy = busy_seconds()
        self.mine = sum(proc_cpu(p) for p in self.pids)
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.kids = ru.ru_utime + ru.ru_stime
        return self

    def __exit__(self, *a):
        wall = time.monotonic() - self.t
        busy = busy_seconds() - self.busy
        mine = sum(proc_cpu(p) for p in self.pids) - self.mine
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        mine += ru.ru_utime + ru.ru_stime - self.kids
        self.noise = max(0.0, (busy - mine) / wall) if wall > 0 else 0.0


# ---------------------------------------------------------------- HTTP helpers

def http_req(port, method, path, body=None, headers=None, timeout=10):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    h = {"Content-Type": "application/json",
         "Accept": "application/json, text/event-stream"}
    h.update(headers or {})
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    data = r.read()
    hdrs = {k.lower(): v for k, v in r.getheaders()}
    c.close()
    return r.status, hdrs, data


def mcp_session(port, path):
    st, h, _ = http_req(port, "POST", path, json.dumps({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "bench", "version": "1"}}}))
    sid = h.get("mcp-session-id")
    if st != 200 or not sid:
        raise RuntimeError(f"initialize on {port}{path}: HTTP {st}")
    hd = {"Mcp-Session-Id": sid, "MCP-Protocol-Version": "2025-06-18"}
    http_req(port, "POST", path, '{"jsonrpc":"2.0","method":"notifications/initialized"}', hd)
    return sid


def mcp_call(port, path, sid, body):
    st, h, data = http_req(port, "POST", path, body,
                           {"Mcp-Session-Id": sid, "MCP-Protocol-Version": "2025-06-18"},
                           timeout=30)
    return st, data


def wait_for(cond, timeout, step=0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(step)
    return cond()


# ---------------------------------------------------------------- bodies

def body_file(name, text):
    p = os.path.join(WORK, name)
    with open(p, "w") as f:
        f.write(text)
    return p


def echo_body(tool):
    empty = ('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"%s",'
             '"arguments":{"text":""}}}' % tool)
    return empty.replace('"text":""', '"text":"%s"' % ("a" * (300 - len(empty))))


def blob_body(tool, n):
    return ('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"%s",'
            '"arguments":{"bytes":%d}}}' % (tool, n))


LIST_BODY = '{"jsonrpc":"2.0","id":1,"method":"tools/list"}'


# ---------------------------------------------------------------- gateways

class Nginx:
    def __init__(self, workers, nservers, zone="128m", extra_http=""):
        self.dir = os.path.join(WORK, "nginx")
        shutil.rmtree(self.dir, ignore_errors=True)
        for d in ("logs", "temp", "static"):
            os.makedirs(os.path.join(self.dir, d), exist_ok=True)
        self.http = free_port()
        self.http_rp = free_port()
        self.ws = free_port()
        servers = "\n".join(f"        server b{i} token={TOKEN};" for i in range(nservers))
        ret = echo_result_text()
        conf = f"""load_module {MODULE};
worker_processes {workers};
worker_rlimit_nofile 20000;
daemon off;
error_log logs/error.log warn;
pid logs/nginx.pid;
events {{ worker_connections 16000; }}
http {{
    access_log off;
    keepalive_requests 100000;
    client_body_temp_path temp/body;
    proxy_temp_path temp/proxy;
    fastcgi_temp_path temp/fastcgi;
    uwsgi_temp_path temp/uwsgi;
    scgi_temp_path temp/scgi;
    reverse_mcp_zone bench:{zone};
    reverse_mcp_max_message 64m;
    reverse_mcp_agent bench {{
        max_servers 20000;
        max_tools 1000000;
{servers}
    }}
    server {{
        listen 127.0.0.1:{self.ws} backlog=4096;
        location /ws {{ reverse_mcp_connector bench; }}
    }}
    server {{
        listen 127.0.0.1:{self.http} backlog=4096;
        # reuseport: the kernel spreads connections over the workers (used
        # by the cells that sort calls by owner, so that both kinds occur)
        listen 127.0.0.1:{self.http_rp} backlog=4096 reuseport;
        location = /status {{ reverse_mcp_status; }}
        location /mcp {{
            reverse_mcp_endpoint bench;
            reverse_mcp_page_size 100000;
        }}
        location /mcpmb {{
            reverse_mcp_endpoint bench;
            reverse_mcp_page_size 100000;
            reverse_mcp_force_mailbox on;
        }}
        # the same, with the worker that served and the socket's owner in
        # the reply (mcpfast http sorts latencies by them)
        location /mcpx {{
            reverse_mcp_endpoint bench;
            add_header X-Pid $pid;
            add_header X-Owner $reverse_mcp_owner_pid;
        }}
        location /mcpxmb {{
            reverse_mcp_endpoint bench;
            reverse_mcp_force_mailbox on;
            add_header X-Pid $pid;
            add_header X-Owner $reverse_mcp_owner_pid;
        }}
        location = /ret {{
            default_type application/json;
            return 200 '{ret}';
        }}
        location /static/ {{ root {self.dir}; default_type application/json; }}
{extra_http}
    }}
}}
"""
        with open(os.path.join(self.dir, "nginx.conf"), "w") as f:
            f.write(conf)
        self.p = spawn([NGINX, "-p", self.dir, "-c", "nginx.conf"], "nginx.out")
        ok = wait_for(lambda: self._up(), 20)
        if not ok:
            raise RuntimeError("nginx did not start: see " + self.dir + "/logs/error.log")
        self.workers = wait_for(lambda: len(children(self.p.pid)) == workers
                                and children(self.p.pid), 5) or []

    def _up(self):
        try:
            return http_req(self.http, "GET", "/status", timeout=2)[0] == 200
        except OSError:
            return False

    def pids(self):
        return [self.p.pid] + self.workers

    def status(self):
        st, _, data = http_req(self.http, "GET", "/status", timeout=30)
        return json.loads(data)

    def servers_count(self):
        # regex, not json: the page is large with thousands of servers
        _, _, data = http_req(self.http, "GET", "/status", timeout=30)
        m = re.search(rb'"servers_count":(\d+)', data)
        return int(m.group(1)) if m else 0

    def rss(self):
        return {"anon": sum(proc_status(p, "RssAnon") for p in self.workers),
                "vmrss": sum(proc_status(p, "VmRSS") for p in self.workers),
                "shmem": sum(proc_status(p, "RssShmem") for p in self.workers)}

    def stop(self):
        stop(self.p, signal.SIGTERM, 10)


def echo_result_text():
    # what the gateway answers to the echo call: the raw nginx baseline
    # sends a body of the same size
    t = "a" * (300 - len('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"b0__echo",'
                         '"arguments":{"text":""}}}'))
    return '{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"%s"}]}}' % t


class Peer:
    def __init__(self, nservers):
        self.http = free_port()
        self.ws = free_port()
        self.p = spawn(["node", "--expose-gc", "--max-old-space-size=4096", PEER,
                        "--http-port", str(self.http), "--ws-port", str(self.ws),
                        "--servers", str(nservers), "--token", TOKEN,
                        "--max-seconds", str(int(BUDGET) + 60)], "peer.out")
        if not wait_for(lambda: self._up(), 20):
            raise RuntimeError("the SDK gateway did not start: see build/bench/peer.out")

    def _up(self):
        try:
            return http_req(self.http, "GET", "/status", timeout=2)[0] == 200
        except OSError:
            return False

    def pids(self):
        return [self.p.pid]

    def status(self, gc=False):
        return json.loads(http_req(self.http, "GET", "/status?gc=1" if gc else "/status",
                                   timeout=60)[2])

    def servers_count(self):
        return self.status()["servers"]

    def stop(self):
        stop(self.p, signal.SIGTERM, 10)


class Servers:
    """mcpfast serve: N reverse servers b0..bN-1 dialling ws_port."""

    def __init__(self, ws_port, count, tools=5, parallel=1000):
        self.ready = os.path.join(WORK, f"ready.{ws_port}.{count}")
        if os.path.exists(self.ready):
            os.unlink(self.ready)
        self.count = count
        self.t0 = time.monotonic()
        self.p = spawn([MCPFAST, "serve", "--url", f"ws://127.0.0.1:{ws_port}/ws",
                        "--prefix", "b", "--count", str(count), "--tools", str(tools),
                        "--token", TOKEN, "--parallel", str(parallel),
                        "--ready-file", self.ready,
                        "--max-seconds", str(int(BUDGET) + 60)], "mcpfast.out")

    def wait_ready(self, timeout):
        r = wait_for(lambda: os.path.exists(self.ready), timeout, 0.01)
        if not r:
            return None
        with open(self.ready) as f:
            parts = f.read().split()
        return {"listed": int(parts[1]), "ms": float(parts[2]), "failed": int(parts[4])}

    def pids(self):
        return [self.p.pid]

    def stop(self):
        stop(self.p, signal.SIGTERM, 10)


# ---------------------------------------------------------------- load runs

def run_wrk(url, conc, dur, env):
    th = 1 if conc == 1 else 2
    cmd = ["wrk", f"-t{th}", f"-c{conc}", f"-d{max(1, round(dur))}s", "--timeout", "5s",
           "-s", LUA, url]
    e = dict(os.environ)
    e.update(env)
    out = subprocess.run(cmd, capture_output=True, text=True, env=e, timeout=dur + 30)
    m = re.search(r"WRKJSON (\{.*\})", out.stdout)
    if not m:
        raise RuntimeError("wrk: " + out.stdout[-500:] + out.stderr[-500:])
    r = json.loads(m.group(1))
    r["errors"] = sum(r[k] for k in ("err_connect", "err_read", "err_write",
                                     "err_status", "err_timeout"))
    r["mbps"] = r["bytes"] / (r["duration_us"] / 1e6) / 1e6
    return r


def run_direct(conc, dur, blob=0):
    port = free_port()
    cmd = [MCPFAST, "direct", "--port", str(port), "--conc", str(conc),
           "--seconds", str(dur), "--warmup", "0.3", "--max-seconds", str(dur + 20)]
    if blob:
        cmd += ["--blob", str(blob)]
    d = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.1)
    s = Servers(port, 1)
    try:
        out, err = d.communicate(timeout=dur + 30)
    finally:
        s.stop()
    if d.returncode != 0:
        raise RuntimeError("direct: " + err[-300:])
    r = json.loads(out.strip().splitlines()[-1])
    r["errors"] = 0
    return r


recent_noise = []    # the median noise of the last cells


def run_http(port, path, sid, body, conns, inflight, dur):
    """mcpfast http: latencies sorted by owner (local / another worker)."""
    cmd = [MCPFAST, "http", "--port", str(port), "--path", path, "--sid", sid,
           "--body", body, "--conns", str(conns), "--inflight", str(inflight),
           "--seconds", str(dur), "--warmup", "0.3"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=dur + 30)
    if out.returncode != 0:
        raise RuntimeError("mcpfast http: " + out.stderr[-300:])
    r = json.loads(out.stdout.strip().splitlines()[-1])
    for k in ("local", "cross"):
        if r[f"{k}_n"] < 50:          # too few to say: not in the medians
            r[f"{k}_p50_us"] = r[f"{k}_p99_us"] = None
    r["cross_share"] = r["cross_n"] / max(1, r["requests"])
    return r


def cell(key, fn, pids, runs=None):
    """Run fn() RUNS times (once more if noisy), keep the quietest, median.

    No extra run while the load from outside is persistent (the last two
    cells were noisy too): waiting would not make it quieter."""
    runs = runs or RUNS
    extra = EXTRA
    if len(recent_noise) >= 2 and min(recent_noise[-2:]) > NOISE_MAX:
        extra = 0
    got = []
    tries = 0
    while tries < runs + extra:
        tries += 1
        with CpuWatch(pids()) as w:
            try:
                r = fn()
            except Exception as e:  # noqa: BLE001 (a failed run is reported)
                note(f"{key}: run failed: {e}")
                r = None
        if r is None:
            continue
        r["noise"] = round(w.noise, 3)
        got.append(r)
        quiet = [x for x in got if x["noise"] <= NOISE_MAX]
        if len(quiet) >= runs:
            break
        if len(got) >= runs and left() < 60:
            break
    results["runs"][key] = got
    if not got:
        results["cells"][key] = None
        return None
    keep = sorted(got, key=lambda x: x["noise"])[:runs]
    med = {}
    for k in keep[0]:
        vals = [x[k] for x in keep if isinstance(x.get(k), (int, float))]
        if vals:
            med[k] = statistics.median(vals)
    for k in ("local_n", "cross_n", "requests"):
        if k in keep[0]:
            med[k + "_sum"] = sum(x[k] for x in keep)
    med["n"] = f"{len(keep)}/{len(got)}"
    recent_noise.append(med.get("noise", 0))
    results["cells"][key] = med
    log(f"{key}: rps {med.get('rps', 0):,.0f}  p50 {med.get('p50_us', 0):.0f} us  "
        f"p99 {med.get('p99_us', 0):.0f} us  noise {med['noise']:.2f}  n={med['n']}"
        + (f"  errors {med['errors']:.0f}" if med.get("errors") else ""))
    return med


def check_echo(port, path, sid, tool="b0__echo"):
    st, data = mcp_call(port, path, sid, echo_body(tool))
    if st != 200 or b'"result"' not in data or b"aaaa" not in data:
        raise RuntimeError(f"echo check on {path}: HTTP {st}: {data[:200]!r}")


def callable_check(port, path, sid, n, dur):
    """Calls cycling over b0..b<n-1>: every reply must be a result."""
    bf = body_file("echo.json", echo_body("b0__echo"))
    r = run_wrk(f"http://127.0.0.1:{port}{path}", 16, dur,
                {"WRK_BODY_FILE": bf, "MCP_SID": sid, "WRK_CYCLE": str(n),
                 "WRK_THREADS": "2"})
    # thread k called b<k>, b<k+2>, ...: all are covered when the slower
    # thread made n/2 calls
    return {"calls": r["checked"], "failed": r["bad_bodies"] + r["errors"],
            "covers_all": r["checked_min_thread"] >= (n + 1) // 2}


# ---------------------------------------------------------------- sections

CONCS = [1, 16, 64]
BLOB = 1 << 20
BLOB16 = 16 << 20          # big16.* cells (reverse_mcp_max_message 64m)


def section_calls():
    echo = body_file("echo.json", echo_body("b0__echo"))
    blob = body_file("blob.json", blob_body("b0__blob", BLOB))
    blob16 = body_file("blob16.json", blob_body("b0__blob", BLOB16))
    echo_direct_note = ("direct: the same tools/call (tool \"echo\") over one WebSocket to the "
                        "same mcpfast server, c requests in flight")
    results["notes"].append(echo_direct_note)

    for workers in (1, 2):
        ng = Nginx(workers, 10)
        srv = Servers(ng.ws, 1)
        try:
            if not srv.wait_ready(10) or not wait_for(lambda: ng.servers_count() == 1, 10):
                raise RuntimeError("b0 did not register")
            sid = mcp_session(ng.http, "/mcp")
            check_echo(ng.http, "/mcp", sid)
            check_echo(ng.http, "/mcpmb", sid)
            pids = lambda: ng.pids() + srv.pids()  # noqa: E731
            for c in CONCS:
                for name, path, extra in (("raw", "/ret", {}),
                                          ("gw", "/mcp", {"MCP_SID": sid}),
                                          ("mb", "/mcpmb", {"MCP_SID": sid})):
                    env = {"WRK_BODY_FILE": echo}
                    env.update(extra)
                    cell(f"calls.{name}.{workers}w.c{c}",
                         lambda: run_wrk(f"http://127.0.0.1:{ng.http}{path}", c, DUR, env), pids)
            if workers == 2:
                # owner here vs owner in the other worker, same nginx, same run
                for name, path in (("cls", "/mcpx"), ("clsmb", "/mcpxmb")):
                    for c, conns in ((1, 8), (64, 64)):
                        cell(f"calls.{name}.2w.c{c}",
                             lambda: run_http(ng.http_rp, path, sid, echo, conns, c, DUR),
                             pids)
            if workers == 1 and "5" in SECTIONS:
                for tag, size, body in (("big", BLOB, blob), ("big16", BLOB16, blob16)):
                    for name, path in (("gw", "/mcp"), ("mb", "/mcpmb")):
                        st, data = mcp_call(ng.http, path, sid, blob_body("b0__blob", size))
                        if st != 200 or len(data) < size:
                            raise RuntimeError(f"blob check {path}: HTTP {st} {len(data)} bytes")
                        cell(f"{tag}.{name}.c1",
                             lambda: run_wrk(f"http://127.0.0.1:{ng.http}{path}", 1, DUR,
                                             {"WRK_BODY_FILE": body, "MCP_SID": sid}), pids)
        finally:
            srv.stop()
            ng.stop()

    for c in CONCS:
        cell(f"calls.direct.c{c}", lambda: run_direct(c, DUR), lambda: [])
    if "5" in SECTIONS:
        cell("big.direct.c1", lambda: run_direct(1, DUR, BLOB), lambda: [])
        cell("big16.direct.c1", lambda: run_direct(1, DUR, BLOB16), lambda: [])

    peer = Peer(10)
    srv = Servers(peer.ws, 1)
    try:
        if not srv.wait_ready(10) or not wait_for(lambda: peer.servers_count() == 1, 10):
            raise RuntimeError("b0 did not register with the SDK gateway")
        sid = mcp_session(peer.http, "/mcp")
        check_echo(peer.http, "/mcp", sid)
        pids = lambda: peer.pids() + srv.pids()  # noqa: E731
        for c in CONCS:
            cell(f"calls.sdk.c{c}",
                 lambda: run_wrk(f"http://127.0.0.1:{peer.http}/mcp", c, DUR,
                                 {"WRK_BODY_FILE": echo, "MCP_SID": sid}), pids)
        if "5" in SECTIONS:
            cell("big.sdk.c1",
                 lambda: run_wrk(f"http://127.0.0.1:{peer.http}/mcp", 1, DUR,
                                 {"WRK_BODY_FILE": blob, "MCP_SID": sid}), pids)
    finally:
        srv.stop()
        peer.stop()


def section_idle():
    for n in IDLE_N:
        if left() < 30 + n / 200:
            note(f"idle {n}: skipped, not enough time left in BENCH_BUDGET")
            continue
        # the module, 2 workers (the normal deployment)
        ng = Nginx(2, max(IDLE_N))
        srv = None
        try:
            sid = mcp_session(ng.http, "/mcp")
            for _ in range(20):
                http_req(ng.http, "POST", "/mcp", LIST_BODY,
                         {"Mcp-Session-Id": sid, "MCP-Protocol-Version": "2025-06-18"})
            time.sleep(0.3)
            st0 = ng.status()["zone"]
            base = ng.rss()
            t0 = time.monotonic()
            srv = Servers(ng.ws, n, tools=5)
            rd = srv.wait_ready(60)
            reg = wait_for(lambda: ng.servers_count() >= n, 30, 0.2)
            t_reg = time.monotonic() - t0
            time.sleep(1.0)
            after = ng.rss()
            st = ng.status()
            conns = {s["owner_pid"] for a in st["agents"] for s in a["servers"]}
            split = [sum(1 for a in st["agents"] for s in a["servers"] if s["owner_pid"] == p)
                     for p in sorted(conns)]
            z = st["zone"]
            pages = (st0["pages_free"] - z["pages_free"])
            cc = callable_check(ng.http, "/mcp", sid, n, max(2.0, n / 1000))
            res = {"n": n, "registered": st["agents"][0]["servers_count"],
                   "ready": rd, "seconds_to_register": round(t_reg, 2),
                   "anon_per_socket": (after["anon"] - base["anon"]) / n,
                   "vmrss_per_socket": (after["vmrss"] - base["vmrss"]) / n,
                   "shmem_rss_per_socket": (after["shmem"] - base["shmem"]) / n,
                   "zone_bytes_per_server": pages * 4096 / n,
                   "zone_pages_used": z["pages_total"] - z["pages_free"],
                   "zone_pages_total": z["pages_total"], "per_worker": split,
                   "base_anon": base["anon"], "after_anon": after["anon"],
                   "callable": cc, "registered_ok": bool(reg)}
            results["cells"][f"idle.gw.{n}"] = res
            log(f"idle module {n}: {res['anon_per_socket']:.0f} B anon/socket, "
                f"{res['zone_bytes_per_server']:.0f} B zone/server, split {split}, "
                f"callable {cc}")
        except Exception as e:  # noqa: BLE001
            note(f"idle module {n}: failed: {e}")
        finally:
            if srv:
                srv.stop()
            ng.stop()

        if left() < 20 + n / 150:
            note(f"idle {n}, SDK gateway: skipped, not enough time left")
            continue
        peer = Peer(max(IDLE_N))
        srv = None
        try:
            sid = mcp_session(peer.http, "/mcp")
            for _ in range(20):
                http_req(peer.http, "POST", "/mcp", LIST_BODY,
                         {"Mcp-Session-Id": sid, "MCP-Protocol-Version": "2025-06-18"})
            peer.status(gc=True)
            base = proc_status(peer.p.pid, "RssAnon")
            t0 = time.monotonic()
            srv = Servers(peer.ws, n, tools=5)
            srv.wait_ready(120)
            reg = wait_for(lambda: peer.servers_count() >= n, 60, 0.2)
            t_reg = time.monotonic() - t0
            time.sleep(1.0)
            s = peer.status(gc=True)
            after = proc_status(peer.p.pid, "RssAnon")
            res = {"n": n, "registered": s["servers"], "seconds_to_register": round(t_reg, 2),
                   "anon_per_socket": (after - base) / n, "heap_used": s["heap_used"],
                   "registered_ok": bool(reg)}
            results["cells"][f"idle.sdk.{n}"] = res
            log(f"idle SDK gateway {n}: {res['anon_per_socket']:.0f} B anon/socket")
        except Exception as e:  # noqa: BLE001
            note(f"idle SDK gateway {n}: failed: {e}")
        finally:
            if srv:
                srv.stop()
            peer.stop()


def section_list():
    sizes = [10, 100, 1000]           # servers x 10 tools
    ng = Nginx(2, 1000)
    try:
        sid = mcp_session(ng.http, "/mcp")
        lb = body_file("list.json", LIST_BODY)
        pids = lambda: ng.pids()  # noqa: E731
        for s in sizes:
            srv = Servers(ng.ws, s, tools=10)
            try:
                srv.wait_ready(30)
                if not wait_for(lambda: ng.servers_count() == s, 30, 0.1):
                    raise RuntimeError(f"{s} servers did not register")
                st, data = mcp_call(ng.http, "/mcp", sid, LIST_BODY)
                ntools = data.count(b'"inputSchema"')
                if st != 200 or ntools != s * 10:
                    raise RuntimeError(f"tools/list: HTTP {st}, {ntools} tools")
                with open(os.path.join(ng.dir, "static", f"list{s}.json"), "wb") as f:
                    f.write(data)
                results["cells"][f"list.size.{s * 10}"] = len(data)
                cell(f"list.gw.{s * 10}",
                     lambda: run_wrk(f"http://127.0.0.1:{ng.http}/mcp", 1, DUR,
                                     {"WRK_BODY_FILE": lb, "MCP_SID": sid}), pids)
                cell(f"list.static.{s * 10}",
                     lambda: run_wrk(f"http://127.0.0.1:{ng.http}/static/list{s}.json", 1, DUR,
                                     {"WRK_METHOD": "GET"}), pids)
            finally:
                srv.stop()
                wait_for(lambda: ng.servers_count() == 0, 10, 0.05)
    finally:
        ng.stop()

    if left() < 40:
        note("tools/list on the SDK gateway: skipped, not enough time left")
        return
    peer = Peer(1000)
    srv = Servers(peer.ws, 1000, tools=10)
    try:
        srv.wait_ready(60)
        if not wait_for(lambda: peer.servers_count() == 1000, 60, 0.1):
            raise RuntimeError("1000 servers did not register with the SDK gateway")
        sid = mcp_session(peer.http, "/mcp")
        cell("list.sdk.10000",
             lambda: run_wrk(f"http://127.0.0.1:{peer.http}/mcp", 1, DUR,
                             {"WRK_BODY_FILE": body_file("list.json", LIST_BODY),
                              "MCP_SID": sid}), lambda: peer.pids() + srv.pids())
    except Exception as e:  # noqa: BLE001
        note(f"tools/list on the SDK gateway failed: {e}")
    finally:
        srv.stop()
        peer.stop()


def storm_once(kind, n):
    g = Nginx(2, n) if kind == "gw" else Peer(n)
    srv = None
    try:
        if kind == "gw":
            sid = mcp_session(g.http, "/mcp")
        t0 = time.monotonic()
        srv = Servers(g.ws, n, tools=5, parallel=n)
        seen = wait_for(lambda: g.servers_count() >= n, 30, 0.05)
        t_status = time.monotonic() - t0
        rd = srv.wait_ready(5)
        r = {"seconds": t_status if seen else None,
             "client_all_listed_ms": rd["ms"] if rd else None,
             "failed": rd["failed"] if rd else None}
        if seen:
            r["per_second"] = n / t_status
        if kind == "gw" and seen:
            r["callable"] = callable_check(g.http, "/mcp", sid, n, 1.0)
        return r
    finally:
        if srv:
            srv.stop()
        g.stop()


def section_storm():
    n = 2000
    for kind in ("gw", "sdk"):
        got = []
        for _ in range(RUNS):
            if left() < 25:
                note(f"storm {kind}: stopped early, not enough time left")
                break
            try:
                got.append(storm_once(kind, n))
                log(f"storm {kind}: {got[-1]}")
            except Exception as e:  # noqa: BLE001
                note(f"storm {kind}: failed: {e}")
        results["runs"][f"storm.{kind}"] = got
        secs = [x["seconds"] for x in got if x["seconds"]]
        if secs:
            results["cells"][f"storm.{kind}"] = {
                "seconds": statistics.median(secs), "n": f"{len(secs)}/{len(got)}",
                "client_all_listed_ms": statistics.median(
                    [x["client_all_listed_ms"] for x in got if x["client_all_listed_ms"]] or [0]),
                "callable": got[-1].get("callable")}


# ---------------------------------------------------------------- report

def fmt_rate(v):
    return "—" if v is None else (f"{v:,.0f}" if v >= 100 else f"{v:,.1f}")


def fmt_us(v):
    return "—" if v is None else (f"{v / 1000:.2f} ms" if v >= 10000 else f"{v:.0f} µs")


def fmt_bytes(v):
    return "—" if v is None else (f"{v / 1024:.1f} KiB" if abs(v) >= 1024 else f"{v:.0f} B")


def report():
    C = results["cells"]

    def g(key, field):
        c = C.get(key)
        return None if not c else c.get(field)

    rows = []   # metric, gateway, baseline (what), ratio, target

    def ratio(a, b, fmt="{:.2f}×"):
        return "—" if a is None or b in (None, 0) else fmt.format(a / b)

    def verdict(ok):
        return "" if ok is None else (" ✔" if ok else " ✘")

    for c in CONCS:
        gw, mb, raw = (g(f"calls.{k}.1w.c{c}", "rps") for k in ("gw", "mb", "raw"))
        dr, sdk = g(f"calls.direct.c{c}", "rps"), g(f"calls.sdk.c{c}", "rps")
        t1 = "≥ 0.40" if c == 64 else ""
        ok1 = (gw / raw >= 0.40) if (c == 64 and gw and raw) else None
        rows.append((f"tools/call c{c}, calls/s, same worker", fmt_rate(gw),
                     f"nginx `return 200`, same POST: {fmt_rate(raw)}", ratio(gw, raw),
                     t1 + verdict(ok1)))
        ok2 = (gw / sdk >= 20) if (c == 64 and gw and sdk) else None
        rows.append((f"tools/call c{c}, calls/s, same worker", fmt_rate(gw),
                     f"SDK gateway: {fmt_rate(sdk)}", ratio(gw, sdk),
                     ("≥ 20×" if c == 64 else "") + verdict(ok2)))
        rows.append((f"tools/call c{c}, calls/s, same worker", fmt_rate(gw),
                     f"direct WebSocket round trip: {fmt_rate(dr)}", ratio(gw, dr), ""))
        ok3 = (mb / gw >= 0.70) if (mb and gw) else None
        rows.append((f"tools/call c{c}, calls/s, forced mailbox", fmt_rate(mb),
                     f"same worker: {fmt_rate(gw)}", ratio(mb, gw), "≥ 0.70" + verdict(ok3)))
        g2, m2, r2 = (g(f"calls.{k}.2w.c{c}", "rps") for k in ("gw", "mb", "raw"))
        rows.append((f"tools/call c{c}, calls/s, 2 workers (owner in either"
                     + ("; wrk's one connection is on one of them" if c == 1 else "") + ")",
                     fmt_rate(g2),
                     f"nginx `return 200`, 2 workers: {fmt_rate(r2)}", ratio(g2, r2), ""))
        rows.append((f"tools/call c{c}, calls/s, 2 workers, forced mailbox", fmt_rate(m2),
                     f"2 workers, owner in either: {fmt_rate(g2)}", ratio(m2, g2), ""))
        dp50 = g(f"calls.direct.c{c}", "p50_us")

        def added(label, p50, tgt):
            add = None if p50 is None or dp50 is None else p50 - dp50
            ok = (add <= tgt) if (tgt and add is not None) else None
            rows.append((f"tools/call c{c}, p50, {label}", fmt_us(p50),
                         f"direct WebSocket round trip: {fmt_us(dp50)}",
                         "—" if add is None else f"+{add:.0f} µs",
                         (f"≤ +{tgt} µs" if tgt else "") + verdict(ok)))

        added("same worker (1 worker)", g(f"calls.gw.1w.c{c}", "p50_us"), 100 if c == 1 else 0)
        added("forced mailbox (1 worker: the mailbox without a cross-CPU wake-up)",
              g(f"calls.mb.1w.c{c}", "p50_us"), 0)
        if C.get(f"calls.cls.2w.c{c}"):
            added("2 workers, owner = the worker that took the request",
                  g(f"calls.cls.2w.c{c}", "local_p50_us"), 100 if c == 1 else 0)
            added("2 workers, owner = the other worker",
                  g(f"calls.cls.2w.c{c}", "cross_p50_us"), 200 if c == 1 else 0)
            x = C[f"calls.cls.2w.c{c}"]
            rows.append((f"tools/call c{c}, 2 workers: calls that crossed workers",
                         f"{x['cross_n_sum'] / max(1, x['requests_sum']) * 100:.0f} % "
                         f"of {x['requests_sum']:,.0f}", "", "", ""))
        p99 = g(f"calls.gw.1w.c{c}", "p99_us")
        rows.append((f"tools/call c{c}, p99, same worker", fmt_us(p99),
                     f"nginx `return 200`: {fmt_us(g(f'calls.raw.1w.c{c}', 'p99_us'))}; "
                     f"direct: {fmt_us(g(f'calls.direct.c{c}', 'p99_us'))}; "
                     f"SDK: {fmt_us(g(f'calls.sdk.c{c}', 'p99_us'))}", "", ""))

    for n in IDLE_N:
        m, s = C.get(f"idle.gw.{n}"), C.get(f"idle.sdk.{n}")
        if m:
            ok = m["anon_per_socket"] <= 4096 if n >= 10000 else None
            rows.append((f"idle reverse socket, {n:,} registered (5 tools), worker RSS",
                         fmt_bytes(m["anon_per_socket"]),
                         f"SDK gateway: {fmt_bytes(s['anon_per_socket']) if s else '—'}",
                         ratio(m["anon_per_socket"], s["anon_per_socket"] if s else None),
                         ("≤ 4 KiB" + verdict(ok)) if n >= 10000 else ""))
            rows.append((f"idle reverse socket, {n:,}: zone per server", fmt_bytes(
                m["zone_bytes_per_server"]), f"zone pages used {m['zone_pages_used']}"
                f"/{m['zone_pages_total']}", "", ""))
            cc = m.get("callable") or {}
            ok = bool(cc.get("covers_all")) and cc.get("failed") == 0 and m["registered"] == n
            rows.append((f"idle reverse socket, {n:,}: all registered and callable",
                         f"{m['registered']:,} registered, {cc.get('calls', 0):,} calls "
                         f"cycling over all, {cc.get('failed', '?')} failed",
                         f"sockets per worker {m['per_worker']}", "", "all" + verdict(ok)))

    sizes = [100, 1000, 10000]
    for t in sizes:
        p50, sp50 = g(f"list.gw.{t}", "p50_us"), g(f"list.static.{t}", "p50_us")
        ok = (p50 <= 10000) if (t == 10000 and p50) else None
        rows.append((f"tools/list, {t:,} tools ({fmt_bytes(C.get(f'list.size.{t}'))}), p50",
                     fmt_us(p50), f"nginx static file, same bytes: {fmt_us(sp50)}",
                     ratio(p50, sp50), ("≤ 10 ms" + verdict(ok)) if t == 10000 else ""))
    a, b = g("list.gw.1000", "p50_us"), g("list.gw.10000", "p50_us")
    if a and b:
        ok = b / a <= 12
        rows.append(("tools/list growth 1,000 → 10,000 tools", f"{b / a:.1f}×",
                     "linear: 10×", f"{b / a / 10:.2f}", "linear" + verdict(ok)))
    sdk = g("list.sdk.10000", "p50_us")
    if sdk:
        rows.append(("tools/list, 10,000 tools, p50", fmt_us(b), f"SDK gateway: {fmt_us(sdk)}",
                     ratio(b, sdk), ""))

    sm, ss = C.get("storm.gw"), C.get("storm.sdk")
    if sm:
        ok = sm["seconds"] <= 3.0
        cc = sm.get("callable") or {}
        rows.append(("connect storm: 2,000 servers dial at once, until /status counts all",
                     f"{sm['seconds']:.2f} s ({2000 / sm['seconds']:,.0f}/s)",
                     f"SDK gateway: {ss['seconds']:.2f} s" if ss else "SDK gateway: —",
                     ratio(sm["seconds"], ss["seconds"] if ss else None),
                     "≤ 3 s" + verdict(ok)))
        rows.append(("connect storm: all callable afterwards",
                     f"{cc.get('calls', 0):,} calls cycling over all, {cc.get('failed', '?')} failed",
                     f"client saw every tools/list answered at {sm['client_all_listed_ms']:.0f} ms",
                     "", ""))

    for tag, size in (("big", "1 MiB"), ("big16", "16 MiB")):
        for k, label in (("gw", "same worker"), ("mb", "forced mailbox"),
                         ("sdk", "SDK gateway")):
            key = f"{tag}.{k}.c1"
            base = f"{tag}.direct.c1"
            if C.get(key):
                rows.append((f"{size} results, c1, MB/s, {label}", f"{g(key, 'mbps'):,.0f}",
                             f"direct WebSocket (same server): {g(base, 'mbps') or 0:,.0f}",
                             ratio(g(key, "mbps"), g(base, "mbps")), ""))

    out = ["| metric | gateway | baseline (same run) | ratio | target |",
           "| --- | --- | --- | --- | --- |"]
    out += [f"| {a} | {b} | {c} | {d} | {e} |" for a, b, c, d, e in rows
            if b != "—"]          # sections not run leave no empty rows

    det = ["| path | c | calls/s | p50 | p99 | noise (cores) | runs kept/total |",
           "| --- | --- | --- | --- | --- | --- | --- |"]
    names = [("raw.1w", "nginx `return 200`, same POST, 1 worker"),
             ("gw.1w", "gateway /mcp, 1 worker (same worker)"),
             ("mb.1w", "gateway /mcp, 1 worker, forced mailbox"),
             ("raw.2w", "nginx `return 200`, 2 workers"),
             ("gw.2w", "gateway /mcp, 2 workers"),
             ("mb.2w", "gateway /mcp, 2 workers, forced mailbox"),
             ("direct", "direct WebSocket round trip (mcpfast, no gateway)"),
             ("sdk", "SDK gateway (bench/peer)")]
    for c in CONCS:
        for k, label in names:
            x = C.get(f"calls.{k}.c{c}")
            if x:
                det.append(f"| {label} | {c} | {fmt_rate(x.get('rps'))} | {fmt_us(x.get('p50_us'))}"
                           f" | {fmt_us(x.get('p99_us'))} | {x.get('noise', 0):.2f} | {x['n']} |")
    for c in CONCS:
        for k, label in (("cls", "gateway /mcp, 2 workers"),
                         ("clsmb", "gateway /mcp, 2 workers, forced mailbox")):
            x = C.get(f"calls.{k}.2w.c{c}")
            if not x:
                continue
            for w in ("local", "cross"):
                det.append(f"| {label}, owner = {'this' if w == 'local' else 'the other'} "
                           f"worker ({x.get(w + '_n_sum', 0):,.0f} calls; mcpfast http, "
                           f"{'8 connections, 1 in flight' if c == 1 else f'{c} connections'}) "
                           f"| {c} | {fmt_rate(x.get('rps'))} (all) | "
                           f"{fmt_us(x.get(w + '_p50_us'))} | {fmt_us(x.get(w + '_p99_us'))} | "
                           f"{x.get('noise', 0):.2f} | {x['n']} |")
    for key in sorted(k for k in C if k.startswith(("list.", "big")) and isinstance(C[k], dict)):
        x = C[key]
        det.append(f"| {key} | 1 | {fmt_rate(x.get('rps'))} | {fmt_us(x.get('p50_us'))} | "
                   f"{fmt_us(x.get('p99_us'))} | {x.get('noise', 0):.2f} | {x['n']} |")

    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"model name\s*:\s*(.*)", f.read())
            cpu = m.group(1) if m else ""
    except OSError:
        pass
    nv = subprocess.run([NGINX, "-v"], capture_output=True, text=True).stderr.strip()
    when = results.setdefault("date", time.strftime("%Y-%m-%d %H:%M:%S"))
    took = results.setdefault("seconds", round(time.monotonic() - T_START))
    head = (f"# make bench — {when}\n\n"
            f"{os.cpu_count()} cores ({cpu}); {nv}; node {subprocess.run(['node', '-v'], capture_output=True, text=True).stdout.strip()}; "
            f"medians of {RUNS} runs of {DUR:g} s (wrk; loopback). Ratios are within this run; "
            f"absolute figures depend on the (shared) machine.\n")
    text = (head + "\n## Summary\n\n" + "\n".join(out) + "\n\n## tools/call cells\n\n"
            + "\n".join(det) + "\n")
    if results["notes"]:
        text += "\n## Notes\n\n" + "\n".join(f"- {n}" for n in results["notes"]) + "\n"
    text += f"\nTotal time: {took} s (measuring; the build comes before).\n"
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "latest.md"), "w") as f:
        f.write(text)
    with open(os.path.join(RESULTS, "latest.json"), "w") as f:
        json.dump(results, f, indent=1, default=str)
    print("\n" + "\n".join(out) + "\n")
    print("written: bench/results/latest.md, bench/results/latest.json")


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--report":
        # render the tables again from a latest.json
        global RUNS, DUR
        with open(sys.argv[2]) as f:
            results.update(json.load(f))
        cfg = results.get("config", {})
        RUNS, DUR = cfg.get("runs", RUNS), cfg.get("dur", DUR)
        report()
        return
    results["config"] = {"runs": RUNS, "dur": DUR, "budget": BUDGET,
                         "idle_n": IDLE_N, "noise_max": NOISE_MAX}
    os.makedirs(WORK, exist_ok=True)
    for f in os.listdir(WORK):
        p = os.path.join(WORK, f)
        if os.path.isfile(p):
            os.unlink(p)
    for need in (MODULE, MCPFAST):
        if not os.path.exists(need):
            sys.exit(f"missing {need}: run `make bench` (it builds them)")
    log(f"runs {RUNS} x {DUR:g} s, budget {BUDGET:.0f} s, sections {sorted(SECTIONS)}")
    steps = [("1", section_calls), ("2", section_idle), ("3", section_list),
             ("4", section_storm)]
    for sec, fn in steps:
        if sec not in SECTIONS and not (sec == "1" and "5" in SECTIONS):
            continue
        if left() < 20:
            note(f"section {sec}: skipped, BENCH_BUDGET used up")
            continue
        log(f"--- section {sec}")
        try:
            fn()
        except Exception as e:  # noqa: BLE001
            note(f"section {sec} failed: {e}")
        stop_all()
    report()


if __name__ == "__main__":
    main()
