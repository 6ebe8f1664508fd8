"""Attacks on the filter: each must be refused."""
import base64
import gzip
import json
import subprocess

from conftest import BIN, chat


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_missing_token_is_401_with_www_authenticate(stack):
    r = stack.post("/v1/chat/completions", chat("hi"))
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
    assert r.json()["error"]["type"] == "authentication_error"


def test_alg_none_is_refused(stack):
    good = stack.token()
    payload = good.split(".")[1]
    forged = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode()) + "." + payload + "."
    r = stack.post("/v1/chat/completions", chat("hi"), token=forged)
    assert r.status_code == 401


def test_hs256_signed_with_the_rsa_public_key_is_refused(stack):
    import hashlib
    import hmac
    pem = subprocess.run([BIN, "dev", "public-key", "--dir", stack.dir], check=True,
                         capture_output=True).stdout
    payload = stack.token().split(".")[1]
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "gatehouse-dev-1"}).encode())
    signing_input = f"{head}.{payload}".encode()
    sig = b64(hmac.new(pem, signing_input, hashlib.sha256).digest())
    r = stack.post("/v1/chat/completions", chat("hi"), token=f"{head}.{payload}.{sig}")
    assert r.status_code == 401
    assert "HS256" in r.json()["error"]["message"]


def test_expired_wrong_audience_wrong_issuer_tampered(stack):
    for tok, why in [
        (stack.token(ttl=-600), "expired"),
        (stack.token(aud="someone-else"), "audience"),
        (stack.token(iss="https://evil.example"), "issuer"),
    ]:
        r = stack.post("/v1/chat/completions", chat("hi"), token=tok)
        assert r.status_code == 401, why
        assert why in r.json()["error"]["message"], r.text
    t = stack.token()
    h, p, s = t.split(".")
    claims = json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
    claims["sub"] = "root"
    r = stack.post("/v1/chat/completions", chat("hi"), token=f"{h}.{b64(json.dumps(claims).encode())}.{s}")
    assert r.status_code == 401


def test_spoofed_gatehouse_headers_are_stripped(stack):
    bob = stack.token(sub="bob", groups=())
    spoof = {"x-gatehouse-policy": "engineering", "x-gatehouse-principal": "admin",
             "x-gatehouse-identity": "e30", "x-gatehouse-signature": "00", "X-Gatehouse-Verdict": "allow"}
    r = stack.post("/v1/chat/completions", chat("hi"), token=bob, headers=spoof)
    assert r.status_code == 200, r.text
    assert r.headers["x-gatehouse-policy"] == "everyone"
    assert r.headers["x-demo-saw-gatehouse-headers"] == "false"
    # gpt-4.1 is only for engineers: the spoofed policy header gave bob nothing.
    r = stack.post("/v1/chat/completions", chat("hi", model="gpt-4.1"), token=bob, headers=spoof)
    assert r.status_code == 403


def test_blocked_word_in_json_unicode_escapes(stack):
    raw = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"about \\u0070roject \\u004eightingale"}]}'
    r = stack.post("/v1/chat/completions", None, token=stack.token(), raw=raw)
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "blocked-projects"


def test_blocked_word_hidden_with_fullwidth_and_zero_width(stack):
    r = stack.post("/v1/chat/completions", chat("ｐｒｏｊｅｃｔ night\u200bingale"), token=stack.token())
    assert r.status_code == 403


def test_gzip_body_with_blocked_word(stack):
    raw = gzip.compress(json.dumps(chat("tell me about Project Kestrel")).encode())
    r = stack.post("/v1/chat/completions", None, token=stack.token(), raw=raw,
                   headers={"content-encoding": "gzip"})
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "blocked-projects"
    ok = gzip.compress(json.dumps(chat("a harmless question")).encode())
    r = stack.post("/v1/chat/completions", None, token=stack.token(), raw=ok,
                   headers={"content-encoding": "gzip"})
    assert r.status_code == 200, r.text


def test_unknown_content_encoding_is_415(stack):
    r = stack.post("/v1/chat/completions", None, token=stack.token(), raw=b"\x00\x01",
                   headers={"content-encoding": "br"})
    assert r.status_code == 415


def test_blocked_word_in_every_text_field(stack):
    tok = stack.token()
    word = "project nightingale"
    cases = [
        ("/v1/chat/completions", {"model": "gpt-4o", "messages": [
            {"role": "system", "content": f"You know {word}."}, {"role": "user", "content": "hi"}]}),
        ("/v1/chat/completions", {"model": "gpt-4o", "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function",
             "function": {"name": "search", "arguments": json.dumps({"q": word})}}]}]}),
        ("/v1/responses", {"model": "gpt-4o", "input": [
            {"role": "user", "content": [{"type": "input_text", "text": f"what is {word}"}]}]}),
        ("/v1/messages", {"model": "claude-sonnet-4", "max_tokens": 50, "messages": [
            {"role": "user", "content": [{"type": "text", "text": f"notes on {word}"}]}]}),
    ]
    for path, body in cases:
        r = stack.post(path, body, token=tok)
        assert r.status_code == 403, (path, r.text)
        if path == "/v1/messages":
            assert r.json()["type"] == "error"
            assert r.json()["error"]["type"] == "permission_error"
        else:
            assert r.json()["error"]["code"] == "blocked-projects"


def test_oversized_body_is_413(stack):
    body = chat("x" * (2 * 1024 * 1024))
    r = stack.post("/v1/chat/completions", body, token=stack.token())
    assert r.status_code == 413


def test_malformed_json_is_400(stack):
    r = stack.post("/v1/chat/completions", None, token=stack.token(), raw='{"model": "gpt-4o-mini", "messages": [')
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "malformed_request"
