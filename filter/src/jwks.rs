//! JWKS sharing between workers, free of host calls so it is tested natively.
//!
//! Every worker has its own VM and root context. A fetched JWKS is published in shared data as
//! `<fetched_at> <document>`; each root context installs what another worker published, and
//! one fetch per issuer per interval is claimed with compare-and-swap on a second key holding
//! the time of the last claim. `lib.rs` does the host calls around these decisions.

/// Seconds between background refreshes of an issuer's JWKS.
pub const REFRESH_SECS: u64 = 300;
/// Least seconds between two fetches of one issuer's JWKS (unknown `kid`s, first use).
pub const MIN_INTERVAL_SECS: u64 = 5;

/// Shared-data key of an issuer's published JWKS.
pub fn document_key(issuer: &str) -> String {
    format!("gatehouse.jwks.{issuer}")
}

/// Shared-data key of the time an issuer's last fetch was claimed.
pub fn claim_key(issuer: &str) -> String {
    format!("gatehouse.jwks.{issuer}.fetching")
}

/// The shared value for a document fetched at `now`.
pub fn encode(now: u64, doc: &[u8]) -> Vec<u8> {
    let mut v = now.to_string().into_bytes();
    v.push(b' ');
    v.extend_from_slice(doc);
    v
}

/// A shared value's fetch time and document; `None` when it is not one.
pub fn decode(value: &[u8]) -> Option<(u64, &[u8])> {
    let sp = value.iter().position(|b| *b == b' ')?;
    let at = std::str::from_utf8(&value[..sp]).ok()?.parse().ok()?;
    Some((at, &value[sp + 1..]))
}

/// Whether a fetch may be claimed at `now`, given the stored time of the last claim. A value
/// that is not a time (never written, or garbage) does not block a claim.
pub fn may_claim(last_claim: Option<&[u8]>, now: u64) -> bool {
    let last = last_claim
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(0);
    now >= last.saturating_add(MIN_INTERVAL_SECS)
}

/// Whether keys fetched at `fetched_at` (`None`: never) should be refreshed at `now`.
pub fn is_stale(fetched_at: Option<u64>, now: u64) -> bool {
    fetched_at.is_none_or(|at| now >= at.saturating_add(REFRESH_SECS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_values_round_trip_and_garbage_is_ignored() {
        let v = encode(42, br#"{"keys": []}"#);
        assert_eq!(decode(&v), Some((42, br#"{"keys": []}"#.as_slice())));
        assert_eq!(decode(b"not-a-time {}"), None);
        assert_eq!(decode(b"no-space"), None);
        assert_eq!(decode(b""), None);
    }

    #[test]
    fn one_claim_per_interval() {
        assert!(may_claim(None, 100));
        assert!(may_claim(Some(b"garbage"), 100));
        assert!(!may_claim(Some(b"98"), 100));
        assert!(may_claim(Some(b"95"), 100));
        assert!(!may_claim(Some(b"18446744073709551615"), 0), "no overflow");
    }

    #[test]
    fn staleness() {
        assert!(is_stale(None, 0));
        assert!(!is_stale(Some(100), 100 + REFRESH_SECS - 1));
        assert!(is_stale(Some(100), 100 + REFRESH_SECS));
        assert!(!is_stale(Some(u64::MAX), 0));
    }
}
