"""The session log end to end: one typed record per decision, sessions grouped by the
caller's header, reads for auditors, and a tamper-evident chain `gatehouse sessions verify`
checks."""
import json
import shutil
import sqlite3
import subprocess
import time

import requests

from conftest import BIN, chat


def wait_for(stack, pred, timeout=5):
    deadline = time.time() + timeout
    while True:
        recs = stack.sessions()
        if pred(recs) or time.time() > deadline:
            return recs
        time.sleep(0.1)


def test_calls_with_one_session_header_form_one_timeline(stack):
    sid = f"ci-run-{time.time_ns()}"
    t = stack.token("erin", groups=("eng",))
    r1 = stack.post("/v1/chat/completions", chat("first"), token=t, headers={"x-gatehouse-session": sid})
    r2 = stack.post("/v1/chat/completions", chat("key AKIAQWERTYUIOPASDFGZ"), token=t,
                    headers={"x-gatehouse-session": sid})
    assert (r1.status_code, r2.status_code) == (200, 403)
    auditor = stack.token("audrey", groups=("auditors",))
    deadline = time.time() + 5
    while True:
        r = requests.get(f"{stack.api}/v1/sessions/{sid}", timeout=5,
                         headers={"authorization": f"Bearer {auditor}"})
        if r.status_code == 200 and len(r.json()) >= 2 or time.time() > deadline:
            break
        time.sleep(0.1)
    timeline = r.json()
    assert [x["request_id"] for x in timeline] == [r1.headers["x-gatehouse-request-id"],
                                                    r2.headers["x-gatehouse-request-id"]]
    assert [x["decision"]["verdict"] for x in timeline] == ["allow", "block"]
    assert timeline[0]["seq"] < timeline[1]["seq"]
    # Filters: by principal and by rule.
    r = requests.get(f"{stack.api}/v1/sessions", timeout=5, headers={"authorization": f"Bearer {auditor}"},
                     params={"principal": "erin", "rule": "no-credentials"})
    assert r.status_code == 200 and [x["request_id"] for x in r.json()] == [r2.headers["x-gatehouse-request-id"]]
    r = requests.get(f"{stack.api}/v1/sessions", timeout=5, headers={"authorization": f"Bearer {auditor}"},
                     params={"bogus": "1"})
    assert r.status_code == 400


def test_route_refusals_and_passthrough_are_records_too(stack):
    t = stack.token("fay", groups=("eng",))
    r = requests.put(stack.base + "/v1/chat/completions", json=chat("x"), timeout=5,
                     headers={"authorization": f"Bearer {t}"})
    assert r.status_code == 405
    rid = r.headers["x-gatehouse-request-id"]
    recs = wait_for(stack, lambda rs: any(x["request_id"] == rid for x in rs))
    rec = next(x for x in recs if x["request_id"] == rid)
    assert rec["kind"] == "refusal" and rec["decision"]["reason"] == "route"
    assert rec["decision"]["rules"] == ["method_not_allowed"] and rec["request"]["method"] == "PUT"


def store_dir(stack):
    return stack.dir / "store"


def test_verify_passes_on_the_live_log_and_names_tampering(stack, tmp_path):
    stack.post("/v1/chat/completions", chat("something to record"), token=stack.token())
    time.sleep(0.3)
    ok = subprocess.run([BIN, "sessions", "verify", "--store", store_dir(stack)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("ok: ")
    # A copy of the log, edited: the auditor's public key is all verify needs.
    pub = subprocess.run([BIN, "sessions", "public-key", "--store", store_dir(stack)],
                         capture_output=True, text=True, check=True).stdout.strip()
    copy = tmp_path / "store"
    copy.mkdir()
    src = sqlite3.connect(store_dir(stack) / "sessions.db")
    dst = sqlite3.connect(copy / "sessions.db")
    src.backup(dst)
    src.close()
    n = dst.execute("SELECT COUNT(*) FROM records").fetchone()[0]
    assert n >= 3
    dst.execute("UPDATE records SET record = replace(record, '\"POST\"', '\"GET\"') WHERE seq = 2")
    dst.commit()
    bad = subprocess.run([BIN, "sessions", "verify", "--store", copy, "--public-key", pub],
                         capture_output=True, text=True)
    assert bad.returncode != 0
    assert "record 2 was modified" in bad.stderr, bad.stderr
    # Deleting a record is named as well.
    dst.execute("UPDATE records SET record = (SELECT record FROM records WHERE seq = 2) WHERE seq = 2")
    src = sqlite3.connect(store_dir(stack) / "sessions.db")
    orig = src.execute("SELECT record FROM records WHERE seq = 2").fetchone()[0]
    src.close()
    dst.execute("UPDATE records SET record = ? WHERE seq = 2", (orig,))
    dst.execute("DELETE FROM records WHERE seq = 3")
    dst.commit()
    dst.close()
    bad = subprocess.run([BIN, "sessions", "verify", "--store", copy, "--public-key", pub],
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "record 3 is missing" in bad.stderr, bad.stderr


def test_list_and_export_read_the_same_log(stack):
    out = subprocess.run([BIN, "sessions", "export", "--store", store_dir(stack)],
                         capture_output=True, text=True, check=True).stdout
    lines = [json.loads(l) for l in out.splitlines()]
    assert lines and [x["seq"] for x in lines] == list(range(1, len(lines) + 1))
    assert all(x["v"] == 1 for x in lines)
    listed = subprocess.run([BIN, "sessions", "list", "--store", store_dir(stack), "--decision", "unauthenticated",
                             "--json"], capture_output=True, text=True, check=True).stdout
    assert all(x["decision"]["verdict"] == "unauthenticated" for x in json.loads(listed))


def test_values_in_escapes_numbers_and_headers_are_not_stored_in_clear(stack):
    # A dry-run policy forwards the request, so the server records its body.
    t = stack.token("pat", groups=("pilot",))
    escaped = '{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "deploy \\\\u0041KIAQWERTYUIOPASDFGQ now"}]}'
    r = stack.post("/v1/chat/completions", None, token=t, raw=escaped,
                   headers={"x-gatehouse-session": "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
                            "x-request-id": "AKIAQWERTYUIOPASDFGR"})
    assert r.status_code == 200, r.text
    rid = r.headers["x-gatehouse-request-id"]
    recs = wait_for(stack, lambda rs: sum(x["request_id"] == rid for x in rs) >= 2)
    mine = json.dumps([x for x in recs if x["request_id"] == rid])
    assert rid in mine
    for secret in ("AKIAQWERTYUIOPASDFGQ", "u0041KIAQWERTYUIOPASDFGQ",
                   "ghp_abcdefghijklmnopqrstuvwxyz0123456789", "AKIAQWERTYUIOPASDFGR"):
        assert secret not in mine, secret


def test_a_replayed_filter_event_is_stored_once(stack):
    import hashlib
    import hmac
    key = (stack.dir / "handoff.key").read_text().strip().encode()
    rec = {"v": 1, "kind": "refusal", "source": "filter", "time_ms": 1, "session": "replay",
           "request_id": f"replay-{time.time_ns()}", "bundle": "sha256:x",
           "request": {"method": "POST", "path": "/v1/chat/completions"},
           "decision": {"verdict": "unauthenticated", "enforced": "unauthenticated", "status": 401,
                        "reason": "missing", "message": "m"}}
    body = json.dumps(rec).encode()
    sig = hmac.new(key, b"gatehouse/event/v1\n" + body, hashlib.sha256).hexdigest()
    seqs = []
    for _ in range(2):
        r = requests.post(f"{stack.api}/v1/events", data=body, timeout=5,
                          headers={"x-gatehouse-event-signature": sig, "content-type": "application/json"})
        assert r.status_code == 200, r.text
        seqs.append(r.json()["seq"])
    assert seqs[0] == seqs[1]
    # A record that is not a v1 record is refused.
    bad = json.dumps(dict(rec, extra=1)).encode()
    sig = hmac.new(key, b"gatehouse/event/v1\n" + bad, hashlib.sha256).hexdigest()
    r = requests.post(f"{stack.api}/v1/events", data=bad, timeout=5, headers={"x-gatehouse-event-signature": sig})
    assert r.status_code == 400


def test_verify_needs_a_key_and_catches_a_cut_tail(stack, tmp_path):
    stack.post("/v1/chat/completions", chat("one more"), token=stack.token())
    time.sleep(0.3)
    out = subprocess.run([BIN, "sessions", "verify", "--store", store_dir(stack)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    anchor = out.stdout.split("--anchor ")[1].strip()
    pub = subprocess.run([BIN, "sessions", "public-key", "--store", store_dir(stack)],
                         capture_output=True, text=True, check=True).stdout.strip()
    copy = tmp_path / "store"
    copy.mkdir()
    src = sqlite3.connect(store_dir(stack) / "sessions.db")
    dst = sqlite3.connect(copy / "sessions.db")
    src.backup(dst)
    src.close()
    # No key anywhere: refused, nothing created.
    none = subprocess.run([BIN, "sessions", "verify", "--store", copy], capture_output=True, text=True)
    assert none.returncode != 0 and not (copy / "checkpoint.key").exists()
    # The tail cut off together with its checkpoints: the anchor catches it.
    last = int(anchor.split(":")[0])
    dst.execute("DELETE FROM records WHERE seq = ?", (last,))
    dst.execute("DELETE FROM checkpoints WHERE seq >= ?", (last,))
    dst.commit()
    cut = subprocess.run([BIN, "sessions", "verify", "--store", copy, "--public-key", pub, "--anchor", anchor],
                         capture_output=True, text=True)
    assert cut.returncode != 0 and "cut off" in cut.stderr, (cut.stdout, cut.stderr)
    # All checkpoints gone: nothing vouches for the records.
    dst.execute("DELETE FROM checkpoints")
    dst.commit()
    dst.close()
    bare = subprocess.run([BIN, "sessions", "verify", "--store", copy, "--public-key", pub],
                          capture_output=True, text=True)
    assert bare.returncode != 0 and "no signed checkpoint" in bare.stderr


def test_replay_under_a_stricter_bundle_lists_exactly_the_changed_decisions(stack, tmp_path):
    since = int(time.time() * 1000)
    t = stack.token("gus", groups=("eng",))
    changed = stack.post("/v1/chat/completions", chat("plan the zebra-launch party"), token=t)
    same = stack.post("/v1/chat/completions", chat("plan the picnic"), token=t)
    assert (changed.status_code, same.status_code) == (200, 200)
    wait_for(stack, lambda rs: sum(x["request_id"] in (changed.headers["x-gatehouse-request-id"],
                                                       same.headers["x-gatehouse-request-id"]) for x in rs) >= 2)
    stricter = tmp_path / "stricter.yaml"
    text = (stack.dir / "bundle.yaml").read_text()
    stricter.write_text(text.replace("  prompt_rules:\n", "  prompt_rules:\n  - id: no-zebras\n    action: block\n"
                                     "    literals:\n    - zebra-launch\n", 1))
    out = subprocess.run([BIN, "sessions", "replay", "--store", store_dir(stack), "--bundle", stricter,
                          "--since-ms", str(since), "--json"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    changes = [json.loads(l) for l in out.stdout.splitlines()]
    assert [c["request_id"] for c in changes] == [changed.headers["x-gatehouse-request-id"]], out.stdout
    c = changes[0]
    assert (c["was"], c["now"], c["now_rules"]) == ("allow", "block", ["no-zebras"])
    assert "1 decisions would change" in out.stderr
    # The same bundle changes nothing.
    out = subprocess.run([BIN, "sessions", "replay", "--store", store_dir(stack), "--bundle", stack.dir / "bundle.yaml",
                          "--since-ms", str(since)], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout == "" and "0 decisions would change" in out.stderr, out


def test_kill_9_under_load_loses_no_acknowledged_record(stack):
    """Every answer a client got was recorded before it was released: SIGKILL the server in
    the middle of concurrent traffic, restart it, and find a record for every 2xx."""
    import os
    import signal
    import threading
    from conftest import wait_http
    t = stack.token("hal", groups=("eng",))
    ok_ids, lock = [], threading.Lock()
    stop_at = time.time() + 3

    def worker():
        while time.time() < stop_at:
            try:
                r = stack.post("/v1/chat/completions", chat("durable"), token=t)
            except requests.RequestException:
                continue
            if r.status_code == 200:
                with lock:
                    ok_ids.append(r.headers["x-gatehouse-request-id"])

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for th in threads:
        th.start()
    time.sleep(1.5)
    server = stack.procs[1]
    os.kill(server.pid, signal.SIGKILL)
    server.wait(timeout=10)
    for th in threads:
        th.join()
    log = open(stack.dir / "stack.log", "a")
    stack.procs[1] = stack.start_server(log)
    wait_http(f"{stack.api}/healthz")
    assert len(ok_ids) > 20, "the load did not run"
    db = sqlite3.connect(store_dir(stack) / "sessions.db")
    recorded = {row[0] for row in db.execute("SELECT request_id FROM records WHERE source = 'server'")}
    db.close()
    lost = set(ok_ids) - recorded
    assert not lost, f"{len(lost)} of {len(ok_ids)} answered requests have no record"
    out = subprocess.run([BIN, "sessions", "verify", "--store", store_dir(stack)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    r = stack.post("/v1/chat/completions", chat("after the restart"), token=t)
    assert r.status_code == 200


def test_pruning_a_copy_keeps_what_remains_verifiable(stack, tmp_path):
    pub = subprocess.run([BIN, "sessions", "public-key", "--store", store_dir(stack)],
                         capture_output=True, text=True, check=True).stdout.strip()
    copy = tmp_path / "store"
    copy.mkdir()
    src = sqlite3.connect(store_dir(stack) / "sessions.db")
    dst = sqlite3.connect(copy / "sessions.db")
    src.backup(dst)
    src.close()
    before = dst.execute("SELECT COUNT(*) FROM records").fetchone()[0]
    dst.close()
    out = subprocess.run([BIN, "sessions", "prune", "--store", copy, "--before-ms", str(int(time.time() * 1000))],
                         capture_output=True, text=True)
    assert out.returncode == 0 and "pruned" in out.stdout, (out.stdout, out.stderr)
    db = sqlite3.connect(copy / "sessions.db")
    after = db.execute("SELECT COUNT(*) FROM records").fetchone()[0]
    db.close()
    assert after < before
    ok = subprocess.run([BIN, "sessions", "verify", "--store", copy, "--public-key", pub],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
