#!/usr/bin/env python3
"""Envoy benchmarks for `make bench`, side by side in one run on loopback.

Scenarios (one Envoy worker each, same upstream, same 4 KiB chat request, a valid token):
  plain          Envoy -> router
  noop-wasm      Envoy -> proxy-wasm filter that reads two headers (the floor of the approach)
  gatehouse      Envoy -> Gatehouse filter, default bundle (token cached after the first call)
  gatehouse-large  same, with the 195-pattern credential rule set
  gatehouse+ext_proc  the full local stack: filter, ext_proc server (masking, recording)

For each: saturation throughput with wrk (16 connections), and p50/p99 latency at a fixed
moderate rate with oha. The upstream is a second Envoy answering a fixed JSON body after
buffering the request (so connections stay alive). Scenarios alternate over BENCH_ROUNDS
rounds (median and spread reported, with the load generator's CPU share), then Envoy's
resident memory is read at 1 and 4 workers, idle and after traffic through every rule.
"""
import json
import os
import pathlib
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[1]
# BENCH_BIN / BENCH_WASM measure another build with the same requests (the bodies come from
# this tree's binary, or BENCH_REQUEST_BIN). To compare with an older commit, run this script
# from that commit's work tree (its bundles and template) with BENCH_REQUEST_BIN set.
CUR_BIN = pathlib.Path(os.environ.get("BENCH_REQUEST_BIN", ROOT / "target/release/gatehouse"))
BIN = pathlib.Path(os.environ.get("BENCH_BIN", ROOT / "target/release/gatehouse"))
WASM = pathlib.Path(os.environ.get("BENCH_WASM", ROOT / "target-wasm/gatehouse_filter.wasm"))
NOOP = ROOT / "target-wasm/noop_filter.wasm"
DURATION = int(os.environ.get("BENCH_SECONDS", "5"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
RATE = int(os.environ.get("BENCH_RATE", "500"))
PORTS = dict(upstream=22080, listen=22000, admin=22901, grpc=22081, http=22082)

ANSWER = json.dumps({"id": "x", "object": "chat.completion", "model": "gpt-4o-mini",
                     "choices": [{"index": 0, "message": {"role": "assistant", "content": "fine, thanks"},
                                  "finish_reason": "stop"}]})


def cluster(name, port, http2=False):
    c = {"name": name, "type": "STATIC", "connect_timeout": "1s",
         "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
             {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}]}}
    if http2:
        c["typed_extension_protocol_options"] = {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "explicit_http_config": {"http2_protocol_options": {}}}}
    return c


def hcm(filters, route):
    return {"name": "envoy.filters.network.http_connection_manager", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "bench",
        "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [{"match": {"prefix": "/"}, **route}]}]},
        "http_filters": filters + [{"name": "envoy.filters.http.router", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}}


def listener(port, filters, route):
    return {"name": f"l{port}", "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
            "per_connection_buffer_limit_bytes": 8388608,
            "filter_chains": [{"filters": [hcm(filters, route)]}]}


def wasm_filter(path, config):
    return {"name": "envoy.filters.http.wasm", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
        "config": {"name": "f", "root_id": "gatehouse", "fail_open": False,
                   "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": config},
                   "vm_config": {"vm_id": "f", "runtime": "envoy.wasm.runtime.v8",
                                 "code": {"local": {"filename": str(path)}}}}}}


def upstream_config():
    buf = {"name": "envoy.filters.http.buffer", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer", "max_request_bytes": 1048576}}
    route = {"direct_response": {"status": 200, "body": {"inline_string": ANSWER}},
             "response_headers_to_add": [{"header": {"key": "content-type", "value": "application/json"}}]}
    return {"admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 22902}}},
            "static_resources": {"listeners": [listener(PORTS["upstream"], [buf], route)]}}


def front_config(filters, extra_clusters=()):
    route = {"route": {"cluster": "upstream", "timeout": "30s"}}
    return {"admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": PORTS["admin"]}}},
            "static_resources": {"listeners": [listener(PORTS["listen"], filters, route)],
                                 "clusters": [cluster("upstream", PORTS["upstream"]), *extra_clusters]}}


def wait(url, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except Exception:
            time.sleep(0.1)
    raise RuntimeError(f"{url} not ready")


def start(args, log, env=None):
    return subprocess.Popen(args, stdout=log, stderr=log, env=env)


def stop(procs):
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()


_POSTGRES = {}


def start_postgres(root):
    """A scratch PostgreSQL (scripts/pg.sh) for the full stack's session store, started once
    and shared by every round."""
    if root in _POSTGRES:
        return _POSTGRES[root]
    root.mkdir(exist_ok=True)
    os.chmod(root, 0o755)  # as root, PostgreSQL runs as `postgres`
    os.chmod(root.parent, 0o755)
    _POSTGRES[root] = subprocess.run([ROOT / "scripts/pg.sh", "start", root / "data", "21433"],
                                     capture_output=True, text=True, check=True).stdout.strip()
    return _POSTGRES[root]


def wrk_script(body_file, token):
    """A wrk script posting `body_file` with a bearer token; returns its path."""
    lua = body_file.with_suffix(".lua")
    lua.write_text(f'wrk.method = "POST"\nwrk.body = io.open("{body_file}"):read("*a")\n'
                   f'wrk.headers["content-type"] = "application/json"\n'
                   f'wrk.headers["authorization"] = "Bearer {token}"\n')
    return lua


def run_wrk(url, token, body_file):
    lua = wrk_script(body_file, token)
    out = subprocess.run(["wrk", "-t", "1", "-c", "16", "-d", f"{DURATION}s", "-s", str(lua), url],
                         capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return rps, int(non2xx.group(1)) if non2xx else 0


def run_oha(url, token, body_file):
    oha = shutil.which("oha") or str(pathlib.Path.home() / ".cargo/bin/oha")
    out = subprocess.run([oha, "--no-tui", "--output-format", "json", "-z", f"{DURATION}s", "-q", str(RATE),
                          "-c", "4", "-m", "POST", "-D", str(body_file), "-H", "content-type: application/json",
                          "-H", f"authorization: Bearer {token}", url], capture_output=True, text=True, check=True).stdout
    j = json.loads(out)
    p = j["latencyPercentiles"]
    codes = j.get("statusCodeDistribution", {})
    return p["p50"] * 1e6, p["p99"] * 1e6, codes


def main():
    for tool in ("wrk", "envoy"):
        if not shutil.which(tool):
            sys.exit(f"bench: {tool} not found (run scripts/setup.sh bench)")
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="gatehouse-bench-"))
    log = open(tmp / "bench.log", "w")
    body = tmp / "body.json"
    body.write_bytes(subprocess.run([CUR_BIN, "bench", "--print-request"], capture_output=True, check=True).stdout)
    tools_body = tmp / "tools.json"
    tools_body.write_bytes(subprocess.run([CUR_BIN, "bench", "--print-request", "--tools"],
                                          capture_output=True, check=True).stdout)
    # Local profile for the filter: dev issuer keys and bundles with it.
    bundles = {}
    for name, src in [("default", "policies/default.yaml"), ("large", "policies/examples/credentials-large.yaml")]:
        d = tmp / name
        if bundles:  # one dev issuer key for every bundle, so one token serves all
            d.mkdir()
            shutil.copy(tmp / "default/dev-issuer.pem", d / "dev-issuer.pem")
        subprocess.run([BIN, "dev", "init", "--bundle", src, "--dir", d, "--wasm", WASM,
                        "--upstream", f"127.0.0.1:{PORTS['upstream']}", "--listen-port", str(PORTS["listen"]),
                        "--admin-port", str(PORTS["admin"]), "--grpc-port", str(PORTS["grpc"]),
                        "--http-port", str(PORTS["http"])], check=True, cwd=ROOT, stdout=log, stderr=log)
        bundles[name] = d
    token = subprocess.run([BIN, "token", "--sub", "bench", "--group", "eng", "--dir", tmp / "default"],
                           capture_output=True, text=True, check=True).stdout.strip()

    def filter_cfg(d):
        return json.dumps({"bundle": (d / "bundle.yaml").read_text(),
                           "handoff_key": (d / "handoff.key").read_text().strip()})

    scenarios = [
        ("plain Envoy", front_config([]), None, body),
        ("+ no-op wasm filter (floor)", front_config([wasm_filter(NOOP, "")]), None, body),
        ("+ Gatehouse filter, default bundle", front_config([wasm_filter(WASM, filter_cfg(bundles["default"]))]),
         None, body),
        ("+ Gatehouse filter, 195-pattern credential set",
         front_config([wasm_filter(WASM, filter_cfg(bundles["large"]))]), None, body),
        ("+ Gatehouse filter + ext_proc (full stack, records in memory)", None, bundles["default"], body),
        ("+ Gatehouse filter + ext_proc (full stack, SQLite session store)", None, (bundles["default"], "sqlite"),
         body),
        ("+ Gatehouse filter + ext_proc (full stack, PostgreSQL session store)", None,
         (bundles["default"], "postgres"), body),
        ("20 KiB tool schemas: no-op floor", front_config([wasm_filter(NOOP, "")]), None, tools_body),
        ("20 KiB tool schemas: Gatehouse filter, default bundle",
         front_config([wasm_filter(WASM, filter_cfg(bundles["default"]))]), None, tools_body),
    ]
    up_cfg = tmp / "upstream.json"
    up_cfg.write_text(json.dumps(upstream_config()))
    procs = [start(["envoy", "-c", up_cfg, "--concurrency", "1", "--base-id", "31", "--log-level", "error"], log)]
    # Every scenario runs once per round, rounds one after another, so that a slow spell of
    # the shared machine hits every scenario alike; the report gives the median and spread.
    runs = {name: [] for name, *_ in scenarios}
    try:
        wait("http://127.0.0.1:22902/ready")
        for rnd in range(ROUNDS):
            for name, cfg, full, req in scenarios:
                r = run_scenario(tmp, log, name, cfg, full, req, token, len(runs[name]))
                runs[name].append(r)
                print(f"round {rnd + 1}/{ROUNDS}  {name:<66} {r['rps']:>8.0f} req/s  p50 {r['p50']:>6.0f} us  "
                      f"wrk {r['wrk_cpu']:.2f} cores  envoy {r['envoy_cpu']:.2f} cores  non-2xx {r['bad']}",
                      flush=True)
        memory = memory_phase(tmp, log, bundles, filter_cfg, token, body, tools_body)
    finally:
        stop(procs)
        if (tmp / "pg").exists():
            subprocess.run([ROOT / "scripts/pg.sh", "stop", tmp / "pg" / "data"], capture_output=True)
    report = summarise(scenarios, runs) + "\n" + memory + "\n" + masking_phase()
    print()
    print(report)
    out = ROOT / "bench-results"
    out.mkdir(exist_ok=True)
    (out / "envoy-latest.md").write_text(report + "\n")
    (out / "envoy-latest.json").write_text(json.dumps(runs, indent=1) + "\n")
    bad = [name for name, rs in runs.items() if any(r["bad"] for r in rs)]
    if bad:
        sys.exit(f"bench: non-2xx responses in {bad}; see {tmp}/bench.log")


def cpu_seconds(pid):
    """User + system CPU seconds a process has used so far."""
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid):
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_scenario(tmp, log, name, cfg, full, req, token, n):
    extra = []
    env = None
    store = "memory"
    if isinstance(full, tuple):
        full, kind = full
        store = str(tmp / f"store-{abs(hash(name))}-{n}")
        if kind == "postgres":
            store = start_postgres(tmp / "pg")
    if full is not None:
        cfg_path = full / "envoy.yaml"
        env = dict(os.environ, GATEHOUSE_HANDOFF_KEY=(full / "handoff.key").read_text().strip())
        extra.append(start([BIN, "serve", "--bundle", full / "bundle.yaml", "--handoff-key-file",
                            full / "handoff.key", "--store", store, "--grpc", f"127.0.0.1:{PORTS['grpc']}",
                            "--http", f"127.0.0.1:{PORTS['http']}"], log))
    else:
        cfg_path = tmp / f"front-{abs(hash(name))}.json"
        cfg_path.write_text(json.dumps(cfg))
    envoy = start(["envoy", "-c", cfg_path, "--concurrency", "1", "--base-id", "32", "--log-level", "error"],
                  log, env)
    extra.append(envoy)
    try:
        wait(f"http://127.0.0.1:{PORTS['admin']}/ready")
        url = f"http://127.0.0.1:{PORTS['listen']}/v1/chat/completions"
        # Warm up (token verification, first compilations) before measuring.
        subprocess.run(["wrk", "-t", "1", "-c", "4", "-d", "1s", url], capture_output=True)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        e0 = cpu_seconds(envoy.pid)
        t0 = time.monotonic()
        rps, bad = run_wrk(url, token, req)
        wall = time.monotonic() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        envoy_cpu = (cpu_seconds(envoy.pid) - e0) / wall
        wrk_cpu = (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / wall
        p50, p99, codes = run_oha(url, token, req)
        return dict(rps=rps, bad=bad, p50=p50, p99=p99, wrk_cpu=wrk_cpu, envoy_cpu=envoy_cpu)
    finally:
        stop(extra)
        time.sleep(0.3)


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def summarise(scenarios, runs):
    """Median and spread per scenario; ratios are taken round by round (same moment of the
    machine), then their median."""
    names = [s[0] for s in scenarios]
    plain, floor = runs[names[0]], runs[names[1]]
    tools_floor = next((runs[n] for n in names if n.startswith("20 KiB") and "floor" in n), floor)
    lines = [
        f"Machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
        f"{subprocess.run(['envoy', '--version'], capture_output=True, text=True).stdout.split('version: ')[-1].strip()}",
        f"{ROUNDS} rounds; in each, every scenario in turn: one Envoy worker; wrk 1 thread 16 connections "
        f"{DURATION}s (saturation); oha {RATE} req/s 4 connections {DURATION}s (latency). 4 KiB chat request "
        "(tool rows: 20 KiB of tool schemas, against their own no-op floor); valid cached token. "
        "Figures: median [min-max] over rounds; ratios are per round, then the median. `wrk cores`: the "
        "load generator's CPU use during the saturation run (of 2 shared cores).",
        "",
        "| scenario | req/s | vs plain | vs floor | p50 µs | added p50 vs plain µs | p99 µs | wrk cores | Envoy cores |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def spread(xs, fmt="{:.0f}"):
        return f"{fmt.format(median(xs))} [{fmt.format(min(xs))}-{fmt.format(max(xs))}]"

    for name in names:
        rs = runs[name]
        f = tools_floor if name.startswith("20 KiB") else floor
        vs_plain = [100 * r["rps"] / p["rps"] for r, p in zip(rs, plain)]
        vs_floor = [100 * r["rps"] / q["rps"] for r, q in zip(rs, f)]
        added = [r["p50"] - p["p50"] for r, p in zip(rs, plain)]
        lines.append(
            f"| {name} | {spread([r['rps'] for r in rs])} | {spread(vs_plain, '{:.0f}%')} | "
            f"{spread(vs_floor, '{:.0f}%')} | {spread([r['p50'] for r in rs])} | {spread(added, '{:+.0f}')} | "
            f"{median([r['p99'] for r in rs]):.0f} | {median([r['wrk_cpu'] for r in rs]):.2f} | "
            f"{median([r['envoy_cpu'] for r in rs]):.2f} |")
    return "\n".join(lines)


def exercise_bodies(tmp, body, tools_body):
    """Requests that take the filter through every rule of the default bundle's engineering
    policy: clean, a credential, a blocked project, customer data, a topic for approval, a
    prompt over the byte bound of the token limit, and tool schemas."""
    def chat(text):
        return json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]})
    files = [body, tools_body]
    for i, text in enumerate([
        "deploy with AKIAQWERTYUIOPASDFGH please",
        "status of project kestrel?",
        "card 4111 1111 1111 1111 for the refund",
        "draft the merger announcement",
        "summarise: " + "word " * 5000,
        "hooks: https://hooks.slack.com/services/T0ABCDEFG/B0ABCDEFG/abcdefghijklmnopqrstuvwx",
    ]):
        f = tmp / f"exercise-{i}.json"
        f.write_text(chat(text))
        files.append(f)
    return files


def memory_phase(tmp, log, bundles, filter_cfg, token, body, tools_body):
    """Envoy's resident memory with the no-op and the Gatehouse filter, at 1 and 4 workers:
    at idle after start, and after traffic through every rule (on every worker)."""
    files = exercise_bodies(tmp, body, tools_body)
    rows = []
    for workers in (1, 4):
        for name, cfg in [("no-op wasm filter", front_config([wasm_filter(NOOP, "")])),
                          ("Gatehouse filter, default bundle",
                           front_config([wasm_filter(WASM, filter_cfg(bundles["default"]))]))]:
            path = tmp / f"mem-{workers}-{len(rows)}.json"
            path.write_text(json.dumps(cfg))
            envoy = start(["envoy", "-c", path, "--concurrency", str(workers), "--base-id", "34",
                           "--log-level", "error"], log)
            try:
                wait(f"http://127.0.0.1:{PORTS['admin']}/ready")
                time.sleep(2)
                idle = rss_mb(envoy.pid)
                url = f"http://127.0.0.1:{PORTS['listen']}/v1/chat/completions"
                for f in files:
                    lua = wrk_script(f, token)
                    subprocess.run(["wrk", "-t", "1", "-c", str(4 * workers), "-d", "1s", "-s", str(lua), url],
                                   capture_output=True, check=True)
                time.sleep(1)
                rows.append((workers, name, idle, rss_mb(envoy.pid)))
                print(f"memory: {workers} worker(s)  {name:<34} idle {rows[-1][2]:.0f} MB  after {rows[-1][3]:.0f} MB",
                      flush=True)
            finally:
                stop([envoy])
                time.sleep(0.3)
    lines = ["", "Envoy resident memory (VmRSS), idle after start and after traffic through every rule of the "
             "default bundle on every worker:", "",
             "| workers | filter | idle MB | after traffic MB | over no-op after traffic MB |", "|---:|---|---:|---:|---:|"]
    for workers, name, idle, after in rows:
        noop = next(r for r in rows if r[0] == workers and r[1].startswith("no-op"))
        lines.append(f"| {workers} | {name} | {idle:.0f} | {after:.0f} | {after - noop[3]:+.0f} |")
    return "\n".join(lines)


def measure(port, token, body, stream, n):
    """Sequential requests; returns sorted (time to first body byte, total) in microseconds."""
    import http.client
    ttfb, total = [], []
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for _ in range(n):
        t0 = time.perf_counter()
        conn.request("POST", "/v1/chat/completions", body=body,
                     headers={"content-type": "application/json", "authorization": f"Bearer {token}"})
        r = conn.getresponse()
        if stream:
            # Time to first token: until a delta with non-empty content has arrived.
            first = b""
            while not re.search(rb'"content":"[^"]', first):
                piece = r.read1(65536)
                if not piece:
                    break
                first += piece
        else:
            first = r.read(1)
        t1 = time.perf_counter()
        rest = r.read()
        t2 = time.perf_counter()
        if r.status != 200 or not (first + rest):
            raise RuntimeError(f"status {r.status}")
        ttfb.append((t1 - t0) * 1e6)
        total.append((t2 - t0) * 1e6)
    conn.close()
    return sorted(ttfb), sorted(total)


def pct(xs, p):
    return xs[min(len(xs) - 1, int(len(xs) * p))]


def masking_phase():
    """Added latency of response masking: a buffered JSON answer (~4 KiB, the prompt echoed)
    and time to first token of an SSE stream, plain Envoy vs the full stack, same upstream
    (the demo model, which streams ~20 small deltas 2 ms apart)."""
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="gatehouse-bench-mask-"))
    log = open(tmp / "bench.log", "w")
    up = 22090
    d = tmp / "stack"
    subprocess.run([BIN, "dev", "init", "--bundle", "policies/default.yaml", "--dir", d, "--wasm", WASM,
                    "--upstream", f"127.0.0.1:{up}", "--listen-port", str(PORTS["listen"]),
                    "--admin-port", str(PORTS["admin"]), "--grpc-port", str(PORTS["grpc"]),
                    "--http-port", str(PORTS["http"])], check=True, cwd=ROOT, stdout=log, stderr=log)
    token = subprocess.run([BIN, "token", "--sub", "bench", "--group", "eng", "--dir", d],
                           capture_output=True, text=True, check=True).stdout.strip()
    prompt = "The quarterly report shows steady growth in the northern region. " * 60
    plain_body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": prompt}]})
    stream_body = json.dumps({"model": "gpt-4o-mini", "stream": True,
                              "messages": [{"role": "user", "content": "hello"}]})
    plain_cfg = front_config([])
    plain_cfg["static_resources"]["clusters"] = [cluster("upstream", up)]
    (tmp / "plain.json").write_text(json.dumps(plain_cfg))
    procs = [start([BIN, "demo-upstream", "--listen", f"127.0.0.1:{up}"], log)]
    rows = []
    try:
        wait(f"http://127.0.0.1:{up}/v1/models")
        for name, cfg, full in [("plain Envoy", tmp / "plain.json", False), ("Gatehouse full stack", d / "envoy.yaml", True)]:
            extra = []
            if full:
                extra.append(start([BIN, "serve", "--bundle", d / "bundle.yaml", "--handoff-key-file", d / "handoff.key",
                                    "--store", "memory", "--grpc", f"127.0.0.1:{PORTS['grpc']}",
                                    "--http", f"127.0.0.1:{PORTS['http']}"], log))
            env = dict(os.environ, GATEHOUSE_HANDOFF_KEY=(d / "handoff.key").read_text().strip()) if full else None
            extra.append(start(["envoy", "-c", cfg, "--concurrency", "1", "--base-id", "33", "--log-level", "error"],
                               log, env))
            try:
                wait(f"http://127.0.0.1:{PORTS['admin']}/ready")
                measure(PORTS["listen"], token, plain_body, False, 20)  # warm-up
                _, buffered = measure(PORTS["listen"], token, plain_body, False, 300)
                ttft, stream_total = measure(PORTS["listen"], token, stream_body, True, 100)
                rows.append((name, pct(buffered, 0.5), pct(buffered, 0.99), pct(ttft, 0.5), pct(ttft, 0.99),
                             pct(stream_total, 0.5)))
                print(f"{name:<24} buffered p50 {rows[-1][1]:.0f} us  TTFT p50 {rows[-1][3]:.0f} us", flush=True)
            finally:
                stop(extra)
                time.sleep(0.5)
    finally:
        stop(procs)
    lines = ["", "Response masking (sequential requests, one Envoy worker; the demo model answers ~4 KiB "
             "JSON, or streams ~20 deltas 2 ms apart):", "",
             "| path | buffered JSON p50 µs | p99 µs | SSE time to first token p50 µs | p99 µs | SSE whole stream p50 µs |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r[0]} | {r[1]:.0f} | {r[2]:.0f} | {r[3]:.0f} | {r[4]:.0f} | {r[5]:.0f} |")
    lines.append(f"| added by Gatehouse | {rows[1][1] - rows[0][1]:+.0f} | | {rows[1][3] - rows[0][3]:+.0f} | | "
                 f"{rows[1][5] - rows[0][5]:+.0f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
