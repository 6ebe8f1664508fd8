#!/usr/bin/env python3
"""Generate tests/eval/corpus.jsonl: model-output-like sentences with labeled personal data
and credentials, plus look-alikes that must NOT be detected (Luhn-failing card numbers, IBANs
with a wrong check, impossible SSNs and IPs, truncated keys, version strings, ...).

Each line: {"text": ..., "labels": [{"detector": NAME, "value": VALUE}, ...]}.
Deterministic (fixed seed), so the figures in docs/EVALUATION.md are reproducible."""
import json
import pathlib
import random
import string

rng = random.Random(20261126)
OUT = pathlib.Path(__file__).with_name("corpus.jsonl")


def luhn_digit(prefix):
    digits = [int(c) for c in prefix]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def card(valid=True):
    prefix = rng.choice(["4", "51", "52", "55", "37", "6011"])
    length = 15 if prefix == "37" else 16
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    check = luhn_digit(body)
    if not valid:
        check = str((int(check) + rng.randint(1, 9)) % 10)
    n = body + check
    sep = rng.choice(["", " ", "-"])
    return sep.join(n[i:i + 4] for i in range(0, len(n), 4)) if sep else n


def iban(valid=True):
    country, length = rng.choice([("DE", 22), ("GB", 22), ("FR", 27), ("NL", 18), ("ES", 24)])
    if country == "GB":
        bban = "".join(rng.choice(string.ascii_uppercase) for _ in range(4)) + "".join(
            rng.choice(string.digits) for _ in range(14))
    elif country == "NL":
        bban = "".join(rng.choice(string.ascii_uppercase) for _ in range(4)) + "".join(
            rng.choice(string.digits) for _ in range(10))
    else:
        bban = "".join(rng.choice(string.digits) for _ in range(length - 4))
    num = "".join(str(int(c, 36)) for c in bban + country + "00")
    check = 98 - int(num) % 97
    if not valid:
        check = (check + rng.randint(1, 50)) % 97 + 2
    s = f"{country}{check:02d}{bban}"
    return " ".join(s[i:i + 4] for i in range(0, len(s), 4)) if rng.random() < 0.5 else s


def ssn(valid=True):
    if valid:
        return f"{rng.randint(1, 665):03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"
    return rng.choice([f"000-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}",
                       f"666-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}",
                       f"9{rng.randint(0, 99):02d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}",
                       f"{rng.randint(1, 665):03d}-00-{rng.randint(1, 9999):04d}"])


def email():
    user = rng.choice(["jane.doe", "m.lopez", "ops-team", "k_ito", "sam+billing", "a.b.c"])
    dom = rng.choice(["example.com", "contoso.co.uk", "mail.fabrikam.io", "northwind.de"])
    return f"{user}@{dom}"


def phone():
    return rng.choice([f"+1 415 555 {rng.randint(1000, 9999)}", f"+44 20 7946 {rng.randint(1000, 9999)}",
                       f"(212) 555-{rng.randint(1000, 9999)}", f"+49 30 {rng.randint(100000, 999999)}"])


def ipv4(valid=True):
    if valid:
        return ".".join(str(rng.randint(1, 254)) for _ in range(4))
    return f"{rng.randint(256, 999)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}"


def aws(valid=True):
    body = "".join(rng.choice(string.ascii_uppercase + "234567") for _ in range(16 if valid else 12))
    return "AKIA" + body


def ghp(valid=True):
    body = "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(36 if valid else 20))
    return "ghp_" + body


def openai_key():
    return "sk-proj-" + "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(48))


def jwt():
    import base64
    def b(x):
        return base64.urlsafe_b64encode(x.encode()).rstrip(b"=").decode()
    sig = "".join(rng.choice(string.ascii_letters + string.digits + "-_") for _ in range(43))
    return f"{b(json.dumps({'alg': 'RS256', 'typ': 'JWT'}))}.{b(json.dumps({'sub': 'u' + str(rng.randint(1, 999))}))}.{sig}"


POSITIVE = [
    ("email", email, "You can reach the account owner at {} for the refund."),
    ("email", email, "Sure — forward the invoice to {}, they handle billing."),
    ("phone", phone, "Call the support desk on {} between 9 and 5."),
    ("payment_card", lambda: card(True), "The customer paid with card {} last Tuesday."),
    ("iban", lambda: iban(True), "Please transfer the deposit to IBAN {} before Friday."),
    ("us_ssn", lambda: ssn(True), "The applicant's SSN is {} according to the form."),
    ("ipv4", lambda: ipv4(True), "The failing host is at {} in the staging subnet."),
    ("aws_access_key_id", lambda: aws(True), "Your config still contains {} as the access key."),
    ("github_token", lambda: ghp(True), "Replace the hard-coded token {} with a secret."),
    ("openai_api_key", openai_key, "The script sets OPENAI_API_KEY={} at the top."),
    ("jwt", jwt, "Here is the bearer token from the log: {}"),
]
NEGATIVE = [
    (lambda: card(False), "Order number {} has shipped."),
    (lambda: iban(False), "Reference {} was rejected by the bank."),
    (lambda: ssn(False), "Ticket {} was closed."),
    (lambda: ipv4(False), "Version {} of the firmware is out."),
    (lambda: aws(False), "The placeholder {} is not a real key."),
    (lambda: ghp(False), "Tokens look like {}... but this one is cut."),
    (lambda: f"{rng.randint(1, 12)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}", "Upgrade to release {} first."),
    (lambda: f"{rng.randint(10, 23)}:{rng.randint(10, 59)}", "The meeting starts at {} sharp."),
    (lambda: f"user at example dot com", "Write to {} if the form fails."),
    (lambda: "".join(rng.choice(string.digits) for _ in range(8)), "Your confirmation code is {}."),
    # Hard cases a format-based detector cannot tell apart (expected false positives):
    # four-part build numbers look like IPv4 addresses, and one order number in ten passes Luhn.
    (lambda: f"{rng.randint(1, 9)}.{rng.randint(0, 9)}.{rng.randint(0, 9)}.{rng.randint(1, 99)}", "Build {} fixed the crash."),
    (lambda: "4" + "".join(rng.choice(string.digits) for _ in range(15)), "Tracking number {} is in transit."),
]
HARD_POSITIVE = [
    ("email", lambda: email().upper(), "Escalate to {} please."),
    ("phone", lambda: f"415.555.{rng.randint(1000, 9999)}", "Her direct line is {}."),
    ("payment_card", lambda: card(True).replace(" ", "-"), "Card on file: {}."),
]

lines = []
for _ in range(40):
    for det, gen, tmpl in POSITIVE:
        v = gen()
        lines.append({"text": tmpl.format(v), "labels": [{"detector": det, "value": v}]})
    for gen, tmpl in NEGATIVE:
        lines.append({"text": tmpl.format(gen()), "labels": []})
    for det, gen, tmpl in HARD_POSITIVE:
        v = gen()
        lines.append({"text": tmpl.format(v), "labels": [{"detector": det, "value": v}]})
rng.shuffle(lines)
OUT.write_text("".join(json.dumps(l) + "\n" for l in lines))
print(f"wrote {OUT}: {len(lines)} samples")
