//! Validity checks of the personal-data detectors: national numbering plans, checksums of
//! cards, bank and national identifiers, network and wallet addresses (the checks shared
//! with other code live in `checks.rs`).

use super::checks::*;

/// The ASCII digits of a match, as values 0-9.
pub(super) fn digit_values(m: &[u8]) -> Vec<u8> {
    m.iter()
        .filter(|b| b.is_ascii_digit())
        .map(|b| b - b'0')
        .collect()
}

pub(super) fn number(ds: &[u8]) -> u32 {
    ds.iter().fold(0, |a, &d| a * 10 + u32::from(d))
}

/// North American numbering plan: area code NXX with no 9 in the middle and not N11,
/// exchange NXX not N11.
pub(super) fn nanp_ok(ds: &[u8]) -> bool {
    ds.len() == 10
        && ds[0] >= 2
        && ds[1] != 9
        && !(ds[1] == 1 && ds[2] == 1)
        && ds[3] >= 2
        && !(ds[4] == 1 && ds[5] == 1)
}

/// Digit groups that start like a date (`01.02.2024 10 30`, `01-15-2024-0001`) rather than a
/// number.
pub(super) fn starts_like_date(m: &[u8]) -> bool {
    let groups: Vec<&[u8]> = m
        .split(|b| !b.is_ascii_digit())
        .filter(|g| !g.is_empty())
        .collect();
    if groups.len() < 3 {
        return false;
    }
    let (d, mo, y) = (groups[0], groups[1], groups[2]);
    let v = |g: &[u8]| number(&digit_values(g));
    // Day and month in either order.
    d.len() <= 2
        && mo.len() <= 2
        && y.len() == 4
        && (1..=31).contains(&v(d))
        && (1..=31).contains(&v(mo))
        && (v(d) <= 12 || v(mo) <= 12)
        && (1900..=2099).contains(&v(y))
}

pub(super) fn valid_phone_number(m: &[u8]) -> bool {
    let groups = || m.split(|b| !b.is_ascii_digit()).filter(|g| !g.is_empty());
    if m.first() == Some(&b'+') {
        // ISO 8601 years beyond 9999 (+262142-12-31) are not phone numbers.
        let lead = groups().next().unwrap_or_default();
        if lead.len() >= 4 && m.get(1 + lead.len()) == Some(&b'-') {
            return false;
        }
        // A "(0)" after the country code is the national trunk prefix, not part of E.164.
        let mut e164: Vec<u8> = m.iter().copied().filter(u8::is_ascii_digit).collect();
        if let Some(at) = m.windows(3).position(|w| w == b"(0)") {
            e164.remove(m[..at].iter().filter(|b| b.is_ascii_digit()).count());
        }
        let ds = digit_values(&e164);
        return match ds.first() {
            None => false,
            Some(1) => ds.len() == 11 && nanp_ok(&ds[1..]),
            Some(7) => ds.len() == 11,
            Some(_) => valid_phone(&e164),
        };
    }
    let ds = digit_values(m);
    if ds.first() == Some(&0) && (m.starts_with(b"(0") || m.starts_with(b"0")) {
        // The subscriber number after the area code does not start with 0 (which also keeps
        // out code-point lists such as 0399 0308 0301).
        let subscriber_ok = groups().nth(1).is_some_and(|g| g[0] != b'0');
        return (10..=12).contains(&ds.len())
            && ds[1] != 0
            && subscriber_ok
            && !starts_like_date(m);
    }
    match ds.len() {
        10 => nanp_ok(&ds),
        11 => ds[0] == 1 && nanp_ok(&ds[1..]),
        _ => false,
    }
}

/// Luhn and a known issuer prefix (`valid_card` covers the major networks; Maestro, Mir,
/// RuPay and the wider Discover and Diners ranges are added here), with a length that issuer
/// uses.
pub(super) fn valid_payment_card(m: &[u8]) -> bool {
    let ds = digit_values(m);
    let n = ds.len();
    // Written in groups, a card has groups of three digits or more (4-4-4-4, 4-6-5, ...):
    // a trailing ".0" or a lone digit is something else.
    let short_group = m
        .split(|b| !b.is_ascii_digit())
        .any(|g| !g.is_empty() && g.len() < 3);
    if !(13..=19).contains(&n) || short_group {
        return false;
    }
    let p = |k: usize| number(&ds[..k]);
    let (p2, p3, p4) = (p(2), p(3), p(4));
    let maestro = p2 == 50 || (56..=58).contains(&p2) || matches!(p4, 6304 | 6759 | 6761..=6763);
    let more = maestro
        || (2200..=2204).contains(&p4)
        || (300..=305).contains(&p3)
        || p4 == 3095
        || p2 == 39
        || p2 == 60
        || (644..=649).contains(&p3);
    if !(valid_card(m) || (more && luhn(&ds))) {
        return false;
    }
    let long = (16..=19).contains(&n);
    match ds[0] {
        // Visa
        4 => matches!(n, 13 | 16 | 19),
        _ if maestro => true,
        // Amex
        3 if p2 == 34 || p2 == 37 => n == 15,
        // JCB
        3 if (3528..=3589).contains(&p4) => long,
        // Diners
        3 if (300..=305).contains(&p3) || p4 == 3095 || matches!(p2, 36 | 38 | 39) => n >= 14,
        // Mastercard 51-55 and 2221-2720
        5 if (51..=55).contains(&p2) => n == 16,
        2 if (2221..=2720).contains(&p4) => n == 16,
        // Mir
        2 if (2200..=2204).contains(&p4) => long,
        // Discover, RuPay, UnionPay
        6 if p2 == 60 || p2 == 62 || p2 == 65 || (644..=649).contains(&p3) => long,
        _ => false,
    }
}

/// IBAN length for a country of the ISO 13616 registry.
pub(super) fn iban_length(cc: &[u8]) -> Option<usize> {
    const TABLE: &[(&[u8; 2], usize)] = &[
        (b"AD", 24),
        (b"AE", 23),
        (b"AL", 28),
        (b"AT", 20),
        (b"AZ", 28),
        (b"BA", 20),
        (b"BE", 16),
        (b"BG", 22),
        (b"BH", 22),
        (b"BR", 29),
        (b"BY", 28),
        (b"CH", 21),
        (b"CR", 22),
        (b"CY", 28),
        (b"CZ", 24),
        (b"DE", 22),
        (b"DK", 18),
        (b"DO", 28),
        (b"EE", 20),
        (b"EG", 29),
        (b"ES", 24),
        (b"FI", 18),
        (b"FO", 18),
        (b"FR", 27),
        (b"GB", 22),
        (b"GE", 22),
        (b"GI", 23),
        (b"GL", 18),
        (b"GR", 27),
        (b"GT", 28),
        (b"HR", 21),
        (b"HU", 28),
        (b"IE", 22),
        (b"IL", 23),
        (b"IQ", 23),
        (b"IS", 26),
        (b"IT", 27),
        (b"JO", 30),
        (b"KW", 30),
        (b"KZ", 20),
        (b"LB", 28),
        (b"LC", 32),
        (b"LI", 21),
        (b"LT", 20),
        (b"LU", 20),
        (b"LV", 21),
        (b"LY", 25),
        (b"MC", 27),
        (b"MD", 24),
        (b"ME", 22),
        (b"MK", 19),
        (b"MR", 27),
        (b"MT", 31),
        (b"MU", 30),
        (b"NL", 18),
        (b"NO", 15),
        (b"PK", 24),
        (b"PL", 28),
        (b"PS", 29),
        (b"PT", 25),
        (b"QA", 29),
        (b"RO", 24),
        (b"RS", 22),
        (b"RU", 33),
        (b"SA", 24),
        (b"SC", 31),
        (b"SE", 24),
        (b"SI", 19),
        (b"SK", 24),
        (b"SM", 27),
        (b"ST", 25),
        (b"SV", 28),
        (b"TL", 23),
        (b"TN", 24),
        (b"TR", 26),
        (b"UA", 29),
        (b"VA", 22),
        (b"VG", 24),
        (b"XK", 20),
    ];
    TABLE.iter().find(|(c, _)| &c[..] == cc).map(|(_, n)| *n)
}

/// ISO 7064 mod 97-10 over an IBAN (spaces ignored), with the registry length.
pub(super) fn valid_iban_any(m: &[u8]) -> bool {
    let s: Vec<u8> = m.iter().copied().filter(|b| *b != b' ').collect();
    if s.len() < 15 || iban_length(&s[..2]) != Some(s.len()) {
        return false;
    }
    let mut rem: u32 = 0;
    for &b in s[4..].iter().chain(&s[..4]) {
        rem = match b {
            b'0'..=b'9' => (rem * 10 + u32::from(b - b'0')) % 97,
            b'A'..=b'Z' => (rem * 100 + u32::from(b - b'A') + 10) % 97,
            _ => return false,
        };
    }
    rem == 1
}

/// SSA rules, minus numbers the SSA voided after they were published in advertising.
pub(super) fn valid_us_ssn(m: &[u8]) -> bool {
    let ds = digit_values(m);
    valid_ssn(m) && number(&ds) != 78_051_120 && number(&ds) != 219_099_999
}

pub(super) fn valid_us_itin(m: &[u8]) -> bool {
    let ds = digit_values(m);
    ds.len() == 9
        && ds[0] == 9
        && matches!(ds[3] * 10 + ds[4], 50..=65 | 70..=88 | 90..=92 | 94..=99)
}

pub(super) fn valid_ca_sin(m: &[u8]) -> bool {
    let ds = digit_values(m);
    ds.len() == 9 && !matches!(ds[0], 0 | 8) && luhn(&ds)
}

/// NHS number: weights 10..2 over the first nine digits; 11 minus the sum mod 11 is the
/// check digit (11 reads as 0, 10 is never issued).
pub(super) fn valid_nhs(m: &[u8]) -> bool {
    let ds = digit_values(m);
    if ds.len() != 10 {
        return false;
    }
    let sum: u32 = ds[..9]
        .iter()
        .zip((2..=10u32).rev())
        .map(|(&d, w)| u32::from(d) * w)
        .sum();
    let check = match 11 - sum % 11 {
        11 => 0,
        10 => return false,
        c => c,
    };
    check == u32::from(ds[9])
}

/// Verhoeff check over a digit sequence (check digit last).
pub(super) fn verhoeff(ds: &[u8]) -> bool {
    // Multiplication in the dihedral group D5: 0-4 rotations, 5-9 reflections.
    fn mul(j: u8, k: u8) -> u8 {
        match (j < 5, k < 5) {
            (true, true) => (j + k) % 5,
            (true, false) => 5 + (j + k) % 5,
            (false, true) => 5 + (j + 5 - k) % 5,
            (false, false) => (j + 5 - k) % 5,
        }
    }
    const P1: [u8; 10] = [1, 5, 7, 6, 2, 8, 3, 0, 9, 4];
    let mut c = 0u8;
    for (i, &d) in ds.iter().rev().enumerate() {
        let mut v = d;
        for _ in 0..i % 8 {
            v = P1[usize::from(v)];
        }
        c = mul(c, v);
    }
    !ds.is_empty() && c == 0
}

/// Aadhaar: twelve digits, the first 2-9, Verhoeff check digit last. Rows of years
/// (`2023 2024 2025`) have the same shape, so two groups of 1900-2099 rule a match out.
pub(super) fn valid_aadhaar(m: &[u8]) -> bool {
    let ds = digit_values(m);
    if ds.len() != 12 {
        return false;
    }
    let years = ds
        .chunks(4)
        .filter(|g| (1900..=2099).contains(&number(g)))
        .count();
    ds[0] >= 2 && years < 2 && verhoeff(&ds)
}

/// Weighted mod-11 check digit as used by CPF and CNPJ: remainder 0 or 1 gives 0.
pub(super) fn mod11_digit(ds: &[u8], weights: &[u32]) -> u8 {
    let sum: u32 = ds.iter().zip(weights).map(|(&d, w)| u32::from(d) * w).sum();
    match sum % 11 {
        0 | 1 => 0,
        r => (11 - r) as u8,
    }
}

pub(super) fn valid_cpf(m: &[u8]) -> bool {
    let ds = digit_values(m);
    if ds.len() != 11 || ds.iter().all(|&d| d == ds[0]) {
        return false;
    }
    mod11_digit(&ds[..9], &[10, 9, 8, 7, 6, 5, 4, 3, 2]) == ds[9]
        && mod11_digit(&ds[..10], &[11, 10, 9, 8, 7, 6, 5, 4, 3, 2]) == ds[10]
}

pub(super) fn valid_cnpj(m: &[u8]) -> bool {
    let ds = digit_values(m);
    if ds.len() != 14 || ds.iter().all(|&d| d == ds[0]) {
        return false;
    }
    const W: [u32; 13] = [6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2];
    mod11_digit(&ds[..12], &W[1..]) == ds[12] && mod11_digit(&ds[..13], &W) == ds[13]
}

pub(super) const DNI_LETTERS: &[u8; 23] = b"TRWAGMYFPDXBNJZSQVHLCKE";

pub(super) fn valid_es_dni(m: &[u8]) -> bool {
    let ds = digit_values(m);
    ds.len() == 8 && m.last() == Some(&DNI_LETTERS[(number(&ds) % 23) as usize])
}

pub(super) fn valid_es_nie(m: &[u8]) -> bool {
    let lead = match m.first() {
        Some(b'X') => 0,
        Some(b'Y') => 1,
        Some(b'Z') => 2,
        _ => return false,
    };
    let ds = digit_values(m);
    ds.len() == 7
        && m.last() == Some(&DNI_LETTERS[((lead * 10_000_000 + number(&ds)) % 23) as usize])
}

/// Italian fiscal code: characters in odd positions (1st, 3rd, ...) map through a fixed
/// table, even positions count their plain value (digit or letter index); the sum mod 26
/// is the check letter.
pub(super) fn valid_codice_fiscale(m: &[u8]) -> bool {
    const ODD: [u32; 26] = [
        1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24,
        23,
    ];
    // Omocodia replaces digits with letters from the right, one per clash; a code with no
    // digit left is not seen in practice, and sixteen letters are more likely a word.
    if m.len() != 16 || !m.iter().any(u8::is_ascii_digit) {
        return false;
    }
    let mut sum = 0u32;
    for (i, &b) in m[..15].iter().enumerate() {
        let v = match b.to_ascii_uppercase() {
            c @ b'0'..=b'9' => u32::from(c - b'0'),
            c @ b'A'..=b'Z' => u32::from(c - b'A'),
            _ => return false,
        };
        sum += if i % 2 == 0 { ODD[v as usize] } else { v };
    }
    u32::from(m[15].to_ascii_uppercase()) == u32::from(b'A') + sum % 26
}

/// Dutch eleven-test: weights 9..2 over the first eight digits, minus the last digit.
pub(super) fn valid_bsn(m: &[u8]) -> bool {
    let ds = digit_values(m);
    if ds.len() != 9 || ds.iter().all(|&d| d == 0) {
        return false;
    }
    let sum: i32 = ds[..8]
        .iter()
        .zip((2..=9i32).rev())
        .map(|(&d, w)| i32::from(d) * w)
        .sum::<i32>()
        - i32::from(ds[8]);
    sum % 11 == 0
}

/// NIR: the key is 97 minus the 13-character number mod 97 (2A counts as 19, 2B as 18).
/// Month 01-12, or 20 and 30-42 for unknown or provisional months.
pub(super) fn valid_fr_nir(m: &[u8]) -> bool {
    let s: Vec<u8> = m.iter().copied().filter(|b| *b != b' ').collect();
    if s.len() != 15 {
        return false;
    }
    let month = number(&digit_values(&s[3..5]));
    if !matches!(month, 1..=12 | 20 | 30..=42) {
        return false;
    }
    let mut body = s[..13].to_vec();
    match &body[5..7] {
        b"2A" => body[5..7].copy_from_slice(b"19"),
        b"2B" => body[5..7].copy_from_slice(b"18"),
        _ => {}
    }
    if !body.iter().all(u8::is_ascii_digit) || !s[13..].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let rem = body
        .iter()
        .fold(0u64, |a, b| (a * 10 + u64::from(b - b'0')) % 97);
    let key = u64::from(number(&digit_values(&s[13..])));
    key == 97 - rem
}

/// Australian TFN: weights 1,4,3,7,5,8,6,9,10; the sum is a multiple of 11.
pub(super) fn valid_au_tfn(m: &[u8]) -> bool {
    const W: [u32; 9] = [1, 4, 3, 7, 5, 8, 6, 9, 10];
    let ds = digit_values(m);
    ds.len() == 9
        && ds
            .iter()
            .zip(W)
            .map(|(&d, w)| u32::from(d) * w)
            .sum::<u32>()
            .is_multiple_of(11)
}

/// A parsable IPv6 address that is not a code path or a hex dump: `std::fmt`, `Self::Abc`
/// and `d::` parse too, so at least four hex digits, one of them 0-9; and six or more groups
/// of exactly two hex digits are a colon-separated fingerprint or serial number.
pub(super) fn valid_ipv6_address(m: &[u8]) -> bool {
    let groups = || m.split(|b| *b == b':').filter(|g| !g.is_empty());
    let hex_dump = groups().count() >= 6 && groups().all(|g| g.len() == 2);
    !hex_dump
        && m.iter().filter(|b| b.is_ascii_hexdigit()).count() >= 4
        && m.iter().any(u8::is_ascii_digit)
        && valid_ipv6(m)
}

pub(super) fn valid_mac(m: &[u8]) -> bool {
    let hex: Vec<u8> = m
        .iter()
        .copied()
        .filter(u8::is_ascii_hexdigit)
        .map(|b| b.to_ascii_lowercase())
        .collect();
    hex.len() == 12 && !hex.iter().all(|&b| b == b'0') && !hex.iter().all(|&b| b == b'f')
}

/// ISO 3166-1 alpha-2 codes (and XK, which SWIFT uses for Kosovo).
pub(super) const COUNTRIES: &str =
    "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH \
    BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW \
    CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI \
    GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO \
    JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH \
    MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA \
    PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL \
    SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US \
    UY UZ VA VC VE VG VI VN VU WF WS XK YE YT ZA ZM ZW";

pub(super) fn is_country(cc: &[u8]) -> bool {
    COUNTRIES.split_whitespace().any(|c| c.as_bytes() == cc)
}

/// BIC: a real country code, and a digit in the location or branch code or the XXX
/// (head office) branch: upper-case words have neither.
pub(super) fn valid_bic(m: &[u8]) -> bool {
    (m.len() == 8 || m.len() == 11)
        && is_country(&m[4..6])
        && (m[6..].iter().any(u8::is_ascii_digit) || &m[8..] == b"XXX")
}

pub(super) fn valid_bitcoin_address(m: &[u8]) -> bool {
    if m.len() > 3 && m[..3].eq_ignore_ascii_case(b"bc1") {
        valid_segwit(m)
    } else {
        valid_base58_address(m)
    }
}

/// Base58check: 25 bytes, version 0x00 (P2PKH, `1...`) or 0x05 (P2SH, `3...`), and the
/// first four bytes of double SHA-256 over the rest as checksum.
pub(super) fn valid_base58_address(m: &[u8]) -> bool {
    use sha2::{Digest, Sha256};
    const ALPHABET: &[u8; 58] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    let mut bytes: Vec<u8> = Vec::with_capacity(25);
    for &c in m {
        let Some(mut carry) = ALPHABET.iter().position(|&a| a == c).map(|v| v as u32) else {
            return false;
        };
        for b in bytes.iter_mut() {
            carry += u32::from(*b) * 58;
            *b = (carry & 0xff) as u8;
            carry >>= 8;
        }
        while carry > 0 {
            bytes.push((carry & 0xff) as u8);
            carry >>= 8;
        }
        if bytes.len() > 25 {
            return false;
        }
    }
    // Leading '1's are leading zero bytes.
    bytes.extend(m.iter().take_while(|&&c| c == b'1').map(|_| 0));
    bytes.reverse();
    if bytes.len() != 25 {
        return false;
    }
    let version_ok = match m[0] {
        b'1' => bytes[0] == 0x00,
        b'3' => bytes[0] == 0x05,
        _ => false,
    };
    let hash = Sha256::digest(Sha256::digest(&bytes[..21]));
    version_ok && hash[..4] == bytes[21..]
}

/// Segwit address (BIP 173 / BIP 350): one case throughout, HRP `bc`, bech32 checksum for
/// witness version 0 and bech32m for later versions, and a program of a valid length.
pub(super) fn valid_segwit(m: &[u8]) -> bool {
    const CHARSET: &[u8; 32] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";
    const GEN: [u32; 5] = [0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3];
    let lower = m.iter().any(u8::is_ascii_lowercase);
    let upper = m.iter().any(u8::is_ascii_uppercase);
    if lower && upper {
        return false;
    }
    let s = m.to_ascii_lowercase();
    let mut data = Vec::with_capacity(s.len());
    for &c in &s[3..] {
        match CHARSET.iter().position(|&x| x == c) {
            Some(v) => data.push(v as u8),
            None => return false,
        }
    }
    if data.len() < 7 {
        return false;
    }
    let mut chk: u32 = 1;
    let hrp = [b'b' >> 5, b'c' >> 5, 0, b'b' & 31, b'c' & 31];
    for &v in hrp.iter().chain(&data) {
        let top = chk >> 25;
        chk = ((chk & 0x1ff_ffff) << 5) ^ u32::from(v);
        for (i, g) in GEN.iter().enumerate() {
            if (top >> i) & 1 == 1 {
                chk ^= g;
            }
        }
    }
    let version = data[0];
    let constant = if version == 0 { 1 } else { 0x2bc8_30a3 };
    if version > 16 || chk != constant {
        return false;
    }
    // Regroup the 5-bit program into bytes; at most 4 zero bits of padding.
    let (mut acc, mut bits, mut len) = (0u32, 0u32, 0usize);
    for &v in &data[1..data.len() - 6] {
        acc = ((acc << 5) | u32::from(v)) & 0xfff;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            len += 1;
        }
    }
    if bits >= 5 || (acc & ((1 << bits) - 1)) != 0 {
        return false;
    }
    match version {
        0 => len == 20 || len == 32,
        _ => (2..=40).contains(&len),
    }
}

/// Ethereum address: all-lower or all-upper hex carries no checksum; mixed case must match
/// EIP-55 (a hex letter is upper case where the Keccak-256 of the lower-case address has a
/// nibble of 8 or more). The zero address belongs to nobody.
pub(super) fn valid_eth_address(m: &[u8]) -> bool {
    if m.len() != 42 {
        return false;
    }
    let hex = &m[2..];
    if hex.iter().all(|&b| b == b'0') {
        return false;
    }
    let lower = hex.iter().any(u8::is_ascii_lowercase);
    let upper = hex.iter().any(u8::is_ascii_uppercase);
    if !(lower && upper) {
        return true;
    }
    let hash = keccak256(&hex.to_ascii_lowercase());
    hex.iter().enumerate().all(|(i, &c)| {
        let nibble = (hash[i / 2] >> if i % 2 == 0 { 4 } else { 0 }) & 0xf;
        match c {
            b'a'..=b'f' => nibble < 8,
            b'A'..=b'F' => nibble >= 8,
            _ => true,
        }
    })
}

/// Keccak-f[1600] permutation (FIPS 202): round constants from the degree-8 LFSR, rotation
/// offsets from the (x, y) -> (y, 2x + 3y) walk.
pub(super) fn keccak_f(a: &mut [u64; 25]) {
    let mut rot = [0u32; 25];
    let (mut x, mut y) = (1usize, 0usize);
    for t in 0..24u32 {
        rot[x + 5 * y] = ((t + 1) * (t + 2) / 2) % 64;
        (x, y) = (y, (2 * x + 3 * y) % 5);
    }
    let mut lfsr: u8 = 1;
    let mut rc_bit = || {
        let bit = lfsr & 1;
        lfsr = if lfsr & 0x80 != 0 {
            (lfsr << 1) ^ 0x71
        } else {
            lfsr << 1
        };
        u64::from(bit)
    };
    for _ in 0..24 {
        // theta
        let mut c = [0u64; 5];
        for x in 0..5 {
            c[x] = a[x] ^ a[x + 5] ^ a[x + 10] ^ a[x + 15] ^ a[x + 20];
        }
        for x in 0..5 {
            let d = c[(x + 4) % 5] ^ c[(x + 1) % 5].rotate_left(1);
            for y in 0..5 {
                a[x + 5 * y] ^= d;
            }
        }
        // rho and pi
        let mut b = [0u64; 25];
        for x in 0..5 {
            for y in 0..5 {
                b[y + 5 * ((2 * x + 3 * y) % 5)] = a[x + 5 * y].rotate_left(rot[x + 5 * y]);
            }
        }
        // chi
        for y in 0..5 {
            for x in 0..5 {
                a[x + 5 * y] = b[x + 5 * y] ^ (!b[(x + 1) % 5 + 5 * y] & b[(x + 2) % 5 + 5 * y]);
            }
        }
        // iota
        let mut rc = 0u64;
        for j in 0..7 {
            rc |= rc_bit() << ((1u32 << j) - 1);
        }
        a[0] ^= rc;
    }
}

/// Keccak-256 as Ethereum uses it (original padding byte 0x01, rate 136 bytes).
pub(super) fn keccak256_with(data: &[u8], pad: u8) -> [u8; 32] {
    const RATE: usize = 136;
    let mut state = [0u64; 25];
    let mut msg = data.to_vec();
    msg.push(pad);
    while !msg.len().is_multiple_of(RATE) {
        msg.push(0);
    }
    *msg.last_mut().unwrap() |= 0x80;
    for block in msg.chunks(RATE) {
        for (i, lane) in block.chunks(8).enumerate() {
            state[i] ^= u64::from_le_bytes(lane.try_into().unwrap());
        }
        keccak_f(&mut state);
    }
    let mut out = [0u8; 32];
    for (i, lane) in state[..4].iter().enumerate() {
        out[i * 8..i * 8 + 8].copy_from_slice(&lane.to_le_bytes());
    }
    out
}

pub(super) fn keccak256(data: &[u8]) -> [u8; 32] {
    keccak256_with(data, 0x01)
}
