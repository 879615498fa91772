#!/usr/bin/env python3
"""`make soak`: load held for SOAK_SECONDS (600) on loopback, then a verdict.

nginx with 2 workers and the module (bench/run.py's configuration), 1,000
reverse servers from one `mcpfast serve` process (bench/mcpfast.c), of which
all but the first SOAK_STABLE (50) churn: every second SOAK_CHURN (20) of
them close their WebSocket and dial again at once.  A steady tools/call
load (wrk with bench/mcp.lua: SOAK_CONNS connections on the reuseport
listener, so both workers take calls, each waiting SOAK_DELAY_MS between
requests) calls the echo tool of the stable servers b0..b49 in turn, so
calls cross workers through the mailbox as often as not.

Printed at the end (and written to bench/results/soak.md): calls made and
their errors, churned servers and failed reconnects, nginx error-log lines
at level error or worse, the registry zone's used pages and the workers'
RSS at the start, the middle and the end.  Exit status 0 when there were no
errors, every server is registered at the end and neither the zone nor the
RSS grew beyond SOAK_RSS_SLACK (10%) between the start and the end.
Everything stops by itself; Ctrl-C stops everything too.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import run as R  # noqa: E402  (bench/run.py: processes, nginx, servers)

SECONDS = float(os.environ.get("SOAK_SECONDS", "600"))
SERVERS = int(os.environ.get("SOAK_SERVERS", "1000"))
STABLE = int(os.environ.get("SOAK_STABLE", "50"))
CHURN = int(os.environ.get("SOAK_CHURN", "20"))
CONNS = int(os.environ.get("SOAK_CONNS", "8"))
DELAY_MS = int(os.environ.get("SOAK_DELAY_MS", "5"))
RSS_SLACK = float(os.environ.get("SOAK_RSS_SLACK", "0.10"))
WARMUP = 20.0
SAMPLE = 10.0


def zone_pages(ngx):
    _, _, data = R.http_req(ngx.http, "GET", "/status", timeout=30)
    z = re.search(rb'"pages_total":(\d+),"pages_free":(\d+)', data)
    n = re.search(rb'"servers_count":(\d+)', data)
    c = re.search(rb'"counters":(\{[^}]*\})', data)
    return {"used": int(z.group(1)) - int(z.group(2)),
            "total": int(z.group(1)),
            "servers": int(n.group(1)),
            "counters": json.loads(c.group(1))}


def sample(ngx, label):
    z = zone_pages(ngx)
    rss = {p: R.proc_status(p, "VmRSS") for p in ngx.workers}
    s = {"t": round(time.monotonic() - R.T_START, 1), "label": label,
         "zone_used_pages": z["used"], "zone_pages": z["total"],
         "servers": z["servers"], "counters": z["counters"],
         "rss_kib": {str(p): v // 1024 for p, v in rss.items()}}
    R.log(f"{label}: {z['servers']} servers registered, zone {z['used']}"
          f"/{z['total']} pages used, worker RSS "
          + ", ".join(f"{v // 1024} KiB" for v in rss.values()))
    return s


def error_lines(ngx):
    path = os.path.join(ngx.dir, "logs", "error.log")
    with open(path, errors="replace") as f:
        return [ln.rstrip() for ln in f
                if re.search(r"\[(error|crit|alert|emerg)\]", ln)]


def main():
    os.makedirs(R.WORK, exist_ok=True)
    R.log(f"soak: {SECONDS:.0f} s, {SERVERS} servers ({SERVERS - STABLE} "
          f"churning {CHURN}/s), {CONNS} HTTP connections, "
          f"{DELAY_MS} ms between calls per connection, 2 workers")
    # a copy of the module: a rebuild during the soak must not touch the
    # mapped file
    R.MODULE = os.path.join(R.WORK, "soak-module.so")
    shutil.copyfile(os.path.join(R.BUILD, "ngx_http_reverse_mcp_module.so"),
                    R.MODULE)
    ngx = R.Nginx(2, SERVERS, zone="64m")
    srv_log = os.path.join(R.WORK, "mcpfast.out")
    if os.path.exists(srv_log):
        os.unlink(srv_log)
    ready = os.path.join(R.WORK, f"ready.soak.{ngx.ws}")
    srv = R.spawn([R.MCPFAST, "serve", "--url", f"ws://127.0.0.1:{ngx.ws}/ws",
                   "--prefix", "b", "--count", str(SERVERS), "--tools", "5",
                   "--token", R.TOKEN, "--ready-file", ready,
                   "--churn", str(CHURN), "--churn-from", str(STABLE),
                   "--max-seconds", str(int(SECONDS + WARMUP + 120))],
                  "mcpfast.out")
    if not R.wait_for(lambda: os.path.exists(ready), 60, 0.05):
        raise SystemExit("soak: the servers did not register within 60 s")
    with open(ready) as f:
        R.log("servers: " + f.read().strip())

    sid = R.mcp_session(ngx.http, "/mcp")
    body = R.body_file("soak-echo.json", R.echo_body("b0__echo"))
    st, data = R.mcp_call(ngx.http, "/mcp", sid, open(body).read())
    if st != 200 or b'"result"' not in data:
        raise SystemExit(f"soak: the first call failed: {st} {data[:200]!r}")

    env = dict(os.environ, WRK_BODY_FILE=body, MCP_SID=sid,
               WRK_CYCLE=str(STABLE), WRK_THREADS="2",
               WRK_DELAY_MS=str(DELAY_MS))
    dur = int(SECONDS + WARMUP)
    wrk = subprocess.Popen(
        ["wrk", "-t2", f"-c{CONNS}", f"-d{dur}s", "--timeout", "10s",
         "-s", R.LUA, f"http://127.0.0.1:{ngx.http_rp}/mcp"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        start_new_session=True)
    R.procs.append(wrk)

    time.sleep(WARMUP)
    samples = [sample(ngx, "start")]
    t_start = time.monotonic()
    mid_done = False
    while time.monotonic() - t_start < SECONDS - 0.5:
        time.sleep(min(SAMPLE, max(0.1, SECONDS - (time.monotonic()
                                                   - t_start))))
        if not mid_done and time.monotonic() - t_start >= SECONDS / 2:
            samples.append(sample(ngx, "middle"))
            mid_done = True
        elif wrk.poll() is not None:
            break
        else:
            samples.append(sample(ngx, "sample"))

    samples.append(sample(ngx, "end"))
    out, _ = wrk.communicate(timeout=60)
    m = re.search(r"WRKJSON (\{.*\})", out)
    if not m:
        raise SystemExit("soak: wrk printed no result: " + out[-500:])
    w = json.loads(m.group(1))

    # the churn stops with the servers; then the registry must be whole
    R.stop(srv, signal.SIGTERM, 10)
    with open(srv_log) as f:
        sm = re.search(r"(\d+) listed, (\d+) failed, (\d+) open, (\d+) calls, "
                       r"(\d+) churned, (\d+) relisted", f.read())
    sv = dict(zip(("listed", "failed", "open", "calls", "churned",
                   "relisted"), map(int, sm.groups()))) if sm else {}
    start, end = samples[0], samples[-1]
    mid = next((s for s in samples if s["label"] == "middle"),
               samples[len(samples) // 2])
    R.wait_for(lambda: zone_pages(ngx)["servers"] == 0, 10, 0.1)
    after = sample(ngx, "after the servers left")
    errs = error_lines(ngx)
    ngx.stop()

    call_errors = (w["err_connect"] + w["err_read"] + w["err_write"]
                   + w["err_status"] + w["err_timeout"] + w["bad_bodies"])
    rss = lambda s: sum(s["rss_kib"].values())  # noqa: E731
    verdict = {
        "calls": w["requests"], "call_errors": call_errors,
        "calls_per_s": round(w["rps"], 1), "p50_us": w["p50_us"],
        "p99_us": w["p99_us"],
        "churned": sv.get("churned"), "relisted": sv.get("relisted"),
        "reconnect_failures": sv.get("failed"),
        "nginx_error_lines": len(errs),
        "zone_used_pages": [start["zone_used_pages"], mid["zone_used_pages"],
                            end["zone_used_pages"]],
        "zone_pages": start["zone_pages"],
        "zone_used_after_leave": after["zone_used_pages"],
        "servers_registered": [start["servers"], mid["servers"],
                               end["servers"]],
        "worker_rss_kib": [start["rss_kib"], mid["rss_kib"], end["rss_kib"]],
        "seconds": SECONDS,
    }
    ok = (call_errors == 0 and sv.get("failed", 1) == 0 and not errs
          and end["servers"] >= SERVERS - CHURN
          and end["zone_used_pages"] <= start["zone_used_pages"]
          * (1 + RSS_SLACK) + 8
          and rss(end) <= rss(start) * (1 + RSS_SLACK))
    verdict["pass"] = ok

    lines = [
        f"# soak ({SECONDS:.0f} s, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})",
        "",
        "| what | start | middle | end |",
        "| --- | --- | --- | --- |",
        "| servers registered | %d | %d | %d |" % tuple(
            verdict["servers_registered"]),
        "| zone pages used (of %d) | %d | %d | %d |" % (
            (start["zone_pages"],) + tuple(verdict["zone_used_pages"])),
        "| worker RSS, KiB | %s | %s | %s |" % tuple(
            " + ".join(str(v) for v in s.values())
            for s in verdict["worker_rss_kib"]),
        "",
        f"- tools/call: {w['requests']:,} calls ({w['rps']:.0f}/s, p50 "
        f"{w['p50_us']} us, p99 {w['p99_us']} us), errors: {call_errors}",
        f"- churn: {sv.get('churned', 0):,} disconnects, "
        f"{sv.get('relisted', 0):,} re-registrations, "
        f"failed connections: {sv.get('failed')}",
        f"- nginx error.log lines at [error] or worse: {len(errs)}",
        f"- zone pages used after every server left: "
        f"{after['zone_used_pages']}",
        f"- verdict: {'PASS' if ok else 'FAIL'}",
    ]
    for ln in errs[:10]:
        lines.append("    " + ln)
    text = "\n".join(lines) + "\n"
    print(text)
    os.makedirs(R.RESULTS, exist_ok=True)
    with open(os.path.join(R.RESULTS, "soak.md"), "w") as f:
        f.write(text)
    with open(os.path.join(R.RESULTS, "soak.json"), "w") as f:
        json.dump({"verdict": verdict, "samples": samples}, f, indent=1)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
