//! A batch's hash tree, as Certificate Transparency defines it (RFC 6962
//! section 2.1, RFC 9162 section 2.1): a leaf's hash is SHA-256 of `0x00`
//! and the item, an inner node's SHA-256 of `0x01`, its left and its right
//! child; `n` items split at the largest power of two below `n`. A node
//! signs a batch's root once; each item keeps its index, the batch's size
//! and its path (the sibling hashes from the leaf up), so one item is proven
//! on its own.

use sha2::{Digest, Sha256};

pub type Hash = [u8; 32];

pub fn leaf_hash(item: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(item);
    h.finalize().into()
}

fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The largest power of two below `n` (n ≥ 2).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

/// The root over leaf hashes (the empty tree's root is SHA-256 of nothing).
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

/// The path of leaf `index`: sibling hashes from the leaf up to the root.
pub fn path(leaves: &[Hash], index: usize) -> Vec<Hash> {
    let n = leaves.len();
    if n <= 1 || index >= n {
        return Vec::new();
    }
    let k = split(n);
    if index < k {
        let mut p = path(&leaves[..k], index);
        p.push(root(&leaves[k..]));
        p
    } else {
        let mut p = path(&leaves[k..], index - k);
        p.push(root(&leaves[..k]));
        p
    }
}

/// The root and every leaf's path at once (what a signer needs), in
/// O(n log n) rather than a walk of the tree per leaf.
pub fn root_and_paths(leaves: &[Hash]) -> (Hash, Vec<Vec<Hash>>) {
    match leaves.len() {
        0 => (root(leaves), Vec::new()),
        1 => (leaves[0], vec![Vec::new()]),
        n => {
            let k = split(n);
            let (left, mut left_paths) = root_and_paths(&leaves[..k]);
            let (right, right_paths) = root_and_paths(&leaves[k..]);
            for p in &mut left_paths {
                p.push(right);
            }
            left_paths.extend(right_paths.into_iter().map(|mut p| {
                p.push(left);
                p
            }));
            (node_hash(&left, &right), left_paths)
        }
    }
}

/// The root a leaf and its path lead to (RFC 9162, 2.1.3.2); `None` when
/// the path cannot belong to a tree of `size` leaves.
pub fn root_from_path(leaf: &Hash, index: usize, size: usize, path: &[Hash]) -> Option<Hash> {
    if index >= size {
        return None;
    }
    let (mut f_n, mut s_n) = (index, size - 1);
    let mut r = *leaf;
    for p in path {
        if s_n == 0 {
            return None;
        }
        if f_n & 1 == 1 || f_n == s_n {
            r = node_hash(p, &r);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    (s_n == 0).then_some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_leaf_of_every_size_proves_against_its_root_and_no_other() {
        for n in 1..=33usize {
            let leaves: Vec<Hash> = (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect();
            let r = root(&leaves);
            let (also, paths) = root_and_paths(&leaves);
            assert_eq!(also, r);
            for i in 0..n {
                let p = path(&leaves, i);
                assert_eq!(paths[i], p, "{i} of {n}");
                assert_eq!(root_from_path(&leaves[i], i, n, &p), Some(r), "{i} of {n}");
                // Another index, another size or another leaf does not.
                if n > 1 {
                    assert_ne!(root_from_path(&leaves[i], (i + 1) % n, n, &p), Some(r));
                    assert_ne!(root_from_path(&leaves[(i + 1) % n], i, n, &p), Some(r));
                }
                // (A leaf on the left proves alike in a larger tree: the
                // size is bound by the signed statement, not by the path.)
            }
        }
    }

    #[test]
    fn known_roots() {
        // The empty tree, and a one-leaf tree over the empty item (RFC 6962
        // test data, as in Certificate Transparency's implementations).
        assert_eq!(
            hex::encode(root(&[])),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            hex::encode(root(&[leaf_hash(b"")])),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
        // The eight leaves of the RFC 6962 test vectors.
        let items: [&[u8]; 8] = [
            b"",
            &[0x00],
            &[0x10],
            &[0x20, 0x21],
            &[0x30, 0x31],
            &[0x40, 0x41, 0x42, 0x43],
            &[0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57],
            &[
                0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d,
                0x6e, 0x6f,
            ],
        ];
        let leaves: Vec<Hash> = items.iter().map(|i| leaf_hash(i)).collect();
        assert_eq!(
            hex::encode(root(&leaves)),
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
        );
        assert_eq!(
            hex::encode(root(&leaves[..3])),
            "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77"
        );
    }
}
