//! Validity checks of credential values: placeholders, passwords in URLs, Basic credentials,
//! assignments, OpenAI keys.

use crate::detectors::checks::{shannon_entropy, token_entropy};

/// A value that stands in for a secret rather than being one, judged on the whole value:
/// `****`, `xxxxxxxx`, `${VAR}`, `$VAR`, `$(cmd)`, `<password>`, `{{ secret }}`, `[REDACTED]`,
/// `%s`, `your_api_key`, `abc...`, or a word such as `password` or `changeme`. A real secret
/// that merely starts with `$` or contains `<` is not one.
pub(super) fn placeholder(v: &[u8]) -> bool {
    let v = trim_quotes(v);
    if v.is_empty() || v.iter().all(|&b| b == v[0]) {
        return true;
    }
    let name_char = |b: &u8| b.is_ascii_alphanumeric() || *b == b'_';
    let enclosed = |open: &[u8], close: &[u8]| v.starts_with(open) && v.ends_with(close);
    let variable = v[0] == b'$'
        && (v[1..].iter().all(name_char) || enclosed(b"${", b"}") || enclosed(b"$(", b")"));
    let format =
        v[0] == b'%' && v.len() <= 16 && v[1..].iter().all(|b| name_char(b) || b"()".contains(b));
    let wrapped = enclosed(b"<", b">")
        || enclosed(b"{{", b"}}")
        || enclosed(b"{", b"}")
        || enclosed(b"[", b"]")
        || enclosed(b"(", b")");
    let masked = v.iter().filter(|b| matches!(b, b'x' | b'X' | b'*')).count() * 2 >= v.len();
    if variable || format || wrapped || masked || v.ends_with(b"...") {
        return true;
    }
    let low = v.to_ascii_lowercase();
    let has = |s: &[u8]| low.windows(s.len()).any(|w| w == s);
    const WORDS: &[&[u8]] = &[
        b"password",
        b"passwd",
        b"pass",
        b"pwd",
        b"secret",
        b"changeme",
        b"change_me",
        b"change-me",
        b"example",
        b"placeholder",
        b"redacted",
        b"dummy",
        b"sample",
        b"guest",
        b"anonymous",
        b"null",
        b"none",
        b"undefined",
        b"username",
        b"user",
        b"token",
        b"password1",
        b"password123",
        b"secret123",
        b"changeit",
        b"letmein",
        b"hunter2",
    ];
    // `password123`, `secret_1` and the like: a placeholder word plus digits.
    let numbered = [
        &b"password"[..],
        b"passwd",
        b"secret",
        b"changeme",
        b"example",
    ]
    .iter()
    .any(|w| {
        low.starts_with(w)
            && low[w.len()..]
                .iter()
                .all(|b| b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'!'))
    });
    // `your_api_key_here`, `YourPassword`: words, no digits.
    let yours = low.starts_with(b"your")
        && low
            .iter()
            .all(|b| b.is_ascii_lowercase() || matches!(b, b'_' | b'-' | b' '));
    numbered || WORDS.iter().any(|w| low == *w) || yours || has(b"${") || has(b"{{")
}

/// `%XX` escapes of a URL's user information decoded (invalid escapes kept as written).
fn percent_decoded(v: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        match (
            v[i],
            v.get(i + 1).copied().and_then(hex),
            v.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

pub(super) fn trim_quotes(v: &[u8]) -> &[u8] {
    let q = |b: &u8| matches!(b, b'"' | b'\'' | b'`');
    let start = v.iter().position(|b| !q(b)).unwrap_or(v.len());
    let end = v.iter().rposition(|b| !q(b)).map_or(start, |i| i + 1);
    &v[start..end.max(start)]
}

/// `scheme://user:password@host`: the password is present and not a placeholder.
pub(super) fn valid_url_password(m: &[u8]) -> bool {
    let Some(i) = m.windows(3).position(|w| w == b"://") else {
        return false;
    };
    let rest = &m[i + 3..];
    let Some(at) = rest.iter().rposition(|&b| b == b'@') else {
        return false;
    };
    let userinfo = &rest[..at];
    let Some(colon) = userinfo.iter().position(|&b| b == b':') else {
        return false;
    };
    let pw = percent_decoded(&userinfo[colon + 1..]);
    pw.len() >= 3 && !placeholder(&pw)
}

/// `...password=value` (JDBC and similar): the value after the last `=` is not a placeholder.
pub(super) fn valid_param_password(m: &[u8]) -> bool {
    match m.iter().rposition(|&b| b == b'=') {
        Some(i) => {
            let v = &m[i + 1..];
            v.len() >= 3 && !placeholder(v)
        }
        None => false,
    }
}

/// `curl -u user:password`: the password (after the first `:` of the last word) is real.
pub(super) fn valid_curl_password(m: &[u8]) -> bool {
    let word = m
        .rsplit(|b| b.is_ascii_whitespace())
        .next()
        .map(trim_quotes)
        .unwrap_or_default();
    match word.iter().position(|&b| b == b':') {
        Some(i) => {
            let pw = trim_quotes(&word[i + 1..]);
            pw.len() >= 3 && !placeholder(pw)
        }
        None => false,
    }
}

/// Standard base64 (RFC 4648, padding optional); `None` on any other byte.
pub(super) fn base64_decode(s: &[u8]) -> Option<Vec<u8>> {
    let s = match s.iter().position(|&b| b == b'=') {
        Some(i) if s[i..].iter().all(|&b| b == b'=') && s.len() - i <= 2 => &s[..i],
        Some(_) => return None,
        None => s,
    };
    if s.len() % 4 == 1 {
        return None;
    }
    let val = |b: u8| -> Option<u32> {
        Some(match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    for chunk in s.chunks(4) {
        let mut acc = 0u32;
        for (i, &b) in chunk.iter().enumerate() {
            acc |= val(b)? << (18 - 6 * i);
        }
        let n = chunk.len() - 1;
        for i in 0..n {
            out.push((acc >> (16 - 8 * i)) as u8);
        }
    }
    Some(out)
}

/// HTTP Basic credentials (RFC 7617): the last base64 run of the match decodes to printable
/// `user:password` with a real password.
pub(super) fn valid_basic_auth(m: &[u8]) -> bool {
    let b64 = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=');
    let m = trim_quotes(m);
    let start = m.iter().rposition(|b| !b64(b)).map_or(0, |i| i + 1);
    let Some(dec) = base64_decode(&m[start..]) else {
        return false;
    };
    if dec.iter().any(|&b| b < 0x20 || b == 0x7f) {
        return false;
    }
    match dec.iter().position(|&b| b == b':') {
        Some(i) => {
            let pw = &dec[i + 1..];
            pw.len() >= 3 && !placeholder(pw)
        }
        None => false,
    }
}

/// `name = value` assignments: the value (after the first `:` or `=`) is not a placeholder,
/// not code (`os.environ[...]`, `settings.SECRET`, `get_secret()`, `&self.x`, `crate::Type`,
/// `elliptic_curve::` cut short by the scanner's retries), not a type or variable name
/// (`SigningKey`, `shared_secret_1`, `MAX_SECRET_LEN`), not a plain word (`required`), not a
/// bare number, and not too repetitive.
pub(super) fn valid_assigned_secret(m: &[u8]) -> bool {
    let Some(i) = m.iter().position(|&b| b == b':' || b == b'=') else {
        return false;
    };
    // `Kind::Variant` paths are not assignments.
    if m[i] == b':' && m.get(i + 1) == Some(&b':') {
        return false;
    }
    let sep =
        |b: &u8| matches!(b, b':' | b'=' | b'>' | b'"' | b'\'' | b'`') || b.is_ascii_whitespace();
    let v = &m[i..];
    let v = &v[v.iter().position(|b| !sep(b)).unwrap_or(v.len())..];
    if v.len() < 8 || placeholder(v) || matches!(v[0], b'&' | b'*') {
        return false;
    }
    // Calls and indexing (`get_secret()`, `os.environ["X"]`) end in a bracket; a password
    // with a bracket inside is still a password.
    let trimmed = {
        let end = v
            .iter()
            .rposition(|b| !matches!(b, b';' | b',' | b'"' | b'\'' | b'`'))
            .map_or(0, |i| i + 1);
        &v[..end]
    };
    // (The match may stop at a quote: `os.environ[` of `os.environ["KEY"]`.)
    let call = [&b")"[..], b"]", b"(", b"["]
        .iter()
        .any(|end| trimmed.ends_with(end));
    if v.iter().all(u8::is_ascii_digit) || call || v.windows(2).any(|w| w == b"::") {
        return false;
    }
    // The value without trailing punctuation, for the shape tests below.
    let end = v
        .iter()
        .rposition(|b| !matches!(b, b'.' | b':' | b'!' | b')' | b'?'))
        .map_or(0, |i| i + 1);
    let core = &v[..end];
    let ident = |p: &[u8]| {
        !p.is_empty()
            && (p[0].is_ascii_alphabetic() || p[0] == b'_')
            && p.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_')
    };
    // Identifiers: at most two of lower case, upper case and digits (random tokens mix all
    // three), with an underscore or a capital after the first character.
    let classes = |p: &[u8]| {
        usize::from(p.iter().any(u8::is_ascii_lowercase))
            + usize::from(p.iter().any(u8::is_ascii_uppercase))
            + usize::from(p.iter().any(u8::is_ascii_digit))
    };
    let name = ident(core)
        && classes(core) <= 2
        && (core.contains(&b'_') || core[1..].iter().any(u8::is_ascii_uppercase));
    // Dotted code references: settings.SECRET_KEY, process.env.TOKEN, self.suite.alg.
    let dotted = core.contains(&b'.') && core.split(|&b| b == b'.').all(ident);
    // Words rather than secrets: `required`, `not-set`, `Disabled`.
    let wordy = core
        .iter()
        .all(|b| b.is_ascii_alphabetic() || matches!(b, b'.' | b'-'));
    !name && !dotted && !wordy && shannon_entropy(v) >= 2.5
}

/// OpenAI keys: not another provider's `sk-` key, and random-looking (entropy, and a digit or
/// capital letter so hyphenated prose such as `sk-learn-...` does not count).
pub(super) fn openai_key(m: &[u8]) -> bool {
    if [&b"sk-ant-"[..], b"sk-or-", b"sk-lf-"]
        .iter()
        .any(|p| m.starts_with(p))
    {
        return false;
    }
    let body = &m[3..];
    token_entropy(m) >= 3.0
        && body
            .iter()
            .any(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
}
