//! Validity checks: checksums, registries and entropy.

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

pub(super) fn valid_card(m: &[u8]) -> bool {
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

pub(super) fn valid_ssn(m: &[u8]) -> bool {
    let ds = digits(m);
    if ds.len() != 9 {
        return false;
    }
    let area = u32::from(ds[0]) * 100 + u32::from(ds[1]) * 10 + u32::from(ds[2]);
    let group = ds[3] * 10 + ds[4];
    let serial = ds[5..].iter().fold(0u32, |a, &d| a * 10 + u32::from(d));
    area != 0 && area != 666 && area < 900 && group != 0 && serial != 0
}

pub(super) fn valid_nino(m: &[u8]) -> bool {
    let p = &m[..2.min(m.len())];
    !matches!(p, b"BG" | b"GB" | b"NK" | b"KN" | b"TN" | b"NT" | b"ZZ")
}

pub(super) fn valid_ipv4(m: &[u8]) -> bool {
    std::str::from_utf8(m)
        .ok()
        .and_then(|s| s.parse::<std::net::Ipv4Addr>().ok())
        .is_some()
}

pub(super) fn valid_ipv6(m: &[u8]) -> bool {
    // Require at least two colons and one hex digit to skip times like "12:30".
    m.iter().filter(|b| **b == b':').count() >= 2
        && std::str::from_utf8(m)
            .ok()
            .and_then(|s| s.parse::<std::net::Ipv6Addr>().ok())
            .is_some()
}

pub(super) fn valid_phone(m: &[u8]) -> bool {
    let n = digits(m).len();
    (8..=15).contains(&n)
}

/// Shannon entropy of `bytes`, in bits per byte.
pub fn shannon_entropy(bytes: &[u8]) -> f32 {
    if bytes.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &b in bytes {
        counts[usize::from(b)] += 1;
    }
    let n = bytes.len() as f32;
    counts
        .iter()
        .filter(|c| **c > 0)
        .map(|&c| {
            let p = c as f32 / n;
            -p * p.log2()
        })
        .sum()
}

/// Entropy of the longest run of value characters in a match (the value, not the key or
/// the separators and quotes around it): anything visible but `"'`:=,;`.
pub(super) fn token_entropy(m: &[u8]) -> f32 {
    let token = |b: &u8| b.is_ascii_graphic() && !b"\"'`:=,;".contains(b);
    let best = m
        .split(|b| !token(b))
        .max_by_key(|run| run.len())
        .unwrap_or_default();
    shannon_entropy(best)
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
}
