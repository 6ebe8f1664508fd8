//! The library's own rules, and every detector against its cases through the real scanner
//! (keyword windows included).

use super::*;
use crate::matcher::{Hit, PatternSet, Spec, SpecKind};

fn scan(d: &'static Detector, text: &str) -> Vec<Hit> {
    let set = PatternSet::build(
        vec![Spec {
            owner: 0,
            kind: SpecKind::Detector(d),
        }],
        false,
    )
    .unwrap_or_else(|e| panic!("{}: {e}", d.name));
    let mut hits = Vec::new();
    set.scan(text.as_bytes(), &mut hits);
    hits
}

#[test]
fn names_are_unique_and_tags_are_not_names() {
    let mut names: Vec<_> = all().map(|d| d.name).collect();
    let n = names.len();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), n, "duplicate detector names");
    for t in tags() {
        assert!(find(t).is_none(), "tag `{t}` is also a detector name");
        assert_ne!(t, "all");
    }
}

#[test]
fn every_detector_is_well_formed() {
    for d in all() {
        assert!(d.max_len > 0, "{}", d.name);
        assert!(!d.label.is_empty() && !d.provider.is_empty(), "{}", d.name);
        for k in d.keywords {
            assert!(
                k.len() >= 3 && !k.bytes().any(|b| b.is_ascii_uppercase() || !b.is_ascii()),
                "{}: keyword `{k}` must be lower-case ASCII of 3+ bytes",
                d.name
            );
        }
        assert_eq!(
            d.kind == DetectorKind::PersonalData,
            d.stance == Stance::Structured,
            "{}: personal data and only it is `structured`",
            d.name
        );
    }
}

#[test]
fn every_detector_has_cases() {
    for d in all() {
        let c = cases::all().find(|c| c.detector == d.name);
        let c = c.unwrap_or_else(|| panic!("{} has no cases", d.name));
        assert!(
            !c.hits.is_empty() && !c.misses.is_empty(),
            "{}: needs hits and misses",
            d.name
        );
    }
    for c in cases::all() {
        assert!(
            find(c.detector).is_some(),
            "cases for unknown {}",
            c.detector
        );
    }
}

#[test]
fn detectors_find_their_hits_and_not_their_lookalikes() {
    let mut failures = Vec::new();
    for c in cases::all() {
        let d = find(c.detector).unwrap();
        for (text, value) in c.hits {
            let at = text.find(value).expect("value is part of the text");
            let hits = scan(d, text);
            let covering = hits
                .iter()
                .find(|h| h.start <= at && h.end >= at + value.len());
            match covering {
                None => failures.push(format!("{}: missed {value:?} in {text:?}", d.name)),
                Some(h) => {
                    let m = &text[h.start..h.end];
                    if m.len() > d.max_len {
                        failures.push(format!("{}: match longer than max_len", d.name));
                    }
                    let lower = m.to_ascii_lowercase();
                    if !d.keywords.is_empty() && !d.keywords.iter().any(|k| lower.contains(k)) {
                        failures.push(format!("{}: match {m:?} has no keyword", d.name));
                    }
                }
            }
        }
        for text in c.misses {
            if !scan(d, text).is_empty() {
                failures.push(format!("{}: matched look-alike {text:?}", d.name));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn tags_and_all_resolve() {
    let creds = resolve("credentials").unwrap();
    assert!(creds.iter().all(|d| d.kind == DetectorKind::Credential));
    assert_eq!(
        creds.len(),
        all().filter(|d| d.kind == DetectorKind::Credential).count()
    );
    assert_eq!(resolve("all").unwrap().len(), all().count());
    assert_eq!(resolve("email").unwrap().len(), 1);
    assert!(resolve("no_such_thing").is_none());
    let both = resolve_all(&["pii".to_owned(), "email".to_owned()]);
    assert_eq!(
        both.len(),
        resolve("pii").unwrap().len(),
        "each detector once"
    );
}

#[test]
fn entropy_floor_rejects_placeholders() {
    let f = Check::Entropy(3.0).validator().unwrap();
    assert!(!f(b"password = aaaaaaaaaaaa"));
    assert!(f(b"password = Tr0ub4dor&3xK9q"));
}

#[test]
fn max_len_bounds_every_possible_match() {
    let mut bad = Vec::new();
    for d in all() {
        let hir = regex_syntax::ParserBuilder::new()
            .unicode(false)
            .utf8(false)
            .build()
            .parse(d.pattern)
            .unwrap_or_else(|e| panic!("{}: {e}", d.name));
        match hir.properties().maximum_len() {
            Some(m) if m <= d.max_len => {}
            m => bad.push(format!(
                "{}: longest match {m:?}, max_len {}",
                d.name, d.max_len
            )),
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// A prefixed credential glued into a word (`key_AKIA…x`) is still found: prefix detectors
/// have no word boundaries that gluing would defeat.
#[test]
fn prefix_credentials_glued_to_words_are_found() {
    let mut failures = Vec::new();
    for c in cases::all() {
        let d = find(c.detector).unwrap();
        if d.stance != Stance::Prefix {
            continue;
        }
        // Values that carry their own prefix (not the ones found by their context).
        let prefixed = c.hits.iter().filter(|(_, v)| {
            let lower = v.to_ascii_lowercase();
            d.keywords.iter().any(|k| lower.starts_with(k))
        });
        for (_, value) in prefixed {
            let text = format!("key_{value}x");
            let at = 4;
            if !scan(d, &text)
                .iter()
                .any(|h| h.start <= at && h.end >= at + value.len())
            {
                failures.push(format!("{}: glued {value:?} missed", d.name));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Long runs that fail a detector's check are judged once each, not once per shorter end:
/// the scan stays within its work budget (had it run out, the candidates would count as
/// matches and this would find some).
#[test]
fn failed_candidates_cost_linear_work() {
    let run = "A".repeat(8192);
    for (name, text) in [
        (
            "kubeconfig_client_key",
            format!("client-key-data: {run}\n").repeat(8),
        ),
        ("twitter_bearer_token", format!("{run} ").repeat(8)),
        ("secret_assignment", format!("password = {run}\n").repeat(8)),
    ] {
        let d = find(name).unwrap();
        let start = std::time::Instant::now();
        assert!(scan(d, &text).is_empty(), "{name}");
        // Not a timing assertion: printed to compare runs.
        println!("{name}: {:?}", start.elapsed());
    }
}
