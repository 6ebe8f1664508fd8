//! Cases for the personal-data detectors. Every value is made up: card numbers are the
//! networks' published test numbers, IBANs the registry's examples, and the national
//! identifiers were given valid check digits by hand.

use super::Case;

pub(in crate::detectors) static CASES: &[Case] = &[
    Case {
        detector: "email",
        hits: &[
            (
                "mail jane.doe+x@mail.example.co.uk now",
                "jane.doe+x@mail.example.co.uk",
            ),
            ("Contact: a.smith@example.org.", "a.smith@example.org"),
            ("reply to dev_ops@example.net", "dev_ops@example.net"),
            (
                "From: <ops-team@sub.example.com>",
                "ops-team@sub.example.com",
            ),
        ],
        misses: &[
            "user@localhost",
            "a @ b",
            "ping @channel now",
            "x@domain.c0m",
        ],
    },
    Case {
        detector: "phone",
        hits: &[
            ("call +44 20 7946 0958 today", "+44 20 7946 0958"),
            ("call (415) 555-2671", "(415) 555-2671"),
            ("Ruf mich an: 030 12345678", "030 12345678"),
            ("Tel. 06.12.34.56.78 le soir", "06.12.34.56.78"),
        ],
        misses: &[
            "on 2024-01-15 at 10:30:00, or 15.01.2024, or 01/02/2024",
            "version 1.2.3.4 on 192.168.1.10",
            "order 1234567890123 for $1,234,567.89",
            "card 4111 1111 1111 1111 and +1 2",
        ],
    },
    Case {
        detector: "payment_card",
        hits: &[
            ("card 4111 1111 1111 1111 exp", "4111 1111 1111 1111"),
            ("card 5500-0000-0000-0004", "5500-0000-0000-0004"),
            ("amex 3782 822463 10005 cvv 1234", "3782 822463 10005"),
            ("number: 6011.1111.1111.1117 123", "6011.1111.1111.1117"),
        ],
        misses: &[
            "order 4111 1111 1111 1112",
            "1234567812345678",
            "ref 2000 0000 0000 0006",
            "id 3400 0000 0000 0000",
        ],
    },
    Case {
        detector: "iban",
        hits: &[
            (
                "iban GB82 WEST 1234 5698 7654 32",
                "GB82 WEST 1234 5698 7654 32",
            ),
            ("pay DE89370400440532013000 now", "DE89370400440532013000"),
            (
                "RIB FR14 2004 1010 0505 0001 3M02 606 BIC",
                "FR14 2004 1010 0505 0001 3M02 606",
            ),
        ],
        misses: &[
            "DE89370400440532013001",
            "XX89370400440532013000",
            "GB82 WEST 1234 5698 7654",
        ],
    },
    Case {
        detector: "us_ssn",
        hits: &[
            ("ssn 123-45-6789", "123-45-6789"),
            ("SSN: 536 22 1987, DOB withheld", "536 22 1987"),
        ],
        misses: &[
            "000-45-6789",
            "666-45-6789 and 912-78-3456",
            "078-05-1120",
            "call 555-123-4567",
        ],
    },
    Case {
        detector: "uk_nino",
        hits: &[
            ("nino AB 12 34 56 C", "AB 12 34 56 C"),
            ("NI number TP407193B on file", "TP407193B"),
        ],
        misses: &["GB 12 34 56 C", "DA 12 34 56 C", "AB 12 34 56 E"],
    },
    Case {
        detector: "ipv4",
        hits: &[
            ("host 10.0.12.7 up", "10.0.12.7"),
            ("from 203.0.113.45:8080", "203.0.113.45"),
        ],
        misses: &["300.1.1.1", "version 1.2.3", "10.0.0.256"],
    },
    Case {
        detector: "ipv6",
        hits: &[
            ("host 2001:db8::1 up", "2001:db8::1"),
            (
                "link fe80::1ff:fe23:4567:890a on eth0",
                "fe80::1ff:fe23:4567:890a",
            ),
        ],
        misses: &[
            "at 12:30 today",
            "use std::sync::Mutex;",
            "mac 00:1a:2b:3c:4d:5e",
        ],
    },
    Case {
        detector: "mac_address",
        hits: &[
            ("device 00:1A:2B:3C:4D:5E joined", "00:1A:2B:3C:4D:5E"),
            ("wifi mac 3c-22-fb-7a-91-0e", "3c-22-fb-7a-91-0e"),
            ("cisco 0050.56c0.0008 port 3", "0050.56c0.0008"),
        ],
        misses: &[
            "00:00:00:00:00:00",
            "ff:ff:ff:ff:ff:ff",
            "time 12:30:45",
            "00:1A:2B-3C:4D:5E",
        ],
    },
    Case {
        detector: "swift_bic",
        hits: &[
            ("BIC: DEUTDEFF500 please", "DEUTDEFF500"),
            ("swift COBADEFFXXX", "COBADEFFXXX"),
            ("bank NWBKGB2L London", "NWBKGB2L"),
        ],
        misses: &["CUSTOMER DATABASE", "ENVIRONMENT", "ABCDXX12", "PASSWORD"],
    },
    Case {
        detector: "bitcoin_address",
        hits: &[
            (
                "send to 19jyc9JDjSeVZiZ64Ta2hB2DikvsT3xvDV today",
                "19jyc9JDjSeVZiZ64Ta2hB2DikvsT3xvDV",
            ),
            (
                "multisig 3FjXpsCWnyo1R7rfrqi59buST1fJXYM9Qh",
                "3FjXpsCWnyo1R7rfrqi59buST1fJXYM9Qh",
            ),
            (
                "segwit bc1quusau4zr2arurh3cd30wkuehtwk3m7azpk97wm.",
                "bc1quusau4zr2arurh3cd30wkuehtwk3m7azpk97wm",
            ),
            (
                "taproot bc1p7kp3ec2xwcnl832k20edwaxhyjzjnal2q7px0442selr86n4cf0q09aaf0",
                "bc1p7kp3ec2xwcnl832k20edwaxhyjzjnal2q7px0442selr86n4cf0q09aaf0",
            ),
        ],
        misses: &[
            "19jyc9JDjSeVZiZ64Ta2hB2DikvsT3xvDW",
            "3FjXpsCWnyo1R7rfrqi59buST1fJXYM9Qj",
            "bc1quusau4zr2arurh3cd30wkuehtwk3m7azpk97wn",
            "bc1Quusau4zr2arurh3cd30wkuehtwk3m7azpk97wm",
        ],
    },
    Case {
        detector: "ethereum_address",
        hits: &[
            (
                "wallet 0x7c3E9a1f0b5D8E2a4c6f1b3D5e7A9C0B2D4F6E8a ok",
                "0x7c3E9a1f0b5D8E2a4c6f1b3D5e7A9C0B2D4F6E8a",
            ),
            (
                "to: 0x4b1f0e8c2d7a93e65f0c1d2b3a4e5f6071829304",
                "0x4b1f0e8c2d7a93e65f0c1d2b3a4e5f6071829304",
            ),
        ],
        misses: &[
            "0x7c3e9a1f0b5D8E2a4c6f1b3D5e7A9C0B2D4F6E8a",
            "0x0000000000000000000000000000000000000000",
            "0x4b1f0e8c2d7a93e65f0c1d2b3a4e5f607182930",
        ],
    },
    Case {
        detector: "us_itin",
        hits: &[
            ("ITIN 912-78-3456 on the form", "912-78-3456"),
            ("itin: 987 90 1234", "987 90 1234"),
        ],
        misses: &["912-89-3456", "912-93-3456", "912-45-6789", "812-78-3456"],
    },
    Case {
        detector: "ca_sin",
        hits: &[
            ("SIN 130 692 544 on file", "130 692 544"),
            ("sin: 271-828-188", "271-828-188"),
        ],
        misses: &["130 692 545", "046 454 286", "813 692 544"],
    },
    Case {
        detector: "uk_nhs",
        hits: &[
            ("NHS number 401 023 2137 for", "401 023 2137"),
            ("nhs no. 485-777-3457", "485-777-3457"),
            ("patient 612 345 6784", "612 345 6784"),
        ],
        misses: &["401 023 2138", "712 345 6700", "123 456 7890"],
    },
    Case {
        detector: "in_aadhaar",
        hits: &[
            ("Aadhaar 2345 6789 0124 linked", "2345 6789 0124"),
            ("uid 4918-7653-2013", "4918-7653-2013"),
        ],
        misses: &[
            "2345 6789 0125",
            "1234 5678 9012",
            "234567890124",
            "years 2021 2022 2023 2024 2025 2026",
        ],
    },
    Case {
        detector: "in_pan",
        hits: &[
            ("PAN ABCPE1234F for tax", "ABCPE1234F"),
            ("company pan AAACZ9876K", "AAACZ9876K"),
        ],
        misses: &["ABCDE1234F", "ABCP1234F", "abcpe1234f"],
    },
    Case {
        detector: "br_cpf",
        hits: &[
            ("CPF 529.982.247-25 cadastrado", "529.982.247-25"),
            ("cpf: 390533447-05", "390533447-05"),
        ],
        misses: &["529.982.247-26", "111.111.111-11", "52998224725"],
    },
    Case {
        detector: "br_cnpj",
        hits: &[
            ("CNPJ 11.222.333/0001-81 ativo", "11.222.333/0001-81"),
            ("cnpj: 45.281.739/0001-57", "45.281.739/0001-57"),
        ],
        misses: &["11.222.333/0001-82", "00.000.000/0000-00"],
    },
    Case {
        detector: "es_dni",
        hits: &[
            ("DNI 12345678Z en vigor", "12345678Z"),
            ("nif: 48271935-H", "48271935-H"),
        ],
        misses: &["12345678A", "123456789Z", "on 20240115 A"],
    },
    Case {
        detector: "es_nie",
        hits: &[
            ("NIE X1234567L caducado", "X1234567L"),
            ("nie Y-2345678-Z", "Y-2345678-Z"),
        ],
        misses: &["X1234567A", "W1234567L"],
    },
    Case {
        detector: "it_codice_fiscale",
        hits: &[
            ("CF BNCGLI90A41H501E residente", "BNCGLI90A41H501E"),
            ("codice fiscale: vrdlcu77m22f205m", "vrdlcu77m22f205m"),
        ],
        misses: &["BNCGLI90A41H501F", "VRDLCU77Z22F205M", "ABCDEFGHIJKLMNOP"],
    },
    Case {
        detector: "nl_bsn",
        hits: &[
            ("BSN 1234.56.721 bekend", "1234.56.721"),
            ("bsn: 8765 43 219", "8765 43 219"),
        ],
        misses: &["1234.56.722", "123456721", "2024.01.150"],
    },
    Case {
        detector: "fr_nir",
        hits: &[
            ("NIR 1 85 05 78 006 084 91 connu", "1 85 05 78 006 084 91"),
            ("secu: 291037512000544", "291037512000544"),
            (
                "né en Corse: 1 78 01 2A 123 456 21",
                "1 78 01 2A 123 456 21",
            ),
        ],
        misses: &["1 85 05 78 006 084 92", "3 85 05 78 006 084 91"],
    },
    Case {
        detector: "au_tfn",
        hits: &[
            ("TFN 314 159 262 lodged", "314 159 262"),
            ("tfn: 564-738-299", "564-738-299"),
        ],
        misses: &["314 159 263", "123 456 789"],
    },
];
