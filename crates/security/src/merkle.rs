//! A Merkle tree over stream heads, hashed as RFC 6962 (Certificate
//! Transparency) does: leaf `SHA-256(0x00 ‖ leaf)`, node
//! `SHA-256(0x01 ‖ left ‖ right)`, the left subtree holding the largest
//! power of two below the size. Inclusion proofs and their verification
//! follow RFC 9162 §2.1.3.

use sha2::{Digest, Sha256};

/// A 32-byte hash.
pub type Hash = [u8; 32];

/// The hash of a leaf.
#[must_use]
pub fn leaf_hash(leaf: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(leaf);
    h.finalize().into()
}

fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The largest power of two strictly below `n` (n ≥ 2).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// The root over leaf hashes (the hash of the empty string for none).
#[must_use]
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => Sha256::digest([]).into(),
        1 => leaves[0],
        n => {
            let k = split(n);
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// The inclusion proof (audit path) of leaf `index`, from the leaf up.
#[must_use]
pub fn inclusion_proof(leaves: &[Hash], index: usize) -> Vec<Hash> {
    let n = leaves.len();
    if n <= 1 || index >= n {
        return Vec::new();
    }
    let k = split(n);
    if index < k {
        let mut path = inclusion_proof(&leaves[..k], index);
        path.push(root(&leaves[k..]));
        path
    } else {
        let mut path = inclusion_proof(&leaves[k..], index - k);
        path.push(root(&leaves[..k]));
        path
    }
}

/// Whether `proof` shows `leaf` (a leaf hash) at `index` of a tree of
/// `size` leaves with `root` (RFC 9162 §2.1.3.2).
#[must_use]
pub fn verify_inclusion(leaf: &Hash, index: u64, size: u64, proof: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if snode == 0 {
            return false;
        }
        if fnode % 2 == 1 || fnode == snode {
            r = node_hash(p, &r);
            if fnode % 2 == 0 {
                while fnode % 2 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    snode == 0 && r == *root
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    #[test]
    fn every_leaf_of_every_size_proves_its_inclusion_and_nothing_else_does() {
        for n in 1..=40 {
            let l = leaves(n);
            let r = root(&l);
            for i in 0..n {
                let proof = inclusion_proof(&l, i);
                assert!(
                    verify_inclusion(&l[i], i as u64, n as u64, &proof, &r),
                    "n={n} i={i}"
                );
                // Another leaf, another index or a changed root fail.
                let other = leaf_hash(b"other");
                assert!(!verify_inclusion(&other, i as u64, n as u64, &proof, &r));
                if n > 1 {
                    let j = (i + 1) % n;
                    assert!(
                        !verify_inclusion(&l[i], j as u64, n as u64, &proof, &r),
                        "n={n} i={i}"
                    );
                }
                let mut bad = r;
                bad[0] ^= 1;
                assert!(!verify_inclusion(&l[i], i as u64, n as u64, &proof, &bad));
            }
        }
    }

    #[test]
    fn the_root_matches_rfc_6962_for_small_trees() {
        // Two leaves: node(leaf0, leaf1); three: node(node(l0,l1), l2).
        let l = leaves(3);
        assert_eq!(root(&l[..2]), node_hash(&l[0], &l[1]));
        assert_eq!(root(&l), node_hash(&node_hash(&l[0], &l[1]), &l[2]));
        assert_eq!(
            hex::encode(root(&[])),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
