//! Personal data: contact details, payment and bank numbers, government identifiers,
//! network addresses and wallet addresses. No keywords: these run in the shared regex pass.
//!
//! Every format with a check digit, check letter or checksum is validated (Luhn, mod 97,
//! mod 11, Verhoeff, weighted sums, base58check, bech32, EIP-55). National numbers with no
//! check of their own are only matched in a shape that ordinary numbers rarely take (grouped
//! with separators); bare digit runs are left alone unless a checksum makes them rare.

use super::checks::*;
use super::pii_checks::*;
use super::{Check, Detector, DetectorKind, Stance};

pub(super) static PII: &[Detector] = &[
    Detector {
        name: "email",
        label: "EMAIL",
        provider: "IETF",
        tags: &["contact"],
        keywords: &[],
        kind: DetectorKind::PersonalData,
        description: "e-mail address with a dotted domain name (local part from a word start)",
        pattern: r"\b[A-Za-z0-9][A-Za-z0-9_.%+\-]{0,63}@[A-Za-z0-9](?:[A-Za-z0-9\-]{0,62}\.){1,8}[A-Za-z]{2,24}",
        max_len: 64 + 1 + 1 + 8 * 63 + 24,
        check: Check::None,
        stance: Stance::Structured,
    },
    Detector {
        name: "phone",
        label: "PHONE",
        provider: "ITU-T E.164",
        tags: &["contact"],
        keywords: &[],
        kind: DetectorKind::PersonalData,
        description: "phone number: international (+CC, optional (0) trunk), North American \
                      (area code and exchange rules) or national with a 0 trunk prefix, written \
                      in digit groups; bare digit runs without + are not taken",
        pattern: concat!(
            // +CC, optional (area) or (0), then up to six digit groups.
            r"\B\+[1-9][0-9]{0,2}(?:[ .\-]?\([0-9]{1,4}\))?(?:[ .\-/]?[0-9]{1,5}){1,6}\b",
            // North American: (415) 555-2671, optional leading 1.
            r"|(?:\b1[ .\-]?)?\([2-9][0-9]{2}\)[ .\-]?[2-9][0-9]{2}[ .\-]?[0-9]{4}\b",
            // North American: 415-555-2671, 415.555.2671, 415 555 2671, 415 555-2671.
            r"|\b(?:1[ .\-])?[2-9][0-9]{2}(?:-[2-9][0-9]{2}-|\.[2-9][0-9]{2}\.| [2-9][0-9]{2}[ \-])[0-9]{4}\b",
            // National with trunk 0, one separator kind throughout: 020 7946 0958, 06.12.34.56.78
            // (dots only with two groups or more: 07.12345678 is a time's fraction).
            r"|\b0[1-9][0-9]{0,4}(?:(?: [0-9]{2,8}){1,4}|(?:\.[0-9]{2,8}){2,4}|(?:-[0-9]{2,8}){1,4}|/[0-9]{2,8}(?:[ \-][0-9]{2,8}){0,3})\b",
            // National with the area code in parentheses: (030) 1234 5678.
            r"|\(0[1-9][0-9]{0,4}\)[ \-]?[0-9]{2,8}(?:[ \-][0-9]{2,8}){0,3}\b",
        ),
        // The longest branch is the international one: +CC, (area), six groups.
        max_len: 4 + 7 + 6 * 6,
        check: Check::Valid(valid_phone_number),
        stance: Stance::Structured,
    },
    Detector {
        name: "payment_card",
        label: "PAYMENT_CARD",
        provider: "card networks",
        tags: &["financial"],
        keywords: &[],
        kind: DetectorKind::PersonalData,
        description: "payment card number: 13-19 digits, any common separator between groups, \
                      Luhn-valid, with a known issuer prefix and a length that issuer uses",
        pattern: r"\b[2-6][0-9]{3}(?:(?:[ \t]{1,2}|[.\-/_]| - )?[0-9]){9,15}\b",
        max_len: 4 + 15 * 4,
        check: Check::Valid(valid_payment_card),
        stance: Stance::Structured,
    },
    Detector {
        name: "iban",
        label: "IBAN",
        provider: "ISO 13616",
        tags: &["financial"],
        keywords: &[],
        kind: DetectorKind::PersonalData,
        description: "international bank account number, compact or in groups of four \
                      (country length and mod-97 checked)",
        pattern: r"\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b",
        max_len: 4 + 7 * 5 + 4,
        check: Check::Valid(valid_iban_any),
        stance: Stance::Structured,
    },
    Detector {
        name: "us_ssn",
        label: "US_SSN",
        provider: "US SSA",
        tags: &["government_id", "us"],
        keywords: &[],
        kind: DetectorKind::PersonalData,
        description: "US social security number written 3-2-4 with dashes or spaces (area, \
                      group and serial rules; ITIN range excluded)",
        pattern: r"\b[0-9]{3}(?:-[0-9]{2}-| [0-9]{2} )[0-9]{4}\b",
        max_len: 11,
        check: Check::Valid(valid_us_ssn),
        stance: Stance::Structured,
    },
    Detector {
        name: "uk_nino",
        label: "UK_NINO",
        provider: "UK HMRC",
        tags: &["government_id", "uk"],
        keywords: &[],
        kind: DetectorKind::PersonalData,
        description: "UK national insurance number (letter and prefix rules)",
        pattern: r"\b[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?[0-9]{2} ?[0-9]{2} ?[0-9]{2} ?[A-D]\b",
        max_len: 13,
        check: Check::Valid(valid_nino),
        stance: Stance::Structured,
    },
    Detector {
        name: "ipv4",
        label: "IP_ADDRESS",
        provider: "IETF",
        tags: &["network"],
        keywords: &[],
        kind: DetectorKind::PersonalData,
        description: "IPv4 address in dotted-quad form (each octet 0-255)",
        pattern: r"\b(?:[0-9]{1,3}\.){3}[0-9]{1,3}\b",
        max_len: 15,
        check: Check::Valid(valid_ipv4),
        stance: Stance::Structured,
    },
    Detector {
        name: "ipv6",
        label: "IP_ADDRESS",
        provider: "IETF",
        tags: &["network"],
        keywords: &[],
        kind: DetectorKind::PersonalData,
        description: "IPv6 address, full or compressed (parsed; at least four hex digits, one \
                      of them decimal, so that code paths like std::fmt are not taken)",
        // Eight groups, or groups on both sides of one "::" (seven at most), spelled out per
        // split so that the bound is exact; longer tails first so "::1" is not cut short.
        // Word boundaries keep u128::from and f64::MAX out.
        pattern: concat!(
            r"\b(?:(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}\b",
            r"|[0-9A-Fa-f]{1,4}:(?::[0-9A-Fa-f]{1,4}){1,6}\b",
            r"|(?:[0-9A-Fa-f]{1,4}:){1,2}(?::[0-9A-Fa-f]{1,4}){1,5}\b",
            r"|(?:[0-9A-Fa-f]{1,4}:){1,3}(?::[0-9A-Fa-f]{1,4}){1,4}\b",
            r"|(?:[0-9A-Fa-f]{1,4}:){1,4}(?::[0-9A-Fa-f]{1,4}){1,3}\b",
            r"|(?:[0-9A-Fa-f]{1,4}:){1,5}(?::[0-9A-Fa-f]{1,4}){1,2}\b",
            r"|(?:[0-9A-Fa-f]{1,4}:){1,6}:[0-9A-Fa-f]{1,4}\b",
            r"|(?:[0-9A-Fa-f]{1,4}:){1,7}:)",
        ),
        max_len: 39,
        check: Check::Valid(valid_ipv6_address),
        stance: Stance::Structured,
    },
    Detector {
        name: "mac_address",
        label: "MAC_ADDRESS",
        provider: "IEEE 802",
        tags: &["network"],
        keywords: &[],
        kind: DetectorKind::PersonalData,
        description: "hardware (MAC) address: six hex pairs joined by colons or dashes, or \
                      three dotted hex quads; all-zero and broadcast addresses are ignored",
        pattern: r"\b(?:[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}|[0-9A-Fa-f]{2}(?:-[0-9A-Fa-f]{2}){5}|[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4})\b",
        max_len: 17,
        check: Check::Valid(valid_mac),
        stance: Stance::Structured,
    },
    Detector {
        name: "swift_bic",
        label: "SWIFT_BIC",
        provider: "ISO 9362",
        tags: &["financial"],
        keywords: &[],
        kind: DetectorKind::PersonalData,
        description: "bank identifier code (BIC): ISO country code in letters 5-6, and a digit \
                      in the location or branch code or the XXX branch, so that ordinary \
                      upper-case words are not taken",
        pattern: r"\b[A-Z]{4}[A-Z]{2}[A-Z0-9]{2}(?:[A-Z0-9]{3})?\b",
        max_len: 11,
        check: Check::Valid(valid_bic),
        stance: Stance::Structured,
    },
    Detector {
        name: "bitcoin_address",
        label: "CRYPTO_ADDRESS",
        provider: "Bitcoin",
        tags: &["crypto_wallet"],
        keywords: &[],
        kind: DetectorKind::PersonalData,
        description: "Bitcoin mainnet address: base58check P2PKH/P2SH (1..., 3...) or \
                      bech32/bech32m segwit (bc1...), checksum verified",
        pattern: r"\b(?:[13][1-9A-HJ-NP-Za-km-z]{25,34}|bc1[02-9ac-hj-np-z]{39,59}|BC1[02-9AC-HJ-NP-Z]{39,59})\b",
        max_len: 62,
        check: Check::Valid(valid_bitcoin_address),
        stance: Stance::Structured,
    },
    Detector {
        name: "ethereum_address",
        label: "CRYPTO_ADDRESS",
        provider: "Ethereum",
        tags: &["crypto_wallet"],
        keywords: &[],
        kind: DetectorKind::PersonalData,
        description: "Ethereum address (0x and 40 hex digits); mixed case must carry a valid \
                      EIP-55 checksum, the zero address is ignored",
        pattern: r"\b0x[0-9A-Fa-f]{40}\b",
        max_len: 42,
        check: Check::Valid(valid_eth_address),
        stance: Stance::Structured,
    },
    Detector {
        name: "us_itin",
        label: "US_ITIN",
        provider: "US IRS",
        tags: &["government_id", "us"],
        keywords: &[],
        kind: DetectorKind::PersonalData,
        description: "US individual taxpayer identification number: 9XX-XX-XXXX with the \
                      middle group in an issued range (50-65, 70-88, 90-92, 94-99)",
        pattern: r"\b9[0-9]{2}(?:-[5-9][0-9]-| [5-9][0-9] )[0-9]{4}\b",
        max_len: 11,
        check: Check::Valid(valid_us_itin),
        stance: Stance::Structured,
    },
    Detector {
        name: "ca_sin",
        label: "CA_SIN",
        provider: "Service Canada",
        tags: &["government_id", "ca"],
        keywords: &[],
        kind: DetectorKind::PersonalData,
        description: "Canadian social insurance number written 3-3-3 (Luhn-valid, first \
                      digit 1-7 or 9)",
        pattern: r"\b[1-79][0-9]{2}(?: [0-9]{3} |-[0-9]{3}-)[0-9]{3}\b",
        max_len: 11,
        check: Check::Valid(valid_ca_sin),
        stance: Stance::Structured,
    },
    Detector {
        name: "uk_nhs",
        label: "UK_NHS",
        provider: "NHS",
        tags: &["health", "government_id", "uk"],
        keywords: &[],
        kind: DetectorKind::PersonalData,
        description: "NHS number (England, Wales, Isle of Man) or Northern Ireland H&C number, \
                      written 3-3-4, mod-11 check digit",
        pattern: r"\b[3467][0-9]{2}(?: [0-9]{3} |-[0-9]{3}-)[0-9]{4}\b",
        max_len: 12,
        check: Check::Valid(valid_nhs),
        stance: Stance::Structured,
    },
    Detector {
        name: "in_aadhaar",
        label: "IN_AADHAAR",
        provider: "UIDAI",
        tags: &["government_id", "in"],
        keywords: &[],
        kind: DetectorKind::PersonalData,
        description: "Indian Aadhaar number written 4-4-4 with spaces or dashes (first digit \
                      2-9, Verhoeff check digit)",
        pattern: r"\b[2-9][0-9]{3}(?: [0-9]{4} |-[0-9]{4}-)[0-9]{4}\b",
        max_len: 14,
        check: Check::Valid(valid_aadhaar),
        stance: Stance::Structured,
    },
    Detector {
        name: "in_pan",
        label: "IN_PAN",
        provider: "Indian Income Tax Department",
        tags: &["government_id", "in"],
        keywords: &[],
        kind: DetectorKind::PersonalData,
        description: "Indian permanent account number: five letters (the fourth a holder \
                      type), four digits, a letter; its check letter is not public",
        pattern: r"\b[A-Z]{3}[ABCFGHJLPT][A-Z][0-9]{4}[A-Z]\b",
        max_len: 10,
        check: Check::None,
        stance: Stance::Structured,
    },
    Detector {
        name: "br_cpf",
        label: "BR_CPF",
        provider: "Receita Federal do Brasil",
        tags: &["government_id", "br"],
        keywords: &[],
        kind: DetectorKind::PersonalData,
        description: "Brazilian individual taxpayer number (CPF) as 000.000.000-00 or \
                      000000000-00, both mod-11 check digits verified",
        pattern: r"\b[0-9]{3}(?:\.[0-9]{3}\.|[0-9]{3})[0-9]{3}-[0-9]{2}\b",
        max_len: 14,
        check: Check::Valid(valid_cpf),
        stance: Stance::Structured,
    },
    Detector {
        name: "br_cnpj",
        label: "BR_CNPJ",
        provider: "Receita Federal do Brasil",
        tags: &["government_id", "br"],
        keywords: &[],
        kind: DetectorKind::PersonalData,
        description: "Brazilian company registry number (CNPJ) as 00.000.000/0000-00, both \
                      mod-11 check digits verified",
        pattern: r"\b[0-9]{2}\.[0-9]{3}\.[0-9]{3}/[0-9]{4}-[0-9]{2}\b",
        max_len: 18,
        check: Check::Valid(valid_cnpj),
        stance: Stance::Structured,
    },
    Detector {
        name: "es_dni",
        label: "ES_DNI",
        provider: "Spanish Ministry of the Interior",
        tags: &["government_id", "es"],
        keywords: &[],
        kind: DetectorKind::PersonalData,
        description: "Spanish national identity number (DNI/NIF): eight digits and the \
                      mod-23 check letter",
        pattern: r"\b[0-9]{8}[ \-]?[A-Z]\b",
        max_len: 10,
        check: Check::Valid(valid_es_dni),
        stance: Stance::Structured,
    },
    Detector {
        name: "es_nie",
        label: "ES_NIE",
        provider: "Spanish Ministry of the Interior",
        tags: &["government_id", "es"],
        keywords: &[],
        kind: DetectorKind::PersonalData,
        description: "Spanish foreigner identity number (NIE): X, Y or Z, seven digits and \
                      the mod-23 check letter",
        pattern: r"\b[XYZ][ \-]?[0-9]{7}[ \-]?[A-Z]\b",
        max_len: 11,
        check: Check::Valid(valid_es_nie),
        stance: Stance::Structured,
    },
    Detector {
        name: "it_codice_fiscale",
        label: "IT_CODICE_FISCALE",
        provider: "Agenzia delle Entrate",
        tags: &["government_id", "it"],
        keywords: &[],
        kind: DetectorKind::PersonalData,
        description: "Italian fiscal code of a person (16 characters, month letter, \
                      omocodia substitutions allowed), check character verified",
        pattern: r"\b(?i:[A-Z]{6}[0-9LMNP-V]{2}[ABCDEHLMPRST][0-9LMNP-V]{2}[A-Z][0-9LMNP-V]{3}[A-Z])\b",
        max_len: 16,
        check: Check::Valid(valid_codice_fiscale),
        stance: Stance::Structured,
    },
    Detector {
        name: "nl_bsn",
        label: "NL_BSN",
        provider: "Dutch government (BRP)",
        tags: &["government_id", "nl"],
        keywords: &[],
        kind: DetectorKind::PersonalData,
        description: "Dutch citizen service number (BSN) written 1234.56.789 or 1234 56 789, \
                      eleven-test verified; bare nine-digit runs are not taken",
        pattern: r"\b[0-9]{4}(?:\.[0-9]{2}\.| [0-9]{2} )[0-9]{3}\b",
        max_len: 11,
        check: Check::Valid(valid_bsn),
        stance: Stance::Structured,
    },
    Detector {
        name: "fr_nir",
        label: "FR_NIR",
        provider: "INSEE",
        tags: &["government_id", "health", "fr"],
        keywords: &[],
        kind: DetectorKind::PersonalData,
        description: "French social security number (NIR/INSEE): 13 characters (2A/2B for \
                      Corsica) and the mod-97 key, compact or spaced",
        pattern: r"\b[1278] ?[0-9]{2} ?[0-9]{2} ?(?:[0-9]{2}|2[AB]) ?[0-9]{3} ?[0-9]{3} ?[0-9]{2}\b",
        max_len: 21,
        check: Check::Valid(valid_fr_nir),
        stance: Stance::Structured,
    },
    Detector {
        name: "au_tfn",
        label: "AU_TFN",
        provider: "Australian Taxation Office",
        tags: &["government_id", "au"],
        keywords: &[],
        kind: DetectorKind::PersonalData,
        description: "Australian tax file number written 3-3-3 (nine digits, weighted mod-11 \
                      check)",
        pattern: r"\b[0-9]{3}(?: [0-9]{3} |-[0-9]{3}-)[0-9]{3}\b",
        max_len: 11,
        check: Check::Valid(valid_au_tfn),
        stance: Stance::Structured,
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn keccak_permutation_matches_sha3_vectors() {
        // SHA3-256 differs from Keccak-256 only in the padding byte.
        assert_eq!(
            hex(&keccak256_with(b"", 0x06)),
            "a7ffc6f8bf1ed76651c14756a061d662f580ff4de43b49fa82d80a4b80f8434a"
        );
        assert_eq!(
            hex(&keccak256_with(b"abc", 0x06)),
            "3a985da74fe225b2045c172d6bd390bd855f086e3e9d525b46bfe24511431532"
        );
    }

    /// Spans the real scanner reports for one detector.
    fn found(name: &str, text: &str) -> Vec<String> {
        use crate::matcher::{PatternSet, Spec, SpecKind};
        let d = PII.iter().find(|d| d.name == name).unwrap();
        let set = PatternSet::build(
            vec![Spec {
                owner: 0,
                kind: SpecKind::Detector(d),
            }],
            false,
        )
        .unwrap();
        let mut hits = Vec::new();
        set.scan(text.as_bytes(), &mut hits);
        hits.iter()
            .map(|h| text[h.start..h.end].to_owned())
            .collect()
    }

    #[test]
    fn phone_formats() {
        for p in [
            "415-555-2671",
            "415.555.2671",
            "415 555 2671",
            "415 555-2671",
            "(415)555-2671",
            "1-800-555-0199",
            "+1 (415) 555-2671",
            "+14155552671",
            "020 7946 0958",
            "07700 900123",
            "+44 (0)20 7946 0958",
            "+44 7700 900123",
            "(030) 1234 5678",
            "0151 23456789",
            "030/1234567",
            "01 23 45 67 89",
            "06.12.34.56.78",
            "+33 6 12 34 56 78",
            "+49 30 12345678",
            "+49 (0)30 1234-5678",
            "+91 98765 43210",
            "02 9374 4000",
        ] {
            let text = format!("call {p} now");
            assert_eq!(found("phone", &text), [p], "{p}");
        }
        for text in [
            "2024-01-15",
            "15.01.2024",
            "01/02/2024",
            "01.02.2024 10:30",
            "01.02.2024 10 30",
            "01-15-2024-0001",
            "10:30:15",
            "v1.2.3.4",
            "1.2.3.4",
            "192.168.100.200",
            "1234567890123",
            "4155552671",
            "$1,234,567.89",
            "4111 1111 1111 1111",
            "123-456-7890",
            "911-555-2671",
            "415-155-2671",
            "+1 415 155 2671",
            "UTC+05:30",
            "2024-01-15T10:30:00+01:00",
            "ISBN 978-3-16-148410-0",
            "0.12.34",
            "+12 34",
            "+262142-12-31T23:59:60",
            "datetime!(+9999-365 23:58:59)",
            "09:08:07.12345678",
            "0399 0308 0301",
            "01 02 03 04 05 06",
            "[*0201.0020.0002]",
        ] {
            assert!(
                found("phone", text).is_empty(),
                "{text}: {:?}",
                found("phone", text)
            );
        }
    }

    #[test]
    fn ipv6_forms() {
        for a in [
            "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
            "2001:db8:85a3::8a2e:370:7334",
            "2001:db8::1",
            "fe80::1",
            "1:2:3:4:5:6:7::",
            "1::2:3:4:5:6:7",
        ] {
            assert_eq!(found("ipv6", &format!("addr {a} up")), [a], "{a}");
        }
        for text in [
            "use std::fmt::Write;",
            "Self::Add(a, b) => c::f()",
            "let x = u128::from(y) + f64::from_bits(z);",
            "dead::beef",
            "SHA1 EA:8D:99:DD:36:AA:2D:07:1A:3C:7B:69:00:9E:51:B9",
            "12:30:45",
        ] {
            assert!(found("ipv6", text).is_empty(), "{text}");
        }
    }

    #[test]
    fn card_separators() {
        for c in [
            "4111 1111 1111 1111",
            "4111  1111  1111  1111",
            "4111\t1111\t1111\t1111",
            "4111-1111-1111-1111",
            "4111.1111.1111.1111",
            "4111/1111/1111/1111",
            "4111_1111_1111_1111",
            "4111 - 1111 - 1111 - 1111",
            "4111111111111111",
            "3530 1113 3330 0000",
            "2223 0031 2200 3222",
            "3056 930902 5904",
        ] {
            let text = format!("card {c} exp 12/27");
            assert_eq!(found("payment_card", &text), [c], "{c}");
        }
        assert_eq!(
            found("payment_card", "4111 1111 1111 1111 123"),
            ["4111 1111 1111 1111"]
        );
        assert_eq!(
            found("payment_card", "qty 2 4111111111111111"),
            ["4111111111111111"]
        );
    }

    #[test]
    fn validators_take_any_input() {
        let inputs: [&[u8]; 12] = [
            b"",
            b"+",
            b"(0",
            b"0",
            b"X",
            b"bc1",
            b"BC1QQQQQQQ",
            b"0x",
            b"1111111111111111111111111111111111",
            b"2A2B",
            b"\xff\xfe:",
            b"::",
        ];
        for d in PII {
            if let Some(f) = d.check.validator() {
                for i in inputs {
                    let _ = f(i);
                }
            }
        }
    }

    #[test]
    fn check_digit_algorithms() {
        assert!(verhoeff(&[2, 3, 6, 3]) && !verhoeff(&[2, 3, 6, 4]));
        assert!(valid_codice_fiscale(b"RSSMRA85T10A562S"));
        assert!(!valid_codice_fiscale(b"RSSMRA85T10A562T"));
        assert!(valid_cpf(b"529.982.247-25") && !valid_cpf(b"111.111.111-11"));
        assert!(valid_es_dni(b"12345678Z") && !valid_es_dni(b"12345678A"));
        assert!(valid_fr_nir(b"1 85 05 78 006 084 91"));
        assert!(valid_iban_any(b"GB82 WEST 1234 5698 7654 32"));
        // The first mixed-case example of EIP-55.
        assert!(valid_eth_address(
            b"0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
        ));
        assert!(!valid_eth_address(
            b"0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD"
        ));
    }
}
