"""The walking skeleton end to end: Envoy -> wasm filter -> ext_proc server -> upstream."""
import json
import pytest

import anthropic
import openai

from conftest import chat


def test_chat_completion_passes_every_hop(stack):
    r = stack.post("/v1/chat/completions", chat("hello there"), token=stack.token())
    assert r.status_code == 200, r.text
    # The filter identified the caller and picked the policy ...
    assert r.headers["x-gatehouse-policy"] == "engineering"
    assert len(r.headers["x-gatehouse-request-id"]) >= 8
    assert r.headers["x-gatehouse-verdict"] == "allow"
    # ... the ext_proc server processed the exchange ...
    assert r.headers["x-gatehouse-processed-by"] == "ext_proc"
    assert r.headers["x-gatehouse-session"] == r.headers["x-gatehouse-request-id"]
    # ... and the upstream answered, without seeing Gatehouse headers or the caller's token.
    assert r.headers["x-demo-upstream"] == "1"
    assert r.headers["x-demo-saw-gatehouse-headers"] == "false"
    assert r.headers["x-demo-saw-authorization"] == "false"
    content = r.json()["choices"][0]["message"]["content"]
    assert "You said: hello there" in content


def test_personal_data_in_answers_is_masked(stack):
    r = stack.post("/v1/chat/completions", chat("hi"), token=stack.token())
    content = r.json()["choices"][0]["message"]["content"]
    assert "jane.doe@example.com" not in content
    assert "[EMAIL]" in content and "[PHONE]" in content


def test_openai_sdk_non_streaming_and_streaming(stack):
    client = openai.OpenAI(base_url=stack.base + "/v1", api_key=stack.token(), max_retries=0)
    resp = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "ping"}])
    assert "[EMAIL]" in resp.choices[0].message.content
    text = ""
    for chunk in client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "ping"}], stream=True
    ):
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
    assert text.startswith("Sure. You can reach our support lead at [EMAIL] or call [PHONE].")
    assert "jane" not in text
    assert text.endswith("You said: ping")


def test_openai_sdk_raises_normal_api_error_on_block(stack):
    client = openai.OpenAI(base_url=stack.base + "/v1", api_key=stack.token(), max_retries=0)
    try:
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "deploy with AKIAQWERTYUIOPASDFGH please"}],
        )
        raise AssertionError("expected a PermissionDeniedError")
    except openai.PermissionDeniedError as e:
        assert e.status_code == 403
        assert e.body["code"] == "no-credentials"
        assert "AKIAQWERTYUIOPASDFGH" not in json.dumps(e.body)


def test_anthropic_sdk_messages(stack):
    client = anthropic.Anthropic(base_url=stack.base, api_key="unused", max_retries=0,
                                 default_headers={"authorization": f"Bearer {stack.token()}"})
    msg = client.messages.create(model="claude-sonnet-4", max_tokens=100,
                                 messages=[{"role": "user", "content": "hello"}])
    assert "[EMAIL]" in msg.content[0].text
    try:
        client.messages.create(model="claude-sonnet-4", max_tokens=100,
                               messages=[{"role": "user", "content": "about project kestrel"}])
        raise AssertionError("expected a PermissionDeniedError")
    except anthropic.PermissionDeniedError as e:
        assert e.status_code == 403
        assert e.body["type"] == "error" and e.body["error"]["type"] == "permission_error"
        assert "blocked-projects" in e.body["error"]["message"] or "blocked" in e.body["error"]["message"]


def test_model_allow_list_and_limits(stack):
    bob = stack.token(sub="bob", groups=())
    r = stack.post("/v1/chat/completions", chat("hi", model="gpt-4.1"), token=bob)
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "model_not_allowed"
    r = stack.post("/v1/chat/completions", chat("hi", max_tokens=4000), token=bob)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "max_completion_tokens"
    r = stack.post("/v1/chat/completions", chat("word " * 2500), token=bob)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "max_prompt_tokens"
    # 5,000 bytes but 1,000 tokens: over the filter's byte bound, under the exact count the
    # server makes (the filter has no vocabulary and leaves it to the server).
    r = stack.post("/v1/chat/completions", chat("word " * 1000), token=bob)
    assert r.status_code == 200, r.text


def test_completion_limit_is_clamped_for_engineers(stack):
    r = stack.post("/v1/chat/completions", chat("hi", max_tokens=100000), token=stack.token())
    assert r.status_code == 200, r.text
    assert r.headers["x-demo-max-tokens"] == "4096"


def test_every_decision_reaches_the_session_log(stack):
    tok = stack.token(sub="carol", groups=("eng",))
    ok = stack.post("/v1/chat/completions", chat("log me"), token=tok)
    blocked = stack.post("/v1/chat/completions", chat("key ghp_abcdefghijklmnopqrstuvwxyz0123456789"), token=tok)
    unauth = stack.post("/v1/chat/completions", chat("who am i"))
    assert (ok.status_code, blocked.status_code, unauth.status_code) == (200, 403, 401)
    ids = {ok.headers["x-gatehouse-request-id"], blocked.headers["x-gatehouse-request-id"],
           unauth.headers["x-gatehouse-request-id"]}
    import time
    deadline = time.time() + 5
    while time.time() < deadline:
        recs = {(r["request_id"], r["source"]): r for r in stack.sessions()}
        seen = {rid for rid, _ in recs}
        if ids <= seen:
            break
        time.sleep(0.1)
    assert ids <= seen, f"missing {ids - seen}"
    s = recs[(ok.headers["x-gatehouse-request-id"], "server")]
    assert s["v"] == 1 and s["kind"] == "exchange"
    assert s["identity"]["principal"] == "carol"
    assert s["decision"]["verdict"] == "allow"
    assert sum(s["response"]["masked"].values()) >= 2
    assert s["request"]["body"]["messages"][0]["content"] == "log me"
    # The answer as the client received it: masked.
    assert "[EMAIL]" in s["response"]["body"]["choices"][0]["message"]["content"]
    b = recs[(blocked.headers["x-gatehouse-request-id"], "filter")]
    assert b["kind"] == "refusal"
    assert b["decision"]["verdict"] == "block" and "no-credentials" in b["decision"]["rules"]
    assert b["identity"]["principal"] == "carol"
    u = recs[(unauth.headers["x-gatehouse-request-id"], "filter")]
    assert u["decision"]["status"] == 401 and u["decision"]["reason"] == "missing"
    assert u["decision"]["verdict"] == "unauthenticated" and "identity" not in u
    # Nothing the gateway was asked to mask or block is stored in clear.
    log = json.dumps(stack.sessions())
    assert "ghp_abcdefghijklmnopqrstuvwxyz0123456789" not in log
    assert "jane.doe@example.com" not in log


def test_streamed_secret_split_at_every_offset_is_masked(stack):
    """The demo answer starts with a fixed sentence holding an e-mail and a phone number; the
    stream is cut into two deltas at every byte offset around them."""
    import requests
    token = stack.token()
    canned = "Sure. You can reach our support lead at jane.doe@example.com or call +1 415 555 0134."
    start = canned.index("jane")
    for split in range(start - 2, len(canned) + 1):
        r = requests.post(stack.base + "/v1/chat/completions", timeout=10, stream=True,
                          headers={"authorization": f"Bearer {token}", "x-demo-split-at": str(split)},
                          json=chat("x", stream=True))
        assert r.status_code == 200
        raw = r.content.decode()
        assert "jane" not in raw and "example.com" not in raw and "555 0134" not in raw, (split, raw)
        text = ""
        for line in raw.splitlines():
            if line.startswith("data: ") and line != "data: [DONE]":
                delta = json.loads(line[6:])["choices"][0]["delta"]
                text += delta.get("content") or ""
        assert text.startswith("Sure. You can reach our support lead at [EMAIL] or call [PHONE]."), (split, text)


def test_anthropic_sdk_streaming_is_masked(stack):
    client = anthropic.Anthropic(base_url=stack.base, api_key="unused", max_retries=0,
                                 default_headers={"authorization": f"Bearer {stack.token()}"})
    text = ""
    with client.messages.stream(model="claude-sonnet-4", max_tokens=100,
                                messages=[{"role": "user", "content": "hello"}]) as s:
        for t in s.text_stream:
            text += t
    assert "[EMAIL]" in text and "[PHONE]" in text and "jane" not in text
    assert text.endswith("You said: hello")


def test_dry_run_policy_forwards_and_records_what_it_would_do(stack):
    import time
    tok = stack.token(sub="pat", groups=("pilot",))
    r = stack.post("/v1/chat/completions", chat("deploy with AKIAQWERTYUIOPASDFGH"), token=tok)
    assert r.status_code == 200, r.text
    assert r.headers["x-gatehouse-policy"] == "pilot"
    assert r.headers["x-gatehouse-verdict"] == "block"  # decided, not enforced
    content = r.json()["choices"][0]["message"]["content"]
    assert "jane.doe@example.com" in content  # dry-run masking sends the answer unchanged
    rid = r.headers["x-gatehouse-request-id"]
    deadline = time.time() + 5
    while time.time() < deadline:
        recs = [x for x in stack.sessions() if x["request_id"] == rid]
        if {x["source"] for x in recs} == {"filter", "server"}:
            break
        time.sleep(0.1)
    ev = next(x for x in recs if x["source"] == "filter")
    assert ev["decision"]["reason"] == "dry_run" and ev["decision"]["verdict"] == "block"
    assert ev["decision"]["enforced"] == "allow"
    sess = next(x for x in recs if x["source"] == "server")
    assert sess["decision"]["dry_run"] is True and sum(sess["response"]["masked"].values()) >= 1
    assert "AKIAQWERTYUIOPASDFGH" not in json.dumps(recs)


@pytest.mark.parametrize("stream", [False, True])
def test_answers_are_masked_as_a_reader_sees_them(stack, stream):
    """The demo model echoes the prompt: a mail address in full-width forms and one with
    zero-width spaces inside come back masked, characters a reader would see included."""
    import requests
    full_width = "\uff4a\uff41\uff4e\uff45\uff0e\uff44\uff4f\uff45\uff20\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45\uff0e\uff43\uff4f\uff4d"
    zero_width = "m\u200bax@exa\u200bmple.org"
    prompt = f"write to {full_width} and {zero_width} today"
    r = requests.post(stack.base + "/v1/chat/completions", timeout=10, stream=stream,
                      headers={"authorization": f"Bearer {stack.token()}"},
                      json=chat(prompt, stream=stream))
    assert r.status_code == 200, r.text
    if stream:
        text = ""
        for line in r.content.decode().splitlines():
            if line.startswith("data: ") and line != "data: [DONE]":
                text += json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
    else:
        text = r.json()["choices"][0]["message"]["content"]
    echo = text.split("You said: ", 1)[1]
    assert echo == "write to [EMAIL] and [EMAIL] today", echo
