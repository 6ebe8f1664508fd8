"""Approval holds end to end in a real Envoy: a request a `require_approval` rule matched
waits in ext_proc until a reviewer of the named group decides (through the HTTP API or the
CLI), and goes on unchanged, or fails with the reason, or expires, or is cancelled when its
caller hangs up. Every state change is a session record."""
import hashlib
import hmac
import http.server
import json
import re
import subprocess
import threading
import time
import uuid

import pytest
import requests

from conftest import BIN, PORTS, ROOT, Stack, chat

class Held(threading.Thread):
    """A caller whose request is held: runs the request in the background."""

    def __init__(self, stack, token, content, timeout=60):
        super().__init__(daemon=True)
        self.stack, self.token, self.content, self.timeout = stack, token, content, timeout
        self.response = None
        self.error = None
        self.start()

    def run(self):
        try:
            self.response = requests.post(
                self.stack.base + "/v1/chat/completions", data=json.dumps(chat(self.content, model="gpt-4o")),
                headers={"authorization": f"Bearer {self.token}", "content-type": "application/json"},
                timeout=self.timeout)
        except requests.RequestException as e:
            self.error = e


def api(stack, token, method, path, **kw):
    return requests.request(method, f"{stack.api}{path}", headers={"authorization": f"Bearer {token}"},
                            timeout=10, **kw)


def pending_for(stack, reviewer, marker, timeout=10):
    """The pending approval whose summary holds `marker`, as a reviewer lists it."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        r = api(stack, reviewer, "GET", "/v1/approvals", params={"state": "pending"})
        assert r.status_code == 200, r.text
        found = [a for a in r.json() if marker in a["summary"]]
        if found:
            return found[0]
        time.sleep(0.1)
    raise AssertionError(f"no pending approval mentions {marker}")


def received(stack, marker):
    """What the stack's upstream received that mentions `marker`."""
    up = f"http://127.0.0.1:{stack.ports['upstream']}"
    return [r for r in requests.get(f"{up}/__demo/received", timeout=5).json() if marker in r["body"]]


def test_a_held_request_goes_on_unchanged_once_a_reviewer_approves(stack):
    marker = f"merger-{uuid.uuid4().hex[:8]}"
    alice = stack.token("alice", groups=("eng", "legal"))  # in legal herself: still not her call
    bob = stack.token("bob", groups=("legal",))
    mallory = stack.token("mallory", groups=("eng",))
    held = Held(stack, alice, f"Draft a memo about the merger ({marker}).")
    a = pending_for(stack, bob, marker)
    assert a["requester"]["principal"] == "alice" and [r["rule"] for r in a["requirements"]] == ["legal-review"]
    assert any(m.startswith("legal-review at messages") for m in a["matched"])
    assert a["digest"].startswith("sha256:")
    time.sleep(2.5)  # longer than Envoy's message_timeout (2 s): the hold extended it
    assert held.is_alive(), "the caller got an answer before anyone decided"
    assert not received(stack, marker), "the upstream saw a request nobody approved"
    # The requester cannot approve her own request; someone outside `legal` cannot either.
    r = api(stack, alice, "POST", f"/v1/approvals/{a['id']}/approve", json={"reason": "mine"})
    assert r.status_code == 403 and "own request" in r.json()["error"]["message"]
    r = api(stack, mallory, "POST", f"/v1/approvals/{a['id']}/approve", json={"reason": "sure"})
    assert r.status_code == 404  # not a reviewer: the approval is not even shown
    r = api(stack, bob, "POST", f"/v1/approvals/{a['id']}/approve", json={})
    assert r.status_code == 400
    assert held.is_alive()
    r = api(stack, bob, "POST", f"/v1/approvals/{a['id']}/approve", json={"reason": "public already"})
    assert r.status_code == 200 and r.json()["state"] == "approved"
    held.join(15)
    assert held.response is not None and held.response.status_code == 200, held.response and held.response.text
    got = received(stack, marker)
    assert len(got) == 1 and json.loads(got[0]["body"])["messages"][0]["content"].endswith(f"({marker}).")
    # A second vote after the decision is refused.
    carol = stack.token("carol", groups=("legal",))
    r = api(stack, carol, "POST", f"/v1/approvals/{a['id']}/deny", json={"reason": "late"})
    assert r.status_code == 409
    # Every state change is in the session log, in order, with who made it.
    rid = held.response.headers["x-gatehouse-request-id"]
    recs = [r for r in stack.sessions(limit=500) if r["request_id"].startswith(rid)]
    changes = sorted((r["seq"], r["approval"]["state"], r["identity"]["principal"]) for r in recs if r.get("approval"))
    assert [(s, p) for _, s, p in changes] == [("pending", "alice"), ("approved", "bob"), ("used", "alice")]
    exchange = [r for r in recs if r["request_id"] == rid]
    assert exchange and exchange[0]["decision"]["verdict"] == "require_approval"
    assert exchange[0]["decision"]["enforced"] == "allow" and exchange[0]["decision"]["reason"] == "approved"


def test_a_denied_request_fails_with_the_reviewers_reason_in_the_apis_shape(stack):
    marker = f"layoffs-{uuid.uuid4().hex[:8]}"
    held = Held(stack, stack.token("dana", groups=("eng",)), f"Plan the layoffs ({marker}).")
    bob = stack.token("bob", groups=("legal",))
    a = pending_for(stack, bob, marker)
    r = api(stack, bob, "POST", f"/v1/approvals/{a['id']}/deny", json={"reason": "not before the announcement"})
    assert r.status_code == 200 and r.json()["state"] == "rejected"
    held.join(15)
    assert held.response.status_code == 403
    err = held.response.json()["error"]
    assert err["code"] == "approval_rejected"
    assert "not before the announcement" in err["message"] and a["id"] in err["message"]
    assert not received(stack, marker)


def test_the_cli_approves_with_the_reviewers_token(stack):
    marker = f"acquisition-{uuid.uuid4().hex[:8]}"
    held = Held(stack, stack.token("erin", groups=("eng",)), f"Value the acquisition ({marker}).")
    bob = stack.token("bob", groups=("legal",))
    a = pending_for(stack, bob, marker)
    env = {"GATEHOUSE_TOKEN": bob, "GATEHOUSE_SERVER": stack.api, "PATH": "/usr/bin:/bin"}
    out = subprocess.run([BIN, "approvals", "list"], capture_output=True, text=True, env=env)
    assert out.returncode == 0 and a["id"] in out.stdout, out.stderr
    out = subprocess.run([BIN, "approvals", "approve", a["id"], "--reason", "checked with counsel"],
                         capture_output=True, text=True, env=env)
    assert out.returncode == 0 and "approved" in out.stdout, out.stderr
    held.join(15)
    assert held.response.status_code == 200
    # The CLI reports a refused vote with the API's reason and a non-zero exit.
    out = subprocess.run([BIN, "approvals", "deny", a["id"], "--reason", "x"], capture_output=True, text=True, env=env)
    assert out.returncode != 0 and "409" in out.stderr


def test_a_caller_that_hangs_up_cancels_its_approval(stack):
    marker = f"merger-{uuid.uuid4().hex[:8]}"
    bob = stack.token("bob", groups=("legal",))
    held = Held(stack, stack.token("fay", groups=("eng",)), f"merger talk ({marker})", timeout=2)
    a = pending_for(stack, bob, marker)
    held.join(10)
    assert held.error is not None  # the client gave up after 2 s
    deadline = time.time() + 10
    while time.time() < deadline:
        state = api(stack, bob, "GET", f"/v1/approvals/{a['id']}").json()["state"]
        if state != "pending":
            break
        time.sleep(0.2)
    assert state == "cancelled"
    r = api(stack, bob, "POST", f"/v1/approvals/{a['id']}/approve", json={"reason": "too late"})
    assert r.status_code == 409
    assert not received(stack, marker)


def test_fifty_concurrent_holds_each_get_their_own_decision(stack):
    bob = stack.token("bob", groups=("legal",))
    callers = {}
    for i in range(50):
        marker = f"merger-{uuid.uuid4().hex[:8]}"
        callers[marker] = (i % 2 == 0, Held(stack, stack.token(f"c{i}", groups=("eng",)), f"merger ({marker})"))
    for marker, (approve, _) in callers.items():
        a = pending_for(stack, bob, marker, timeout=20)
        verb = "approve" if approve else "deny"
        r = api(stack, bob, "POST", f"/v1/approvals/{a['id']}/{verb}", json={"reason": f"batch {verb}"})
        assert r.status_code == 200, r.text
    for marker, (approve, held) in callers.items():
        held.join(20)
        assert held.response is not None, marker
        assert held.response.status_code == (200 if approve else 403), (marker, held.response.text)
        assert bool(received(stack, marker)) == approve


@pytest.fixture(scope="module")
def strict(workdir):
    """A second gateway whose bundle needs two legal approvers, has a second approval rule
    with other reviewers, one that expires after 3 s, and one that names no reviewers."""
    text = (ROOT / "policies/default.yaml").read_text()
    text = text.replace("          approvals: 1\n          ttl_seconds: 120\n          mode: hold\n",
                        "          approvals: 2\n          ttl_seconds: 60\n          mode: hold\n" + EXTRA_RULES)
    assert "board-review" in text
    bundle = workdir / "bundle-strict-approvals.yaml"
    bundle.write_text(text)
    d = workdir / "strict-approvals"
    d.mkdir()
    ports = dict(listen=24000, admin=24901, grpc=24081, http=24082, upstream=24080, idp=PORTS["idp"])
    key = d / "webhook.key"
    key.write_text("webhook-test-key-of-at-least-32-bytes")
    hook = f"http://127.0.0.1:{HOOK_PORT}"
    s = Stack(d, bundle, ports=ports, base_id=24, server_args=[
        "--webhook", f"{hook}/generic", "--slack-webhook", f"{hook}/slack", "--webhook-key-file", key,
        "--public-url", "https://gatehouse.example.com"])
    try:
        s.start()
    except Exception:
        s.stop()
        print((d / "stack.log").read_text())
        raise
    yield s
    s.stop()


HOOK_PORT = 24500


class Hooks(http.server.BaseHTTPRequestHandler):
    """A webhook receiver: the first delivery to each path fails (503), later ones are kept."""
    seen, failed = [], set()

    def do_POST(self):
        body = self.rfile.read(int(self.headers["content-length"]))
        if self.path not in Hooks.failed:
            Hooks.failed.add(self.path)
            self.send_response(503)
            self.end_headers()
            return
        Hooks.seen.append((self.path, dict(self.headers), body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *a):
        pass


@pytest.fixture(scope="module")
def hooks():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", HOOK_PORT), Hooks)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield Hooks
    srv.shutdown()


def test_reviewers_are_notified_by_signed_webhook_and_slack_with_retries(strict, hooks):
    marker = f"merger-{uuid.uuid4().hex[:8]}"
    bob = strict.token("bob", groups=("legal",))
    held = Held(strict, strict.token("gus", groups=("eng",)), f"merger ({marker})")
    a = pending_for(strict, bob, marker)
    deadline = time.time() + 15  # the first attempt fails; the retry comes ~1 s later
    while time.time() < deadline:
        got = {p: (h, b) for p, h, b in hooks.seen if a["id"].encode() in b}
        if len(got) == 2:
            break
        time.sleep(0.2)
    assert set(got) == {"/generic", "/slack"}, list(got)
    headers, body = got["/generic"]
    ts = headers["x-gatehouse-timestamp"]
    mac = hmac.new(b"webhook-test-key-of-at-least-32-bytes", b"gatehouse/webhook/v1\n" + ts.encode() + b"\n" + body, hashlib.sha256)
    assert headers["x-gatehouse-signature"] == "sha256=" + mac.hexdigest()
    payload = json.loads(body)
    assert payload["type"] == "approval.pending" and payload["approval"]["id"] == a["id"]
    assert payload["approval"]["requester"]["principal"] == "gus"
    assert payload["decide"]["approve"] == f"https://gatehouse.example.com/v1/approvals/{a['id']}/approve"
    text = json.loads(got["/slack"][1])["text"]
    assert f"gatehouse approvals approve {a['id']}" in text and "legal-review" in text
    # The hold went on waiting meanwhile; decide it so the caller is not left hanging.
    carol = strict.token("carol", groups=("legal",))
    for who in (bob, carol):
        api(strict, who, "POST", f"/v1/approvals/{a['id']}/approve", json={"reason": "ok"})
    held.join(15)
    assert held.response.status_code == 200


EXTRA_RULES = """      - id: board-review
        action: require_approval
        literals: ["board pack"]
        approval:
          reviewers: {groups: [board]}
          ttl_seconds: 60
      - id: quick-review
        action: require_approval
        literals: ["quarterly numbers"]
        approval:
          reviewers: {groups: [legal]}
          ttl_seconds: 3
      - id: no-reviewers
        action: require_approval
        literals: ["insider list"]
      - id: big-model-review
        action: require_approval
        models: ["gpt-4.1*"]
        approval:
          reviewers: {groups: [legal]}
          ttl_seconds: 60
          mode: deferred
      - id: press-review
        action: require_approval
        literals: ["press release"]
        approval:
          reviewers: {groups: [legal]}
          ttl_seconds: 60
          mode: deferred
"""


def test_a_model_can_need_approval_whatever_the_prompt(strict):
    gus = strict.token("gus", groups=("eng",))
    r = strict.post("/v1/chat/completions", chat("hello", model="gpt-4.1"), token=gus)
    assert r.status_code == 403 and r.json()["error"]["code"] == "approval_pending"
    assert strict.post("/v1/chat/completions", chat("hello", model="gpt-4o"), token=gus).status_code == 200


def test_a_deferred_approval_lets_exactly_one_identical_retry_through(strict):
    gus = strict.token("gus", groups=("eng",))
    bob = strict.token("bob", groups=("legal",))
    text = f"draft the press release {uuid.uuid4().hex[:8]}"
    ask = lambda content=text, token=gus: strict.post(  # noqa: E731
        "/v1/chat/completions", chat(content, model="gpt-4o"), token=token)
    r = ask()
    assert r.status_code == 403 and r.json()["error"]["code"] == "approval_pending"
    apr = re.search(r"apr-[0-9a-f]+", r.json()["error"]["message"]).group(0)
    # Asking again before anyone decided points at the same approval.
    r = ask()
    assert r.status_code == 403 and apr in r.json()["error"]["message"]
    r = api(strict, bob, "POST", f"/v1/approvals/{apr}/approve", json={"reason": "fine"})
    assert r.status_code == 200 and r.json()["state"] == "approved"
    # A changed request, or the same one by someone else, is not what was approved.
    r = ask(text + " and more")
    assert r.status_code == 403 and apr not in r.json()["error"]["message"]
    r = ask(token=strict.token("hal", groups=("eng",)))
    assert r.status_code == 403 and apr not in r.json()["error"]["message"]
    # The identical retry passes, once: of several sent at the same moment, exactly one.
    results = []
    threads = [threading.Thread(target=lambda: results.append(ask().status_code)) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [200] + [403] * 5, results
    assert api(strict, bob, "GET", f"/v1/approvals/{apr}").json()["state"] == "used"
    r = ask()
    assert r.status_code == 403 and r.json()["error"]["code"] == "approval_pending"
    assert apr not in r.json()["error"]["message"]


def test_every_matched_approval_rule_needs_its_own_reviewers(strict):
    """A request two approval rules match waits for both rules' reviewers: approvals for
    the weaker rule do not stand in for the stricter one; a matched approval rule that names
    no reviewers refuses outright."""
    marker = f"merger-{uuid.uuid4().hex[:8]}"
    bob, carol = strict.token("bob", groups=("legal",)), strict.token("carol", groups=("legal",))
    dora = strict.token("dora", groups=("board",))
    held = Held(strict, strict.token("gus", groups=("eng",)), f"board pack: merger ({marker})")
    a = pending_for(strict, bob, marker)
    assert sorted(r["rule"] for r in a["requirements"]) == ["board-review", "legal-review"]
    for who in (bob, carol):
        assert api(strict, who, "POST", f"/v1/approvals/{a['id']}/approve", json={"reason": "ok"}).json()["state"] == "pending"
    assert held.is_alive()
    assert api(strict, dora, "POST", f"/v1/approvals/{a['id']}/approve", json={"reason": "ok"}).json()["state"] == "approved"
    held.join(15)
    assert held.response.status_code == 200
    r = strict.post("/v1/chat/completions", chat("merger and the insider list", model="gpt-4o"),
                    token=strict.token("gus", groups=("eng",)))
    assert r.status_code == 403 and r.json()["error"]["code"] == "approval_required"


def test_two_approvals_need_two_distinct_reviewers_and_a_hold_expires(strict):
    marker = f"merger-{uuid.uuid4().hex[:8]}"
    bob = strict.token("bob", groups=("legal",))
    carol = strict.token("carol", groups=("legal",))
    held = Held(strict, strict.token("gus", groups=("eng",)), f"merger ({marker})")
    a = pending_for(strict, bob, marker)
    assert api(strict, bob, "POST", f"/v1/approvals/{a['id']}/approve", json={"reason": "ok"}).json()["state"] == "pending"
    r = api(strict, bob, "POST", f"/v1/approvals/{a['id']}/approve", json={"reason": "ok again"})
    assert r.status_code == 409 and "already" in r.json()["error"]["message"]
    assert api(strict, carol, "POST", f"/v1/approvals/{a['id']}/approve", json={"reason": "ok"}).json()["state"] == "approved"
    held.join(15)
    assert held.response.status_code == 200
    # Nobody decides: the caller gets the expiry in the API's shape after the 3 s TTL.
    marker = f"quarterly numbers {uuid.uuid4().hex[:8]}"
    t0 = time.time()
    held = Held(strict, strict.token("gus", groups=("eng",)), f"summarise the {marker}")
    a = pending_for(strict, bob, marker)
    held.join(15)
    assert 2.5 < time.time() - t0 < 10
    assert held.response.status_code == 403
    assert held.response.json()["error"]["code"] == "approval_expired"
    assert api(strict, bob, "GET", f"/v1/approvals/{a['id']}").json()["state"] == "expired"
    assert not received(strict, marker)


def test_a_server_restart_mid_hold_loses_no_approval_and_cancels_the_dead_hold(stack):
    """The server holding a request dies (kill -9): the caller's request fails closed, the
    approval and its records survive the restart, and the hold nobody waits for any more is
    cancelled (with a record) instead of lingering as pending."""
    import os
    import signal
    from conftest import wait_http
    marker = f"merger-{uuid.uuid4().hex[:8]}"
    bob = stack.token("bob", groups=("legal",))
    held = Held(stack, stack.token("jan", groups=("eng",)), f"merger ({marker})")
    a = pending_for(stack, bob, marker)
    server = stack.procs[1]
    os.kill(server.pid, signal.SIGKILL)
    server.wait(timeout=10)
    held.join(15)
    assert held.error is not None or held.response.status_code >= 500
    assert not received(stack, marker)
    log = open(stack.dir / "stack.log", "a")
    stack.procs[1] = stack.start_server(log)
    wait_http(f"{stack.api}/healthz")
    deadline = time.time() + 30
    while time.time() < deadline:
        state = api(stack, bob, "GET", f"/v1/approvals/{a['id']}").json()["state"]
        if state != "pending":
            break
        time.sleep(0.5)
    assert state == "cancelled"
    recs = [r for r in stack.sessions(limit=500) if (r.get("approval") or {}).get("id") == a["id"]]
    assert sorted(r["approval"]["state"] for r in recs) == ["cancelled", "pending"]
    cancelled = next(r for r in recs if r["approval"]["state"] == "cancelled")
    assert cancelled["identity"]["principal"] == "gatehouse-server"
    assert "stopped" in cancelled["approval"]["reason"]
    r = api(stack, bob, "POST", f"/v1/approvals/{a['id']}/approve", json={"reason": "too late"})
    assert r.status_code == 409
