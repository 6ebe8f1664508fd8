"""The PostgreSQL session store end to end, on a real PostgreSQL this test starts itself
(scripts/pg.sh): two gateway replicas -- each a real Envoy with the filter and a Gatehouse
server -- append to one chain and both serve reads; a store that goes away fails requests
closed, or lets them through and counts the loss where a policy chose availability."""
import base64
import json
import os
import pathlib
import shutil
import subprocess
import tempfile
import threading
import time

import pytest
import requests

from conftest import BIN, PORTS, ROOT, Stack, chat

PG_PORT = 21432

# A policy that prefers availability to a complete log, beside the default ones.
AVAILABILITY_POLICY = """  - id: batch
    description: Batch jobs that must not stop when the session store does.
    match:
      groups: [batch]
    models: ["gpt-4o-mini"]
    prompt_rules:
      - id: no-credentials
        action: block
        detectors: [aws_access_key_id, github_token, private_key]
    record:
      on_store_failure: continue

"""


def pg_ctl(*args):
    return subprocess.run([ROOT / "scripts/pg.sh", *map(str, args)], check=True,
                          capture_output=True, text=True).stdout.strip()


class Postgres:
    def __init__(self):
        self.root = pathlib.Path(tempfile.mkdtemp(prefix="gatehouse-pg-"))
        os.chmod(self.root, 0o755)  # the server runs as `postgres` when tests run as root
        self.data = self.root / "data"
        self.url = None

    def start(self):
        self.url = pg_ctl("start", self.data, PG_PORT)

    def stop(self):
        pg_ctl("stop", self.data)


def replica_ports(base):
    return dict(listen=base, admin=base + 901, grpc=base + 81, http=base + 82,
                upstream=base + 80, idp=PORTS["idp"])


@pytest.fixture(scope="module")
def pg():
    p = Postgres()
    p.start()
    yield p
    subprocess.run([ROOT / "scripts/pg.sh", "stop", p.data], capture_output=True)
    shutil.rmtree(p.root, ignore_errors=True)


@pytest.fixture(scope="module")
def replicas(pg, workdir):
    """Two gateways (Envoy + filter + server) whose servers share one PostgreSQL store and
    one checkpoint key, as replicas of one deployment do."""
    bundle = workdir / "bundle-pg.yaml"
    text = (ROOT / "policies/default.yaml").read_text()
    bundle.write_text(text.replace("  # Everyone else with a valid token", AVAILABILITY_POLICY + "  # Everyone else with a valid token"))
    key = workdir / "pg-checkpoint.key"
    stacks = []
    try:
        for i, base in enumerate((22000, 23000)):
            d = workdir / f"replica-{i}"
            d.mkdir()
            s = Stack(d, bundle, ports=replica_ports(base), base_id=22 + i, store=pg.url, checkpoint_key=key)
            stacks.append(s)
            s.start()
    except Exception:
        for s in stacks:
            s.stop()
            print((s.dir / "stack.log").read_text())
        raise
    yield stacks
    for s in stacks:
        s.stop()


def gatehouse(*args):
    return subprocess.run([BIN, *map(str, args)], capture_output=True, text=True, cwd=ROOT)


def public_key(workdir):
    out = gatehouse("sessions", "public-key", "--store", "postgres://unused@127.0.0.1:1/x",
                    "--checkpoint-key-file", workdir / "pg-checkpoint.key")
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_two_replicas_append_to_one_chain_and_both_serve_reads(pg, replicas, workdir):
    a, b = replicas
    tokens = {a: a.token("alice-a", groups=("eng",)), b: b.token("bob-b", groups=("eng",))}
    answered = {a: [], b: []}
    lock = threading.Lock()

    def load(s, n):
        for i in range(n):
            body = chat("hello" if i % 4 else "my key is AKIAQWERTYUIOPASDFGH")
            r = s.post("/v1/chat/completions", body, token=tokens[s])
            assert r.status_code in (200, 403), r.text
            with lock:
                answered[s].append((r.status_code, r.headers["x-gatehouse-request-id"]))

    threads = [threading.Thread(target=load, args=(s, 30)) for s in (a, b) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(answered[a]) == len(answered[b]) == 60
    # Blocks are the filter's records, posted to its own replica's server: give them a moment.
    ids = {rid for s in (a, b) for _, rid in answered[s]}
    deadline = time.time() + 10
    while True:
        out = gatehouse("sessions", "export", "--store", pg.url)
        assert out.returncode == 0, out.stderr
        recs = [json.loads(line) for line in out.stdout.splitlines()]
        seen = {r["request_id"] for r in recs}
        if ids <= seen or time.time() > deadline:
            break
        time.sleep(0.2)
    assert ids <= seen, f"{len(ids - seen)} answered requests have no record"
    # One chain: consecutive sequence numbers, records of both replicas interleaved.
    seqs = [r["seq"] for r in recs]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    principals = [r["identity"]["principal"] for r in recs if r.get("identity")]
    assert {"alice-a", "bob-b"} <= set(principals)
    switches = sum(1 for x, y in zip(principals, principals[1:]) if x != y)
    assert switches > 2, "the replicas' appends did not interleave: not one shared chain"
    # It verifies against the one shared public key.
    out = gatehouse("sessions", "verify", "--store", pg.url, "--public-key", public_key(workdir))
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"ok: {len(recs)} records" in out.stdout
    # Both replicas' HTTP APIs read the whole log: each sees the other's callers.
    for s in (a, b):
        auditor = s.token("audrey", groups=("auditors",))
        for who, origin in (("alice-a", a), ("bob-b", b)):
            r = requests.get(f"{s.api}/v1/sessions", params={"principal": who, "limit": 500},
                             headers={"authorization": f"Bearer {auditor}"}, timeout=5)
            assert r.status_code == 200
            got = {x["request_id"] for x in r.json()}
            assert {rid for _, rid in answered[origin]} <= got, who


def test_tampering_in_postgres_is_named(pg, replicas, workdir):
    a, _ = replicas
    t = a.token("carol", groups=("eng",))
    assert a.post("/v1/chat/completions", chat("to be edited"), token=t).status_code == 200
    row = subprocess.run(["psql", pg.url, "-qAtc",
                          "SELECT seq FROM gatehouse.records WHERE record LIKE '%to be edited%' ORDER BY seq DESC LIMIT 1"],
                         capture_output=True, text=True, check=True).stdout.strip()
    seq = int(row)
    try:
        subprocess.run(["psql", pg.url, "-qAtc",
                        f"UPDATE gatehouse.records SET record = replace(record, 'carol', 'mallory') WHERE seq = {seq}"],
                       check=True, capture_output=True)
        out = gatehouse("sessions", "verify", "--store", pg.url, "--public-key", public_key(workdir))
        assert out.returncode != 0
        assert f"record {seq} was modified" in out.stderr
    finally:
        subprocess.run(["psql", pg.url, "-qAtc",
                        f"UPDATE gatehouse.records SET record = replace(record, 'mallory', 'carol') WHERE seq = {seq}"],
                       check=True, capture_output=True)
    out = gatehouse("sessions", "verify", "--store", pg.url, "--public-key", public_key(workdir))
    assert out.returncode == 0, out.stderr


def test_a_caller_with_an_oversized_principal_is_recorded_and_spoils_no_one_elses_record(pg, replicas, workdir):
    """A token claim can be any size; an index entry cannot. The record keeps the whole
    principal, the index column a bounded prefix, and the requests around it are unaffected."""
    a, _ = replicas
    # Incompressible and over PostgreSQL's ~2.7 KB index entry limit, within the token limit.
    big = base64.urlsafe_b64encode(os.urandom(3600)).decode()
    tokens = [a.token(big, groups=("eng",)), a.token("frank", groups=("eng",))]
    results = []

    def call(t):
        r = a.post("/v1/chat/completions", chat("hello"), token=t)
        results.append((r.status_code, r.headers.get("x-gatehouse-request-id"), r.text[:300]))

    threads = [threading.Thread(target=call, args=(tokens[i % 2],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [s for s, _, _ in results] == [200] * 8, results
    for _, rid, _ in results:
        out = gatehouse("sessions", "show", rid, "--store", pg.url)
        assert out.returncode == 0, out.stderr
    out = gatehouse("sessions", "verify", "--store", pg.url, "--public-key", public_key(workdir))
    assert out.returncode == 0, out.stdout + out.stderr


def test_an_approval_decided_on_one_replica_releases_the_hold_on_the_other(pg, replicas):
    a, b = replicas
    marker = f"merger-{os.urandom(4).hex()}"
    done = {}

    def ask():
        done["r"] = a.post("/v1/chat/completions", chat(f"merger memo ({marker})", model="gpt-4o"),
                           token=a.token("hana", groups=("eng",)))

    t = threading.Thread(target=ask)
    t.start()
    reviewer = b.token("ivan", groups=("legal",))
    hdr = {"authorization": f"Bearer {reviewer}"}
    deadline = time.time() + 10
    found = []
    while not found and time.time() < deadline:
        r = requests.get(f"{b.api}/v1/approvals", params={"state": "pending"}, headers=hdr, timeout=5)
        found = [x for x in r.json() if marker in x["summary"]]
        time.sleep(0.1)
    assert found, "replica b does not see the approval held on replica a"
    r = requests.post(f"{b.api}/v1/approvals/{found[0]['id']}/approve", json={"reason": "ok from b"},
                      headers=hdr, timeout=5)
    assert r.status_code == 200, r.text
    t.join(15)
    assert done["r"].status_code == 200, done["r"].text


# Last in this module: it stops and restarts the database under the replicas.
def wait_health(s, want, timeout=15):
    deadline = time.time() + timeout
    while True:
        try:
            h = requests.get(f"{s.api}/healthz", timeout=2)
            if h.json()["status"] == want:
                return h.json()
        except requests.RequestException:
            pass
        if time.time() > deadline:
            raise AssertionError(f"{s.api} did not report {want}")
        time.sleep(0.2)


def test_store_down_fails_closed_unless_the_policy_continues_and_counts(pg, replicas):
    a, b = replicas
    eng = a.token("dana", groups=("eng",))
    batch = a.token("nightly", groups=("batch",))
    assert a.post("/v1/chat/completions", chat("before"), token=eng).status_code == 200
    lost_before = requests.get(f"{a.api}/healthz", timeout=2).json()["records_lost"]
    pg.stop()
    try:
        # The first request after the outage may be the one that finds out; from then on
        # every request is refused in the API's own error shape.
        deadline = time.time() + 15
        while True:
            r = a.post("/v1/chat/completions", chat("during"), token=eng)
            if r.status_code == 503 or time.time() > deadline:
                break
            time.sleep(0.2)
        assert r.status_code == 503, r.text
        err = r.json()["error"]
        assert err["code"] == "session_store_unavailable"
        assert "session store unavailable" in err["message"]
        assert "postgres" not in err["message"].lower()  # no internals reach the caller
        h = wait_health(a, "store_unavailable")
        # A policy that chose availability goes on unrecorded, and the loss is counted.
        r = a.post("/v1/chat/completions", chat("batch during the outage"), token=batch)
        assert r.status_code == 200, r.text
        h = requests.get(f"{a.api}/healthz", timeout=2).json()
        assert h["records_lost"] >= lost_before + 1
        # Its blocks still block: availability is about the log, not the rules.
        r = a.post("/v1/chat/completions", chat("key AKIAQWERTYUIOPASDFGH"), token=batch)
        assert r.status_code == 403
    finally:
        pg.start()
    # The store comes back: requests are recorded again, on both replicas, and the chain
    # still verifies.
    for s in (a, b):
        wait_health(s, "ok")
    t = b.token("erin", groups=("eng",))
    r = b.post("/v1/chat/completions", chat("after"), token=t)
    assert r.status_code == 200, r.text
    rid = r.headers["x-gatehouse-request-id"]
    out = gatehouse("sessions", "show", rid, "--store", pg.url)
    assert out.returncode == 0 and "erin" in out.stdout, out.stderr
