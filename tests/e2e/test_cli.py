"""The policy tools a platform team uses on its bundles."""
import subprocess

from conftest import BIN, ROOT

BROKEN = """apiVersion: gatehouse.dev/v1
kind: PolicyBundle
metadata:
  name: broken
policies:
  - id: p1
    models: ["gpt-*"]
    prompt_rules:
      - id: r1
        action: block
        regexes: ["(unclosed"]
      - id: r2
        action: block
        detectors: [no_such_detector]
"""


def run(*args):
    return subprocess.run([BIN, *args], capture_output=True, text=True, cwd=ROOT)


def test_broken_bundle_errors_name_file_line_and_field(tmp_path):
    f = tmp_path / "broken.yaml"
    f.write_text(BROKEN)
    r = run("policy", "check", str(f))
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert f"{f}:11:" in lines[0] and "policies[0].prompt_rules[0].regexes[0]" in lines[0]
    assert f"{f}:14:" in lines[1] and "no_such_detector" in lines[1]


def test_unknown_field_is_an_error_with_its_line(tmp_path):
    f = tmp_path / "typo.yaml"
    f.write_text(BROKEN.replace("    models:", "    modelz: []\n    models:"))
    r = run("policy", "check", str(f))
    assert r.returncode == 1
    assert ":7:" in r.stderr and "modelz" in r.stderr


def test_example_bundles_pass_check_and_their_tests():
    bundles = [str(p) for p in sorted((ROOT / "policies").rglob("*.yaml"))]
    r = run("policy", "check", *bundles)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("digest sha256:") == len(bundles)
    r = run("policy", "test", *bundles)
    assert r.returncode == 0, r.stdout
    assert " 0 failed" in r.stdout


def test_explain_names_policy_and_rule():
    r = run("policy", "explain", "policies/default.yaml", "--principal", "alice", "--group", "eng",
            "--body", '{"model":"gpt-4o","messages":[{"role":"user","content":"the merger"}]}')
    assert r.returncode == 0, r.stderr
    assert '"verdict": "require_approval"' in r.stdout
    assert '"legal-review"' in r.stdout


def test_detector_evaluation_reports_every_labeled_detector():
    r = run("eval", "tests/eval/corpus.jsonl")
    assert r.returncode == 0, r.stderr
    rows = {l.split()[0]: l.split() for l in r.stdout.splitlines()[2:]}
    for det in ["email", "phone", "payment_card", "iban", "us_ssn", "ipv4", "aws_access_key_id", "jwt"]:
        assert det in rows, r.stdout
    # Luhn and issuer checks keep card precision high; recall must stay complete.
    assert float(rows["payment_card"][5]) == 1.0
    assert float(rows["payment_card"][4]) >= 0.9
