//! The log as a Merkle tree: roots, inclusion and consistency proofs,
//! checked with `tlog_tiles`' verifiers and with an independent
//! implementation of RFC 9162 written here from the RFC's text.

use baove_eventlog::tlog::{self, Hash};
use baove_eventlog::{EventLog, ExpectedVersion, StreamId};
use rand::{Rng as _, SeedableRng as _};

use crate::request;

/// RFC 9162 §2.1, written independently of the crate under test.
mod rfc9162 {
    use sha2::{Digest, Sha256};

    pub type H = [u8; 32];

    pub fn leaf(data: &[u8]) -> H {
        let mut h = Sha256::new();
        h.update([0u8]);
        h.update(data);
        h.finalize().into()
    }

    pub fn node(l: &H, r: &H) -> H {
        let mut h = Sha256::new();
        h.update([1u8]);
        h.update(l);
        h.update(r);
        h.finalize().into()
    }

    /// MTH(D[n]) over leaf hashes (§2.1.1).
    pub fn mth(leaves: &[H]) -> H {
        match leaves.len() {
            0 => Sha256::digest([]).into(),
            1 => leaves[0],
            n => {
                let k = 1usize << (usize::BITS - 1 - (n - 1).leading_zeros());
                node(&mth(&leaves[..k]), &mth(&leaves[k..]))
            }
        }
    }

    /// §2.1.3.2: verifying an inclusion proof.
    pub fn verify_inclusion(index: u64, size: u64, leaf: &H, proof: &[H], root: &H) -> bool {
        if index >= size {
            return false;
        }
        let (mut fnode, mut snode) = (index, size - 1);
        let mut r = *leaf;
        for p in proof {
            if snode == 0 {
                return false;
            }
            if fnode & 1 == 1 || fnode == snode {
                r = node(p, &r);
                if fnode & 1 == 0 {
                    while fnode & 1 == 0 && fnode != 0 {
                        fnode >>= 1;
                        snode >>= 1;
                    }
                }
            } else {
                r = node(&r, p);
            }
            fnode >>= 1;
            snode >>= 1;
        }
        snode == 0 && &r == root
    }

    /// §2.1.4.2: verifying a consistency proof.
    pub fn verify_consistency(first: u64, second: u64, r1: &H, r2: &H, proof: &[H]) -> bool {
        if first == second {
            return proof.is_empty() && r1 == r2;
        }
        if first == 0 || first > second || proof.is_empty() {
            return false;
        }
        let mut path = proof.to_vec();
        if first.is_power_of_two() {
            path.insert(0, *r1);
        }
        let (mut fnode, mut snode) = (first - 1, second - 1);
        while fnode & 1 == 1 {
            fnode >>= 1;
            snode >>= 1;
        }
        let (mut fr, mut sr) = (path[0], path[0]);
        for c in &path[1..] {
            if snode == 0 {
                return false;
            }
            if fnode & 1 == 1 || fnode == snode {
                fr = node(c, &fr);
                sr = node(c, &sr);
                if fnode & 1 == 0 {
                    while fnode & 1 == 0 && fnode != 0 {
                        fnode >>= 1;
                        snode >>= 1;
                    }
                }
            } else {
                sr = node(&sr, c);
            }
            fnode >>= 1;
            snode >>= 1;
        }
        snode == 0 && &fr == r1 && &sr == r2
    }
}

/// A log of `n` events over three streams; returns it with the event
/// hashes in global order.
async fn log_of(n: usize) -> (tempfile::TempDir, EventLog, Vec<[u8; 32]>) {
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::open(dir.path()).await.unwrap();
    let streams = [StreamId::new(), StreamId::new(), StreamId::new()];
    let mut versions = [0u64; 3];
    for i in 0..n {
        let s = i % 3;
        let expected = if versions[s] == 0 {
            ExpectedVersion::NoStream
        } else {
            ExpectedVersion::Exact(versions[s])
        };
        log.append(request(streams[s], expected, &format!("c{i}"), 1))
            .await
            .unwrap();
        versions[s] += 1;
    }
    let hashes = log
        .read_all(1, n + 1)
        .await
        .unwrap()
        .iter()
        .map(|e| e.hash.0)
        .collect();
    (dir, log, hashes)
}

fn leaves(hashes: &[[u8; 32]]) -> Vec<rfc9162::H> {
    hashes.iter().map(|h| rfc9162::leaf(h)).collect()
}

#[tokio::test]
async fn every_proof_between_sizes_1_and_64_verifies_with_both_implementations() {
    let (_dir, log, hashes) = log_of(64).await;
    let all = leaves(&hashes);
    let mut roots = vec![rfc9162::mth(&[])];
    for n in 1..=64u64 {
        let root = log.tree_root(n).await.unwrap();
        let expected = rfc9162::mth(&all[..n as usize]);
        assert_eq!(root.0, expected, "root of size {n}");
        assert_eq!(tlog::root_of(&hashes[..n as usize]), (root, n));
        roots.push(expected);
    }
    for n in 1..=64u64 {
        let root = roots[n as usize];
        for p in 1..=n {
            let proof = log.prove_inclusion(p, n).await.unwrap();
            let leaf = tlog::leaf(&hashes[p as usize - 1]);
            tlog_tiles::check_record(&proof, n, Hash(root), p - 1, leaf)
                .unwrap_or_else(|e| panic!("inclusion of {p} in {n}: {e}"));
            let raw: Vec<_> = proof.iter().map(|h| h.0).collect();
            assert!(
                rfc9162::verify_inclusion(p - 1, n, &leaf.0, &raw, &root),
                "inclusion of {p} in {n} (RFC 9162)"
            );
            // Another event's leaf is not under the root with this proof.
            let other = tlog::leaf(&hashes[p as usize % n as usize]);
            if n > 1 {
                assert!(tlog_tiles::check_record(&proof, n, Hash(root), p - 1, other).is_err());
            }
        }
        for m in 1..=n {
            let proof = log.prove_consistency(m, n).await.unwrap();
            let old = roots[m as usize];
            tlog_tiles::check_tree(&proof, n, Hash(root), m, Hash(old))
                .unwrap_or_else(|e| panic!("consistency {m} -> {n}: {e}"));
            let raw: Vec<_> = proof.iter().map(|h| h.0).collect();
            assert!(
                rfc9162::verify_consistency(m, n, &old, &root, &raw),
                "consistency {m} -> {n} (RFC 9162)"
            );
            // A root of another tree of size m is not consistent with it.
            if m < n {
                let mut forged = old;
                forged[0] ^= 1;
                assert!(tlog_tiles::check_tree(&proof, n, Hash(root), m, Hash(forged)).is_err());
                assert!(!rfc9162::verify_consistency(m, n, &forged, &root, &raw));
            }
        }
    }
}

#[tokio::test]
async fn random_larger_sizes_verify_and_the_tree_grows_in_pages() {
    // More than one page (1,024 events) of stored hashes.
    let (_dir, log, hashes) = log_of(2_500).await;
    let all = leaves(&hashes);
    let mut rng = rand::rngs::StdRng::seed_from_u64(9162);
    for _ in 0..40 {
        let n = rng.random_range(65..=2_500u64);
        let m = rng.random_range(1..=n);
        let p = rng.random_range(1..=n);
        let root = rfc9162::mth(&all[..n as usize]);
        let old = rfc9162::mth(&all[..m as usize]);
        assert_eq!(log.tree_root(n).await.unwrap().0, root);
        let inclusion: Vec<_> = log
            .prove_inclusion(p, n)
            .await
            .unwrap()
            .iter()
            .map(|h| h.0)
            .collect();
        assert!(rfc9162::verify_inclusion(
            p - 1,
            n,
            &all[p as usize - 1],
            &inclusion,
            &root
        ));
        let consistency: Vec<_> = log
            .prove_consistency(m, n)
            .await
            .unwrap()
            .iter()
            .map(|h| h.0)
            .collect();
        assert!(rfc9162::verify_consistency(m, n, &old, &root, &consistency));
    }
}

#[tokio::test]
async fn sizes_past_the_log_and_positions_outside_the_tree_are_refused_by_name() {
    let (_dir, log, _) = log_of(5).await;
    let past = log.tree_root(6).await.unwrap_err().to_string();
    assert!(past.contains("tree_size") && past.contains('5'), "{past}");
    let position = log.prove_inclusion(4, 3).await.unwrap_err().to_string();
    assert!(position.contains("position"), "{position}");
    let zero = log.prove_inclusion(0, 3).await.unwrap_err().to_string();
    assert!(zero.contains("position"), "{zero}");
    let old = log.prove_consistency(4, 3).await.unwrap_err().to_string();
    assert!(old.contains("old_size"), "{old}");
    assert_eq!(log.tree_root(0).await.unwrap(), tlog::root_of([]).0);
}

#[tokio::test]
async fn a_tree_that_covers_events_the_log_lost_is_reported_not_served() {
    let (dir, log, _) = log_of(10).await;
    log.tree_root(10).await.unwrap();
    log.close().await.unwrap();
    drop(log);
    // Remove the last three events from the global order, as a damaged
    // file recovered to an earlier state would.
    {
        let db = crate::tamper::open_raw(dir.path());
        let global = db.open_tree(baove_eventlog::layout::GLOBAL).unwrap();
        for p in 8..=10u64 {
            global.remove(p.to_be_bytes()).unwrap();
        }
        db.flush().unwrap();
    }
    let log = EventLog::open(dir.path()).await.unwrap();
    assert_eq!(log.last_position(), 7);
    let error = log.tree_root(7).await.unwrap_err().to_string();
    assert!(
        error.contains("covers 10 events but the log holds 7"),
        "{error}"
    );
}
