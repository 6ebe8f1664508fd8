//! Tamper evidence for the session log, independent of where it is stored.
//!
//! Records form a hash chain: each record's hash covers the previous record's hash, its
//! sequence number and its canonical bytes, so editing, deleting, inserting or reordering a
//! record breaks every link after it. Checkpoints sign `(seq, hash)` with an ed25519 key, so
//! someone who rewrites the whole chain from some point on still cannot produce the signed
//! hashes. A verifier needs only the records, the checkpoints and the public key.

use ed25519_compact::{KeyPair, PublicKey, Seed, Signature};
use sha2::{Digest, Sha256};
use std::path::Path;

/// The `prev_hash` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The hash of record `seq` with canonical bytes `record`, following `prev`.
pub fn link(prev: &str, seq: u64, record: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(b"gatehouse/record/v1\n");
    h.update(prev.as_bytes());
    h.update(b"\n");
    h.update(seq.to_string().as_bytes());
    h.update(b"\n");
    h.update(record);
    hex::encode(h.finalize())
}

fn checkpoint_message(seq: u64, hash: &str) -> Vec<u8> {
    format!("gatehouse/checkpoint/v1\n{seq}\n{hash}").into_bytes()
}

/// The key that signs checkpoints.
pub struct Signer {
    kp: KeyPair,
}

impl Signer {
    /// Load the key from `path` (a 32-byte seed, hex), creating it `0600` when missing.
    pub fn load_or_create(path: &Path) -> std::io::Result<Signer> {
        if !path.exists() {
            let seed = Seed::generate();
            crate::cli::write_private(path, hex::encode(seed.as_ref()).as_bytes())?;
        }
        let text = std::fs::read_to_string(path)?;
        let raw = hex::decode(text.trim())
            .ok()
            .filter(|b| b.len() == 32)
            .ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: not a 32-byte hex ed25519 seed", path.display()),
                )
            })?;
        let seed = Seed::from_slice(&raw)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
        Ok(Signer {
            kp: KeyPair::from_seed(seed),
        })
    }

    /// A key that lives only as long as the process (in-memory stores).
    pub fn throwaway() -> Signer {
        Signer {
            kp: KeyPair::from_seed(Seed::generate()),
        }
    }

    pub fn public_key_hex(&self) -> String {
        hex::encode(self.kp.pk.as_ref())
    }

    /// The short id checkpoints name their key by.
    pub fn key_id(&self) -> String {
        key_id(&self.kp.pk)
    }

    pub fn sign(&self, seq: u64, hash: &str) -> String {
        hex::encode(
            self.kp
                .sk
                .sign(checkpoint_message(seq, hash), None)
                .as_ref(),
        )
    }
}

fn key_id(pk: &PublicKey) -> String {
    hex::encode(&Sha256::digest(pk.as_ref())[..8])
}

/// Parse a public key given as hex.
pub fn public_key(hex_text: &str) -> Result<PublicKey, String> {
    let raw = hex::decode(hex_text.trim()).map_err(|e| format!("public key is not hex: {e}"))?;
    PublicKey::from_slice(&raw).map_err(|e| format!("not an ed25519 public key: {e}"))
}

/// A stored record as the verifier sees it.
pub struct Row {
    pub seq: u64,
    pub prev_hash: String,
    pub hash: String,
    pub record: Vec<u8>,
}

/// A stored checkpoint.
pub struct Checkpoint {
    pub seq: u64,
    pub hash: String,
    pub key_id: String,
    pub signature: String,
}

/// What a successful verification covered.
#[derive(Debug, PartialEq, Eq)]
pub struct Verified {
    pub records: u64,
    pub checkpoints: u64,
    /// Records after the last checkpoint: chained, not yet signed.
    pub unsigned_tail: u64,
}

/// Verify the chain of `rows` (ascending `seq`) and its `checkpoints` with `pk`. The error
/// names the first record or checkpoint that does not hold, and what kind of change explains
/// it.
pub fn verify(
    rows: impl IntoIterator<Item = Row>,
    checkpoints: &[Checkpoint],
    pk: &PublicKey,
) -> Result<Verified, String> {
    let mut rows = rows.into_iter().peekable();
    // A pruned log starts after record 1: its first record must follow a signed checkpoint
    // (kept by the pruning) of the record before it.
    let (start, mut prev) = match rows.peek() {
        Some(first) if first.seq > 1 => {
            let anchor = checkpoints
                .iter()
                .find(|c| c.seq + 1 == first.seq && c.hash == first.prev_hash);
            match anchor {
                Some(c) => (first.seq, c.hash.clone()),
                None => {
                    return Err(format!(
                        "records 1 to {} are missing and no signed checkpoint anchors record {}: deleted",
                        first.seq - 1,
                        first.seq
                    ))
                }
            }
        }
        _ => (1, GENESIS.to_owned()),
    };
    let anchor_hash = (start > 1).then(|| prev.clone());
    let mut hashes = std::collections::HashMap::new();
    let mut count = 0u64;
    for (expected_seq, r) in (start..).zip(rows) {
        if r.seq > expected_seq {
            return Err(format!(
                "record {expected_seq} is missing: deleted (the log goes on at {})",
                r.seq
            ));
        }
        if r.seq < expected_seq {
            return Err(format!(
                "record {} appears again after record {}: inserted or reordered",
                r.seq,
                expected_seq - 1
            ));
        }
        if r.prev_hash != prev {
            return Err(format!(
                "the chain breaks between records {} and {}: record {} was modified (and its hash recomputed), or a record was inserted, deleted or reordered there",
                r.seq.saturating_sub(1),
                r.seq,
                r.seq.saturating_sub(1)
            ));
        }
        let computed = link(&prev, r.seq, &r.record);
        if computed != r.hash {
            return Err(format!("record {} was modified", r.seq));
        }
        hashes.insert(r.seq, computed.clone());
        prev = computed;
        count += 1;
    }
    if count > 0 && checkpoints.is_empty() {
        return Err(format!(
            "{count} records and no signed checkpoint: nothing vouches for them (checkpoints deleted?)"
        ));
    }
    let want_id = key_id(pk);
    let mut last_signed = 0;
    let mut good = 0;
    for c in checkpoints {
        let sig = hex::decode(&c.signature)
            .ok()
            .and_then(|b| Signature::from_slice(&b).ok());
        let signed = c.key_id == want_id
            && sig.is_some_and(|s| pk.verify(checkpoint_message(c.seq, &c.hash), &s).is_ok());
        if !signed {
            return Err(format!(
                "checkpoint at record {} is not signed by this key: forged or altered",
                c.seq
            ));
        }
        if c.seq + 1 == start && anchor_hash.as_deref() == Some(c.hash.as_str()) {
            // The anchor of a pruned log: its record is gone by design.
            good += 1;
            continue;
        }
        match hashes.get(&c.seq) {
            Some(h) if *h == c.hash => {}
            Some(_) => {
                return Err(format!(
                    "records up to {} were rewritten: the chain no longer ends in the hash signed there (the change lies after record {last_signed})",
                    c.seq
                ))
            }
            None => {
                return Err(format!(
                    "checkpoint at record {} names a record the log does not have: records were deleted",
                    c.seq
                ))
            }
        }
        last_signed = last_signed.max(c.seq);
        good += 1;
    }
    Ok(Verified {
        records: count,
        checkpoints: good,
        unsigned_tail: (start + count)
            .saturating_sub(1)
            .saturating_sub(last_signed.max(start - 1)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> Signer {
        Signer {
            kp: KeyPair::from_seed(Seed::from_slice(&[7u8; 32]).unwrap()),
        }
    }

    /// A chain of `n` records with a checkpoint at every `every`-th.
    fn chain(n: u64, every: u64) -> (Vec<Row>, Vec<Checkpoint>) {
        let s = signer();
        let mut rows = Vec::new();
        let mut cps = Vec::new();
        let mut prev = GENESIS.to_owned();
        for seq in 1..=n {
            let record = format!("{{\"n\":{seq}}}").into_bytes();
            let hash = link(&prev, seq, &record);
            rows.push(Row {
                seq,
                prev_hash: prev.clone(),
                hash: hash.clone(),
                record,
            });
            if seq % every == 0 {
                cps.push(Checkpoint {
                    seq,
                    signature: s.sign(seq, &hash),
                    hash: hash.clone(),
                    key_id: s.key_id(),
                });
            }
            prev = hash;
        }
        (rows, cps)
    }

    fn check(rows: Vec<Row>, cps: &[Checkpoint]) -> Result<Verified, String> {
        verify(rows, cps, &signer().kp.pk)
    }

    #[test]
    fn an_intact_chain_verifies() {
        let (rows, cps) = chain(10, 4);
        assert_eq!(
            check(rows, &cps),
            Ok(Verified {
                records: 10,
                checkpoints: 2,
                unsigned_tail: 2
            })
        );
    }

    #[test]
    fn a_pruned_log_verifies_from_its_anchor_and_only_from_it() {
        let (rows, cps) = chain(12, 4);
        // Pruned up to the checkpoint at 8: records 9.. and checkpoints 8.. remain.
        let kept: Vec<Row> = rows.into_iter().filter(|r| r.seq > 8).collect();
        let kept_cps: Vec<Checkpoint> = cps.into_iter().filter(|c| c.seq >= 8).collect();
        assert_eq!(check(kept, &kept_cps).unwrap().records, 4);
        // Without the anchoring checkpoint, the missing head is a deletion.
        let (rows, cps) = chain(12, 4);
        let kept: Vec<Row> = rows.into_iter().filter(|r| r.seq > 8).collect();
        let later: Vec<Checkpoint> = cps.into_iter().filter(|c| c.seq > 8).collect();
        assert!(check(kept, &later)
            .unwrap_err()
            .contains("records 1 to 8 are missing"));
    }

    #[test]
    fn each_kind_of_tampering_is_named() {
        let (rows, cps) = chain(10, 4);
        // Edit.
        let mut r = chain(10, 4).0;
        r[4].record = b"{\"n\":99}".to_vec();
        assert_eq!(check(r, &cps).unwrap_err(), "record 5 was modified");
        // Edit with the hashes after it recomputed: the checkpoint catches it.
        let mut r = chain(10, 4).0;
        r[4].record = b"{\"n\":99}".to_vec();
        let mut prev = r[3].hash.clone();
        for x in r.iter_mut().skip(4) {
            x.prev_hash = prev.clone();
            x.hash = link(&prev, x.seq, &x.record);
            prev = x.hash.clone();
        }
        let e = check(r, &cps).unwrap_err();
        assert!(
            e.contains("records up to 8 were rewritten") && e.contains("after record 4"),
            "{e}"
        );
        // Delete.
        let mut r = chain(10, 4).0;
        r.remove(6);
        assert!(check(r, &cps)
            .unwrap_err()
            .starts_with("record 7 is missing"));
        // Insert (a copy of an earlier record).
        let mut r = chain(10, 4).0;
        let copy = Row {
            seq: 3,
            prev_hash: r[1].prev_hash.clone(),
            hash: r[2].hash.clone(),
            record: r[2].record.clone(),
        };
        r.insert(5, copy);
        assert!(check(r, &cps).unwrap_err().contains("appears again"));
        // Reorder (swap two records and renumber them).
        let mut r = chain(10, 4).0;
        r.swap(2, 3);
        r[2].seq = 3;
        r[3].seq = 4;
        assert!(check(r, &cps)
            .unwrap_err()
            .contains("the chain breaks between records 2 and 3"));
        // Checkpoints deleted.
        assert!(check(chain(10, 4).0, &[])
            .unwrap_err()
            .contains("no signed checkpoint"));
        // A forged checkpoint.
        let mut forged = cps;
        forged[0].hash = rows[2].hash.clone();
        assert!(check(chain(10, 4).0, &forged)
            .unwrap_err()
            .contains("forged"));
        // A checkpoint signed by another key.
        let other = Signer {
            kp: KeyPair::from_seed(Seed::from_slice(&[8u8; 32]).unwrap()),
        };
        let (rows, _) = chain(4, 4);
        let cp = Checkpoint {
            seq: 4,
            hash: rows[3].hash.clone(),
            key_id: other.key_id(),
            signature: other.sign(4, &rows[3].hash),
        };
        assert!(check(rows, &[cp]).unwrap_err().contains("forged"));
    }
}
