"""Ways around the gateway, tried as an attacker would, through the real Envoy, filter and server.

Each case sends a credential the default bundle blocks (a fresh AWS key id per test) and asserts
both that the request was refused and that the demo upstream never received the credential.
"""
import base64
import http.client
import json
import os
import random
import socket
import stat
import subprocess

import pytest
import requests

from conftest import BIN, PORTS, chat

UPSTREAM = f"http://127.0.0.1:{PORTS['upstream']}"


def canary():
    return "AKIA" + "".join(random.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") for _ in range(16))


def received_by_upstream(needle):
    """Whether the demo upstream ever received `needle` in a path or body."""
    for r in requests.get(f"{UPSTREAM}/__demo/received", timeout=5).json():
        if needle in r["path"] or needle in r["body"]:
            return True
    return False


def raw(stack, method, path, body=b"", headers=None):
    """A request with exactly this method and path (no client-side normalisation)."""
    c = http.client.HTTPConnection("127.0.0.1", PORTS["listen"], timeout=10)
    c.putrequest(method, path, skip_accept_encoding=True)
    h = {"content-type": "application/json", "content-length": str(len(body))}
    h.update(headers or {})
    for k, v in h.items():
        c.putheader(k, v)
    c.endheaders(body)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, dict(r.getheaders()), data


def refused(status, data):
    assert status in (400, 403, 404, 405, 415), (status, data[:300])
    err = json.loads(data)["error"]
    assert "request id" in err["message"], err


PATHS = [
    "/v1/chat%2Fcompletions",      # Envoy unescapes: decided as the real route
    "/v1/chat%2fcompletions",
    "/v1//chat/completions",       # merged
    "/v1/./chat/completions",      # dot segments resolved
    "/v1/x/../chat/completions",
    "/v1/chat/c%6Fmpletions",      # unreserved escapes decoded by Envoy: the real route
    "/v1/chat/completions%3F",     # reserved escapes stay: not on the list
    "/V1/Chat/Completions",
    "/v1/chat/completions;x=1",
    "/v1/chat/completions/",
    "/openai/v1/chat/completions",
    "/api/generate",               # Ollama
    "/api/chat",
    "/generate",                   # TGI
    "/v1/complete",                # legacy Anthropic
    "/v1/chat/completions?x=1",
]


@pytest.mark.parametrize("path", PATHS)
def test_every_path_spelling_is_refused(stack, path):
    key = canary()
    status, _, data = raw(stack, "POST", path, json.dumps(chat(f"key {key}")).encode(),
                          {"authorization": f"Bearer {stack.token()}"})
    refused(status, data)
    assert not received_by_upstream(key)


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE", "GET", "OPTIONS"])
def test_every_other_method_is_refused(stack, method):
    key = canary()
    status, headers, data = raw(stack, method, "/v1/chat/completions",
                                json.dumps(chat(f"key {key}")).encode(),
                                {"authorization": f"Bearer {stack.token()}"})
    assert status == 405, data
    assert headers.get("allow") == "POST"
    assert not received_by_upstream(key)


def test_metadata_route_passes_without_a_body(stack):
    r = requests.get(stack.base + "/v1/models", headers={"authorization": f"Bearer {stack.token()}"},
                     timeout=10)
    assert r.status_code == 200
    assert r.json()["object"] == "list"


def bodies(key):
    """The credential in every field a model server reads."""
    text_b64 = base64.b64encode(f"notes: {key}".encode()).decode()
    yield "tool schema", chat("hi", tools=[{"type": "function", "function": {
        "name": "f", "parameters": {"type": "object", "properties": {"q": {"type": "string", "description": key}}}}}])
    yield "tool schema key", chat("hi", tools=[{"type": "function", "function": {
        "name": "f", "parameters": {"type": "object", "properties": {key: {"type": "string"}}}}}])
    yield "response_format", chat("hi", response_format={"type": "json_schema", "json_schema": {
        "name": "x", "schema": {"type": "object", "properties": {"a": {"enum": [key]}}}}})
    yield "stop", chat("hi", stop=[key])
    yield "metadata", chat("hi", metadata={"note": key})
    yield "legacy functions", chat("hi", functions=[{"name": "f", "description": key}])
    yield "unknown field", chat("hi", some_future_field={"deep": [{"x": key}]})
    yield "object key", chat("hi", metadata={key: "v"})
    yield "text data URI", {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{text_b64}"}}]}]}
    yield "file_data", {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": [
        {"type": "file", "file": {"filename": "a.txt", "file_data": f"data:text/plain;base64,{text_b64}"}}]}]}
    yield "tool arguments with escapes", {"model": "gpt-4o-mini", "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {
            "name": "f", "arguments": json.dumps({"q": key}).replace(key[:4], "\\u0041KIA")}}]}]}


@pytest.mark.parametrize("name", [n for n, _ in bodies("AKIAAAAAAAAAAAAAAAAA")])
def test_credential_in_any_field_is_refused(stack, name):
    key = canary()
    body = dict(bodies(key))[name]
    r = stack.post("/v1/chat/completions", body, token=stack.token())
    refused(r.status_code, r.content)
    assert not received_by_upstream(key), name


def test_anthropic_tool_schema_and_base64_document(stack):
    for make in [
        lambda k: {"model": "claude-sonnet-4", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}],
                   "tools": [{"name": "f", "input_schema": {"type": "object", "properties": {"q": {"description": k}}}}]},
        lambda k: {"model": "claude-sonnet-4", "max_tokens": 10, "messages": [{"role": "user", "content": [
            {"type": "document", "source": {"type": "base64", "media_type": "text/plain",
                                            "data": base64.b64encode(k.encode()).decode()}}]}]},
    ]:
        key = canary()
        r = stack.post("/v1/messages", make(key), token=stack.token())
        assert r.status_code == 403, r.text
        assert r.json()["type"] == "error"
        assert not received_by_upstream(key)


def test_binary_that_is_not_an_opaque_type_is_refused(stack):
    key = canary()
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": [
        {"type": "file", "file": {"filename": "a.bin", "file_data": "data:application/octet-stream;base64,"
                                  + base64.b64encode(b"\xff\xfe\x00" + key.encode()).decode()}}]}]}
    r = stack.post("/v1/chat/completions", body, token=stack.token())
    assert r.status_code == 415, r.text
    assert not received_by_upstream(key)


def test_duplicate_and_case_colliding_keys_are_refused(stack):
    key = canary()
    dup = '{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "%s", "content": "hi"}]}' % key
    case = '{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "Messages": [{"role": "user", "content": "%s"}]}' % key
    for body in (dup, case):
        r = stack.post("/v1/chat/completions", None, token=stack.token(), raw=body)
        assert r.status_code == 400, r.text
        assert "key" in r.json()["error"]["message"]
    assert not received_by_upstream(key)


def disguise(key, how):
    if how == "cyrillic":
        return key.replace("A", "\u0410")
    if how == "variation selector":
        return key[:6] + "\ufe0f" + key[6:]
    if how == "bidi isolate":
        return key[:6] + "\u2066" + key[6:10] + "\u2069" + key[10:]
    if how == "tag characters":
        return key[:6] + "\U000E0041\U000E0042" + key[6:]
    if how == "combining mark":
        return key[:6] + "\u0301" + key[6:]
    if how == "zero-width space":
        return key[:6] + "\u200b" + key[6:]
    if how == "fullwidth":
        return "".join(chr(ord(c) + 0xFEE0) for c in key)
    raise ValueError(how)


@pytest.mark.parametrize("how", ["cyrillic", "variation selector", "bidi isolate", "tag characters",
                                 "combining mark", "zero-width space", "fullwidth"])
def test_disguised_characters_are_read_as_people_read_them(stack, how):
    key = canary()
    r = stack.post("/v1/chat/completions", chat(f"my key is {disguise(key, how)}"), token=stack.token())
    assert r.status_code == 403, (how, r.text)
    assert r.json()["error"]["code"] == "no-credentials"
    # The literal rule too: a look-alike in "project kestrel".
    r = stack.post("/v1/chat/completions", chat("status of pr\u043eject k\u0435strel?"), token=stack.token())
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "blocked-projects"


def test_token_ids_are_decoded(stack):
    # o200k_base ids of "key AKIAQWERTYUIOPASDFGH" would be needed to spell a key; ids that are
    # not in the vocabulary cannot be read, so they are refused.
    r = stack.post("/v1/completions", {"model": "gpt-4o-mini", "prompt": [[999999999]]}, token=stack.token())
    assert r.status_code == 400, r.text


def test_limit_fields_must_be_whole_numbers_and_n_counts(stack):
    t = stack.token("bob", groups=())  # the `everyone` policy: 512 completion tokens, reject
    for extra in ({"max_tokens": 8.0}, {"max_tokens": "8"}, {"max_tokens": 300, "n": 2},
                  {"max_tokens": 10, "max_completion_tokens": 5000}):
        r = stack.post("/v1/chat/completions", chat("hi", **extra), token=t)
        assert r.status_code == 400, (extra, r.text)
        assert r.json()["error"]["code"] == "max_completion_tokens"


def h2_request(path, headers, body, trailers):
    """One HTTP/2 (prior knowledge) request whose body ends with trailers."""
    import h2.config
    import h2.connection
    import h2.events
    s = socket.create_connection(("127.0.0.1", PORTS["listen"]), timeout=10)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    sid = conn.get_next_available_stream_id()
    conn.send_headers(sid, [(":method", "POST"), (":path", path), (":scheme", "http"),
                            (":authority", "127.0.0.1")] + headers)
    conn.send_data(sid, body)
    conn.send_headers(sid, trailers, end_stream=True)
    s.sendall(conn.data_to_send())
    status, data, done = None, b"", False
    while not done:
        chunk = s.recv(65536)
        if not chunk:
            break
        for ev in conn.receive_data(chunk):
            if isinstance(ev, h2.events.ResponseReceived):
                status = int(dict(ev.headers)[b":status"])
            elif isinstance(ev, h2.events.DataReceived):
                data += ev.data
                conn.acknowledge_received_data(ev.flow_controlled_length, sid)
            elif isinstance(ev, (h2.events.StreamEnded, h2.events.StreamReset)):
                done = True
        s.sendall(conn.data_to_send())
    s.close()
    return status, data


def test_h2_request_trailers_end_the_body(stack):
    key = canary()
    h = [("authorization", f"Bearer {stack.token()}"), ("content-type", "application/json")]
    status, data = h2_request("/v1/chat/completions", h, json.dumps(chat(f"key {key}")).encode(),
                              [("x-trailer", "1")])
    assert status == 403, data
    assert not received_by_upstream(key)
    status, data = h2_request("/v1/chat/completions", h, json.dumps(chat("hello")).encode(),
                              [("x-trailer", "1")])
    assert status == 200, data


def test_input_that_crashed_the_server_and_the_next_request(stack):
    # A dry-run policy forwards the request; recording it redacts a byte-oriented match that
    # ends inside a multi-byte character (secret_assignment's 128-byte cap).
    t = stack.token("pat", groups=("pilot",))
    r = stack.post("/v1/chat/completions", chat("password: " + "é" * 200, model="gpt-4o-mini"), token=t)
    assert r.status_code == 200, r.text
    r = stack.post("/v1/chat/completions", chat("hello"), token=stack.token())
    assert r.status_code == 200, r.text


def test_non_utf8_header_values_do_not_crash_the_filter(stack):
    status, _, data = raw(stack, "POST", "/v1/chat/completions", json.dumps(chat("hi")).encode(),
                          {"authorization": f"Bearer {stack.token()}", "x-request-id": b"\xff\xfe\x80",
                           "content-encoding": b"gz\xffip"})
    assert status == 415, data
    status, _, _ = raw(stack, "POST", "/v1/chat/completions", json.dumps(chat("hi")).encode(),
                       {"authorization": b"Bearer \xff\xfe"})
    assert status == 401
    r = stack.post("/v1/chat/completions", chat("hello"), token=stack.token())
    assert r.status_code == 200


EMAIL = "jane.doe@example.com"


def test_logprobs_reasoning_and_keys_never_carry_a_masked_value(stack):
    h = {"x-demo-extras": "1"}
    r = stack.post("/v1/chat/completions", chat("hi"), token=stack.token(), headers=h)
    assert r.status_code == 200, r.text
    assert EMAIL not in r.text and "jane" not in r.text, r.text
    v = r.json()
    assert v["choices"][0].get("logprobs") is None
    assert "[EMAIL]" in v["choices"][0]["message"]["reasoning_content"]
    r = stack.post("/v1/chat/completions", chat("hi", stream=True), token=stack.token(), headers=h)
    assert r.status_code == 200
    reasoning = ""
    for line in r.text.splitlines():
        if line.startswith("data: {"):
            ev = json.loads(line[6:])
            for c in ev.get("choices", []):
                assert c.get("logprobs") is None, ev
                reasoning += c.get("delta", {}).get("reasoning_content") or ""
    assert EMAIL not in reasoning and "[EMAIL]" in reasoning, reasoning


def test_forged_events_and_unauthenticated_session_reads(stack):
    ev = {"kind": "filter_decision", "request_id": "forged", "status": 200}
    r = requests.post(f"{stack.api}/v1/events", json=ev, timeout=5)
    assert r.status_code == 401
    r = requests.post(f"{stack.api}/v1/events", json=ev, timeout=5,
                      headers={"x-gatehouse-event-signature": "00" * 32})
    assert r.status_code == 401
    assert not any(s.get("request_id") == "forged" for s in stack.sessions())
    assert requests.get(f"{stack.api}/v1/sessions", timeout=5).status_code == 401
    r = requests.get(f"{stack.api}/v1/sessions", timeout=5,
                     headers={"authorization": f"Bearer {stack.token('alice', groups=('eng',))}"})
    assert r.status_code == 403


def test_token_within_the_leeway_passes_both_halves(stack):
    t = stack.token(ttl=-10)  # expired 10 s ago; the dev issuer allows 30 s of leeway
    r = stack.post("/v1/chat/completions", chat("hello"), token=t)
    assert r.status_code == 200, r.text


def test_request_ids_are_the_gateways_own(stack):
    r = stack.post("/v1/chat/completions", chat("hello"), token=stack.token(),
                   headers={"x-request-id": "caller-chosen-id"})
    assert r.status_code == 200
    rid = r.headers["x-gatehouse-request-id"]
    assert rid != "caller-chosen-id" and len(rid) == 24
    rec = [s for s in stack.sessions() if s.get("request_id") == rid]
    assert rec and rec[0]["client_request_id"] == "caller-chosen-id"


def test_secrets_stay_out_of_config_dump_and_files_are_private(stack):
    key = (stack.dir / "handoff.key").read_text().strip()
    dump = requests.get(f"{stack.admin}/config_dump", timeout=5).text
    assert key not in dump
    for f in ["handoff.key", "mask.key", "dev-issuer.pem", "store/sessions.db", "store/checkpoint.key"]:
        mode = stat.S_IMODE(os.stat(stack.dir / f).st_mode)
        assert mode == 0o600, (f, oct(mode))


def test_server_refuses_a_bundle_it_does_not_run(stack):
    """The server restarted on another bundle revision: hand-offs of the old digest get 503."""
    server = stack.procs[1]
    server.terminate()
    server.wait(timeout=10)
    other = stack.dir / "other-bundle.yaml"
    other.write_text((stack.dir / "bundle.yaml").read_text().replace("name: default", "name: default-next", 1))
    log = open(stack.dir / "stack.log", "a")
    args = [BIN, "serve", "--bundle", other, "--handoff-key-file", stack.dir / "handoff.key",
            "--mask-key-file", stack.dir / "mask.key", "--store", stack.dir / "store",
            "--grpc", f"127.0.0.1:{PORTS['grpc']}", "--http", f"127.0.0.1:{PORTS['http']}"]
    try:
        stack.procs[1] = subprocess.Popen(args, stdout=log, stderr=log)
        from conftest import wait_http
        wait_http(f"{stack.api}/healthz")
        key = canary()
        r = stack.post("/v1/chat/completions", chat(f"hello {key[:3]}"), token=stack.token())
        assert r.status_code == 503, r.text
        assert "request id" in r.json()["error"]["message"]
    finally:
        stack.procs[1].terminate()
        stack.procs[1].wait(timeout=10)
        args[3] = stack.dir / "bundle.yaml"
        stack.procs[1] = subprocess.Popen(args, stdout=log, stderr=log)
        from conftest import wait_http
        wait_http(f"{stack.api}/healthz")
    r = stack.post("/v1/chat/completions", chat("hello"), token=stack.token())
    assert r.status_code == 200, r.text


# Found by an attacker review of the first version of these fixes.

def tag(s):
    return "".join(chr(0xE0000 + ord(c)) for c in s)


@pytest.mark.parametrize("name", ["after an image prefix", "tag characters", "glued to a word",
                                  "tab inside a literal", "negative squared letters", "small capitals",
                                  "remote file", "object key"])
def test_review_findings_are_refused(stack, name):
    key = canary()
    content = {
        "after an image prefix": f"data:image/png;base64,iVBORw0KGgoA\nmy key is {key}",
        "tag characters": "my key: " + tag(key),
        "glued to a word": f"key_{key}x",
        "tab inside a literal": "what about project\tkestrel",
        "negative squared letters": "project " + "".join(chr(0x1F170 + ord(c) - ord("a")) for c in "kestrel"),
        "small capitals": "project \u1d0b\u1d07\ua731\u1d1b\u0280\u1d07\u029f",
        "remote file": None,
        "object key": None,
    }[name]
    if name == "remote file":
        body = {"model": "gpt-4o-mini", "input": [{"role": "user", "content": [
            {"type": "input_file", "file_url": f"https://files.example/{key}.pdf"}]}]}
        r = stack.post("/v1/responses", body, token=stack.token())
    elif name == "object key":
        r = stack.post("/v1/chat/completions", chat("hi", metadata={key: "x"}), token=stack.token())
    else:
        r = stack.post("/v1/chat/completions", chat(content), token=stack.token())
    refused(r.status_code, r.content)
    assert not received_by_upstream(key)
    # Neither the reply nor the session log names the value.
    assert key not in r.text
    assert not any(key in json.dumps(s) for s in stack.sessions())


def test_card_followed_by_its_cvv_is_refused_and_masked(stack):
    r = stack.post("/v1/chat/completions", chat("card 4111 1111 1111 1111 123"), token=stack.token())
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "customer-data"


def test_kelvin_sign_and_case_variants_of_limit_fields(stack):
    t = stack.token("bob", groups=())
    r = stack.post("/v1/chat/completions", None, token=t,
                   raw='{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_to\u212aens": 100000}')
    assert r.status_code == 400, r.text
    for extra in ({"Max_Tokens": 100000}, {"max_tokens": 100, "best_of": 50}):
        r = stack.post("/v1/chat/completions", chat("hi", **extra), token=t)
        assert r.status_code == 400, (extra, r.text)


def test_expansion_bomb_is_refused_quickly(stack):
    import gzip
    import time
    bomb = json.dumps(chat("\ufdfa" * 400_000), ensure_ascii=False).encode()
    started = time.time()
    r = stack.post("/v1/chat/completions", None, token=stack.token(), raw=gzip.compress(bomb),
                   headers={"content-encoding": "gzip"})
    assert r.status_code in (400, 413), r.text
    assert time.time() - started < 5


def leaves(v):
    if isinstance(v, str):
        yield v
    elif isinstance(v, (int, float)) and not isinstance(v, bool):
        yield str(v)
    elif isinstance(v, list):
        for x in v:
            yield from leaves(x)
    elif isinstance(v, dict):
        for k, x in v.items():
            yield k
            yield from leaves(x)


def client_text(body: bytes):
    """What a client reading the answer gets: every string of every event, joined in order
    (clients join deltas), as a lenient parser (Python's json: NaN, last duplicate) reads it."""
    import re
    text = body.decode("utf-8", "replace")
    out = []
    try:
        out.extend(leaves(json.loads(text)))
    except ValueError:
        for ev in re.split(r"\r\n\r\n|\n\n|\r\r", text):
            data = "\n".join(l[5:].lstrip() for l in re.split(r"\r\n|\r|\n", ev) if l.startswith("data:"))
            try:
                out.extend(leaves(json.loads(data)))
            except ValueError:
                out.append(data)
    unescaped = re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), text)
    return "".join(out), unescaped


@pytest.mark.parametrize("mode", ["choices-not-object", "cr-only", "typed-chunk", "tool-name-split",
                                  "responses-item-ids", "anthropic-start", "nan-data", "escaped-text",
                                  "number-card", "dup-key"])
def test_hostile_answer_shapes_never_leak_a_masked_value(stack, mode):
    r = stack.post("/v1/chat/completions", chat("hi"), token=stack.token(), headers={"x-demo-raw": mode})
    joined, raw_text = client_text(r.content)
    for secret in ("jane.doe@example.com", "4111111111111111", "4111 1111 1111 1111"):
        assert secret not in joined and secret not in raw_text, (mode, r.status_code, r.content[:400])
    assert r.status_code in (200, 500, 502), r.status_code
