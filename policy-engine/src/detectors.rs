//! Built-in named detectors for personal data and credentials.
//!
//! Each detector is a byte-oriented regex (ASCII classes, compiled with Unicode mode off so
//! large sets build quickly, also on wasm32), an optional validity check that removes
//! look-alikes (Luhn for cards, mod-97 for IBANs, ...), and a hard upper bound on the length
//! of a match. The bound is what lets the streaming masker withhold only a short tail.

/// A named built-in detector.
#[derive(Debug, Clone, Copy)]
pub struct Detector {
    pub name: &'static str,
    pub label: &'static str,
    pub kind: DetectorKind,
    pub description: &'static str,
    pub pattern: &'static str,
    /// Longest possible match, in bytes.
    pub max_len: usize,
    pub validate: Option<fn(&[u8]) -> bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DetectorKind {
    PersonalData,
    Credential,
}

/// Every built-in detector.
pub static DETECTORS: &[Detector] = &[
    Detector {
        name: "email",
        label: "EMAIL",
        kind: DetectorKind::PersonalData,
        description: "e-mail address",
        pattern: r"[A-Za-z0-9][A-Za-z0-9._%+\-]{0,63}@[A-Za-z0-9](?:[A-Za-z0-9\-]{0,62}\.){1,8}[A-Za-z]{2,24}",
        max_len: 64 + 1 + 8 * 64 + 24,
        validate: None,
    },
    Detector {
        name: "phone",
        label: "PHONE",
        kind: DetectorKind::PersonalData,
        description: "phone number in international (+CC) or North American format",
        pattern: r"(?:\+[1-9][0-9]{0,2}[ .\-]?(?:\([0-9]{1,4}\)[ .\-]?)?[0-9]{1,4}(?:[ .\-]?[0-9]{2,4}){1,4}|\([2-9][0-9]{2}\) ?[2-9][0-9]{2}[ .\-][0-9]{4}|\b[2-9][0-9]{2}[.\-][2-9][0-9]{2}[.\-][0-9]{4})\b",
        max_len: 32,
        validate: Some(valid_phone),
    },
    Detector {
        name: "payment_card",
        label: "PAYMENT_CARD",
        kind: DetectorKind::PersonalData,
        description: "payment card number (13-19 digits, Luhn-valid, known issuer prefix)",
        pattern: r"\b[2-6](?:(?:[ \t]{1,2}|[.\-/])?[0-9]){12,18}\b",
        max_len: 19 + 18,
        validate: Some(valid_card),
    },
    Detector {
        name: "iban",
        label: "IBAN",
        kind: DetectorKind::PersonalData,
        description: "international bank account number (country length and mod-97 checked)",
        pattern: r"\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,30}\b",
        max_len: 34 + 8,
        validate: Some(valid_iban),
    },
    Detector {
        name: "us_ssn",
        label: "US_SSN",
        kind: DetectorKind::PersonalData,
        description: "US social security number (area, group and serial rules)",
        pattern: r"\b[0-9]{3}-[0-9]{2}-[0-9]{4}\b",
        max_len: 11,
        validate: Some(valid_ssn),
    },
    Detector {
        name: "uk_nino",
        label: "UK_NINO",
        kind: DetectorKind::PersonalData,
        description: "UK national insurance number (prefix rules)",
        pattern: r"\b[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?[0-9]{2} ?[0-9]{2} ?[0-9]{2} ?[A-D]\b",
        max_len: 13,
        validate: Some(valid_nino),
    },
    Detector {
        name: "ipv4",
        label: "IP_ADDRESS",
        kind: DetectorKind::PersonalData,
        description: "IPv4 address",
        pattern: r"\b(?:[0-9]{1,3}\.){3}[0-9]{1,3}\b",
        max_len: 15,
        validate: Some(valid_ipv4),
    },
    Detector {
        name: "ipv6",
        label: "IP_ADDRESS",
        kind: DetectorKind::PersonalData,
        description: "IPv6 address (full or compressed)",
        pattern: r"(?:[0-9A-Fa-f]{1,4}:){1,7}(?::|(?::[0-9A-Fa-f]{1,4}){1,6}|[0-9A-Fa-f]{1,4})",
        max_len: 39,
        validate: Some(valid_ipv6),
    },
    Detector {
        name: "aws_access_key_id",
        label: "AWS_ACCESS_KEY",
        kind: DetectorKind::Credential,
        description: "AWS access key id (AKIA/ASIA...)",
        pattern: r"(?:AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}",
        max_len: 20,
        validate: None,
    },
    Detector {
        name: "aws_secret_access_key",
        label: "AWS_SECRET_KEY",
        kind: DetectorKind::Credential,
        description: "AWS secret access key next to an aws/secret keyword",
        pattern: r#"(?i)aws[A-Za-z_ \-]{0,20}secret[A-Za-z_ \-]{0,20}["']?\s{0,4}[:=]\s{0,4}["']?[A-Za-z0-9/+]{40}\b"#,
        max_len: 100,
        validate: None,
    },
    Detector {
        name: "github_token",
        label: "GITHUB_TOKEN",
        kind: DetectorKind::Credential,
        description: "GitHub personal access, OAuth, app and refresh tokens",
        pattern: r"(?:gh[pousr]_[A-Za-z0-9]{36,251}|github_pat_[A-Za-z0-9_]{82})",
        max_len: 255,
        validate: None,
    },
    Detector {
        name: "gitlab_token",
        label: "GITLAB_TOKEN",
        kind: DetectorKind::Credential,
        description: "GitLab personal access token",
        pattern: r"glpat-[A-Za-z0-9_\-]{20,50}",
        max_len: 56,
        validate: None,
    },
    Detector {
        name: "slack_token",
        label: "SLACK_TOKEN",
        kind: DetectorKind::Credential,
        description: "Slack bot, user and app tokens",
        pattern: r"xox[abposr]-[0-9A-Za-z\-]{10,72}",
        max_len: 77,
        validate: None,
    },
    Detector {
        name: "stripe_key",
        label: "STRIPE_KEY",
        kind: DetectorKind::Credential,
        description: "Stripe secret and restricted keys",
        pattern: r"\b(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{24,99}\b",
        max_len: 107,
        validate: None,
    },
    Detector {
        name: "google_api_key",
        label: "GOOGLE_API_KEY",
        kind: DetectorKind::Credential,
        description: "Google API key",
        pattern: r"AIza[0-9A-Za-z_\-]{35}",
        max_len: 39,
        validate: None,
    },
    Detector {
        name: "openai_api_key",
        label: "OPENAI_API_KEY",
        kind: DetectorKind::Credential,
        description: "OpenAI API key (sk-, sk-proj-, sk-svcacct-, sk-admin-)",
        pattern: r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{32,200}\b",
        max_len: 212,
        validate: None,
    },
    Detector {
        name: "anthropic_api_key",
        label: "ANTHROPIC_API_KEY",
        kind: DetectorKind::Credential,
        description: "Anthropic API key",
        pattern: r"\bsk-ant-[a-z]{3,6}[0-9]{2}-[A-Za-z0-9_\-]{80,120}\b",
        max_len: 140,
        validate: None,
    },
    Detector {
        name: "private_key",
        label: "PRIVATE_KEY",
        kind: DetectorKind::Credential,
        description: "PEM private key (the whole block when it ends within 8 KiB)",
        pattern: r"-----BEGIN[ A-Z0-9]{0,24} PRIVATE KEY-----(?:[A-Za-z0-9+/=\s:,\-]{0,8192}?-----END[ A-Z0-9]{0,24} PRIVATE KEY-----)?",
        max_len: 8192 + 2 * 60,
        validate: None,
    },
    Detector {
        name: "jwt",
        label: "JWT",
        kind: DetectorKind::Credential,
        description: "JSON Web Token (three base64url parts, JSON header)",
        pattern: r"\beyJ[A-Za-z0-9_\-]{8,2048}\.eyJ[A-Za-z0-9_\-]{8,4096}\.[A-Za-z0-9_\-]{16,2048}",
        max_len: 3 + 2048 + 4 + 4096 + 1 + 2048,
        validate: None,
    },
    Detector {
        name: "secret_assignment",
        label: "SECRET",
        kind: DetectorKind::Credential,
        description: "password/secret/api key/token assigned a value (key = value, key: value)",
        pattern: r#"(?i)\b(?:password|passwd|pwd|secret|api[_\-]?key|access[_\-]?token|auth[_\-]?token|client[_\-]?secret)["']?\s{0,4}[:=]\s{0,4}["']?[^\s"'`]{8,128}"#,
        max_len: 160,
        validate: None,
    },
];

/// Look up a built-in detector by name.
pub fn find(name: &str) -> Option<&'static Detector> {
    DETECTORS.iter().find(|d| d.name == name)
}

fn digits(bytes: &[u8]) -> Vec<u8> {
    bytes
        .iter()
        .filter(|b| b.is_ascii_digit())
        .map(|b| b - b'0')
        .collect()
}

/// Luhn checksum over a digit sequence.
pub fn luhn(ds: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, &d) in ds.iter().rev().enumerate() {
        let mut v = u32::from(d);
        if !i.is_multiple_of(2) {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    !ds.is_empty() && sum.is_multiple_of(10)
}

fn valid_card(m: &[u8]) -> bool {
    let ds = digits(m);
    if !(13..=19).contains(&ds.len()) || !luhn(&ds) {
        return false;
    }
    // Known issuer ranges: Visa 4, Mastercard 51-55/2221-2720, Amex 34/37, Discover 6011/65,
    // Diners 36/38, JCB 35, UnionPay 62.
    let p2 = ds[0] * 10 + ds[1];
    let p4 = u32::from(p2) * 100 + u32::from(ds[2] * 10 + ds[3]);
    ds[0] == 4
        || (51..=55).contains(&p2)
        || (2221..=2720).contains(&p4)
        || p2 == 34
        || p2 == 37
        || p2 == 36
        || p2 == 38
        || p2 == 35
        || p2 == 62
        || p2 == 65
        || p4 == 6011
}

/// IBAN lengths per country (ISO 13616 registry, common countries).
fn iban_len(cc: &[u8]) -> Option<usize> {
    Some(match cc {
        b"AD" => 24,
        b"AE" => 23,
        b"AT" => 20,
        b"BE" => 16,
        b"BG" => 22,
        b"BH" => 22,
        b"BR" => 29,
        b"CH" => 21,
        b"CY" => 28,
        b"CZ" => 24,
        b"DE" => 22,
        b"DK" => 18,
        b"EE" => 20,
        b"ES" => 24,
        b"FI" => 18,
        b"FR" => 27,
        b"GB" => 22,
        b"GI" => 23,
        b"GR" => 27,
        b"HR" => 21,
        b"HU" => 28,
        b"IE" => 22,
        b"IL" => 23,
        b"IS" => 26,
        b"IT" => 27,
        b"KW" => 30,
        b"KZ" => 20,
        b"LI" => 21,
        b"LT" => 20,
        b"LU" => 20,
        b"LV" => 21,
        b"MC" => 27,
        b"MT" => 31,
        b"NL" => 18,
        b"NO" => 15,
        b"PL" => 28,
        b"PT" => 25,
        b"RO" => 24,
        b"SA" => 24,
        b"SE" => 24,
        b"SI" => 19,
        b"SK" => 24,
        b"SM" => 27,
        b"TR" => 26,
        b"UA" => 29,
        _ => return None,
    })
}

/// ISO 7064 mod 97-10 check used by IBANs.
pub fn valid_iban(m: &[u8]) -> bool {
    let s: Vec<u8> = m.iter().copied().filter(|b| *b != b' ').collect();
    if s.len() < 15 || iban_len(&s[..2]) != Some(s.len()) {
        return false;
    }
    let mut rem: u32 = 0;
    for &b in s[4..].iter().chain(s[..4].iter()) {
        let v = match b {
            b'0'..=b'9' => u32::from(b - b'0'),
            b'A'..=b'Z' => u32::from(b - b'A') + 10,
            _ => return false,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

fn valid_ssn(m: &[u8]) -> bool {
    let ds = digits(m);
    if ds.len() != 9 {
        return false;
    }
    let area = u32::from(ds[0]) * 100 + u32::from(ds[1]) * 10 + u32::from(ds[2]);
    let group = ds[3] * 10 + ds[4];
    let serial = ds[5..].iter().fold(0u32, |a, &d| a * 10 + u32::from(d));
    area != 0 && area != 666 && area < 900 && group != 0 && serial != 0
}

fn valid_nino(m: &[u8]) -> bool {
    let p = &m[..2.min(m.len())];
    !matches!(p, b"BG" | b"GB" | b"NK" | b"KN" | b"TN" | b"NT" | b"ZZ")
}

fn valid_ipv4(m: &[u8]) -> bool {
    std::str::from_utf8(m)
        .ok()
        .and_then(|s| s.parse::<std::net::Ipv4Addr>().ok())
        .is_some()
}

fn valid_ipv6(m: &[u8]) -> bool {
    // Require at least two colons and one hex digit to skip times like "12:30".
    m.iter().filter(|b| **b == b':').count() >= 2
        && std::str::from_utf8(m)
            .ok()
            .and_then(|s| s.parse::<std::net::Ipv6Addr>().ok())
            .is_some()
}

fn valid_phone(m: &[u8]) -> bool {
    let n = digits(m).len();
    (8..=15).contains(&n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_accepts_test_cards_and_rejects_changed_digit() {
        assert!(valid_card(b"4111 1111 1111 1111"));
        assert!(valid_card(b"5500-0000-0000-0004"));
        assert!(valid_card(b"378282246310005"));
        assert!(!valid_card(b"4111 1111 1111 1112"));
        assert!(!valid_card(b"1234567812345678"));
    }

    #[test]
    fn iban_mod97() {
        assert!(valid_iban(b"GB82 WEST 1234 5698 7654 32"));
        assert!(valid_iban(b"DE89370400440532013000"));
        assert!(!valid_iban(b"DE89370400440532013001"));
        assert!(!valid_iban(b"XX89370400440532013000"));
    }

    #[test]
    fn ssn_rules() {
        assert!(valid_ssn(b"123-45-6789"));
        assert!(!valid_ssn(b"000-45-6789"));
        assert!(!valid_ssn(b"666-45-6789"));
        assert!(!valid_ssn(b"912-45-6789"));
        assert!(!valid_ssn(b"123-00-6789"));
        assert!(!valid_ssn(b"123-45-0000"));
    }

    #[test]
    fn ip_checks() {
        assert!(valid_ipv4(b"10.0.12.7"));
        assert!(!valid_ipv4(b"300.1.1.1"));
        assert!(valid_ipv6(b"2001:db8::1"));
        assert!(!valid_ipv6(b"12:30"));
    }

    #[test]
    fn names_are_unique_and_bounds_positive() {
        let mut names: Vec<_> = DETECTORS.iter().map(|d| d.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), DETECTORS.len());
        assert!(DETECTORS.iter().all(|d| d.max_len > 0));
    }
}
