//! RFC 6962 / RFC 9162 Merkle hash tree over the ledger's entries: tree
//! heads (roots), inclusion proofs and consistency proofs, plus the
//! independent RFC 9162 verifiers for both kinds of proof.
//!
//! Invariants:
//! - Hashing is domain separated exactly as RFC 6962 §2.1 prescribes: a
//!   leaf is `SHA-256(0x00 || entry)`, an interior node is
//!   `SHA-256(0x01 || left || right)`, and the empty tree hashes to
//!   `SHA-256("")`. Roots and proofs are therefore interoperable with
//!   Certificate Transparency and C2SP tlog tooling.
//! - [`MerkleTree`] stores, for every level `k`, the hashes of all complete
//!   subtrees of `2^k` leaves aligned on a multiple of `2^k`, and nothing
//!   else: `levels[k].len() == size >> k` for every `k`, and there is no
//!   empty top level. Any subtree the RFC recursion asks for is a
//!   right-folded chain of at most 64 of those stored hashes, so a root or
//!   a proof costs O(log n) hashes per subtree instead of O(n).
//! - The verifiers never touch a `MerkleTree`; they are the iterative
//!   algorithms of RFC 9162 §2.1.3.2 and §2.1.4.2, so a bug in proof
//!   generation cannot be masked by the same bug in verification. They
//!   never panic, whatever the sizes, indices or proof contents.

use std::fmt;

use sha2::{Digest, Sha256};

/// A SHA-256 digest: a leaf hash, an interior node hash or a root.
pub type Hash = [u8; 32];

/// RFC 6962 §2.1: leaf hashes are prefixed with 0x00 and interior nodes
/// with 0x01 so that a leaf can never be passed off as an interior node
/// (second-preimage resistance across levels).
const LEAF_PREFIX: u8 = 0x00;
const NODE_PREFIX: u8 = 0x01;

/// `MTH({d(0)}) = SHA-256(0x00 || d(0))` (RFC 6962 §2.1).
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([LEAF_PREFIX]);
    h.update(entry);
    h.finalize().into()
}

/// `SHA-256(0x01 || left || right)` (RFC 6962 §2.1).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    #[cfg(test)]
    tests::count_node_hash();
    let mut h = Sha256::new();
    h.update([NODE_PREFIX]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// `MTH({}) = SHA-256()`, the hash of the empty string (RFC 6962 §2.1).
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// Why a proof could not be produced or did not verify.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProofError {
    /// The leaf index is not below the tree size it is claimed to be in.
    #[error("leaf index {index} is out of range for tree size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    /// A tree size larger than the number of leaves the tree holds.
    #[error("tree size {size} is larger than the {available} leaves held")]
    SizeOutOfRange { size: u64, available: u64 },
    /// A consistency proof was asked for (or offered) from a larger tree
    /// to a smaller one: logs only grow.
    #[error("old tree size {old_size} is larger than new tree size {new_size}")]
    OldSizeExceedsNew { old_size: u64, new_size: u64 },
    /// The proof does not have the number of hashes the sizes dictate.
    #[error("proof has {got} hashes but these sizes require {expected}")]
    WrongProofLength { expected: usize, got: usize },
    /// The root recomputed from the proof (or the given new root) differs
    /// from the root it must equal.
    #[error("recomputed root does not match the expected root")]
    RootMismatch,
    /// The old root recomputed from a consistency proof differs from the
    /// old root given.
    #[error("recomputed old root does not match the expected old root")]
    OldRootMismatch,
}

/// An append-only RFC 6962 Merkle tree over leaf hashes.
///
/// `levels[k][j]` is the hash of leaves `j * 2^k .. (j + 1) * 2^k`; only
/// complete subtrees are stored, so `levels[k].len() == size >> k`.
#[derive(Default, Clone)]
pub struct MerkleTree {
    levels: Vec<Vec<Hash>>,
}

impl fmt::Debug for MerkleTree {
    // A tree can hold millions of hashes; printing them all helps no one.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MerkleTree")
            .field("size", &self.size())
            .field("root", &hex::encode(self.root()))
            .finish()
    }
}

impl MerkleTree {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends one leaf hash (already `leaf_hash(entry)`), storing every
    /// complete subtree it closes. Amortised O(1) node hashes.
    pub fn push(&mut self, leaf: Hash) {
        let mut hash = leaf;
        let mut level = 0;
        loop {
            if self.levels.len() == level {
                self.levels.push(Vec::new());
            }
            let row = &mut self.levels[level];
            row.push(hash);
            let len = row.len();
            // An odd count means the newest subtree at this level has no
            // right sibling yet, so nothing above it is complete.
            if len % 2 == 1 {
                break;
            }
            hash = node_hash(&row[len - 2], &row[len - 1]);
            level += 1;
        }
    }

    /// The number of leaves.
    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |row| row.len() as u64)
    }

    /// The leaf hash at `index`, if there is one.
    pub fn leaf(&self, index: u64) -> Option<Hash> {
        self.complete(0, index)
    }

    /// The Merkle tree hash over all leaves (RFC 6962 §2.1).
    pub fn root(&self) -> Hash {
        // The whole tree is always decomposable into stored subtrees, so
        // the fallback is never taken; it only keeps this path panic-free.
        self.range_hash(0, self.size()).unwrap_or_else(empty_root)
    }

    /// The Merkle tree hash over the first `size` leaves; `size` 0 gives
    /// [`empty_root`].
    pub fn root_at(&self, size: u64) -> Result<Hash, ProofError> {
        self.check_size(size)?;
        self.subtree(0, size)
    }

    /// The audit path for leaf `index` in the tree of the first `size`
    /// leaves: RFC 6962 §2.1.1 `PATH(m, D[n])` (RFC 9162 §2.1.3.1), ordered
    /// from the leaf's sibling up to the child of the root.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, ProofError> {
        self.check_size(size)?;
        if index >= size {
            return Err(ProofError::IndexOutOfRange { index, size });
        }
        // Walk the recursion from the root down; each step contributes the
        // hash of the half that does not hold the leaf. The recursion
        // appends deeper hashes first, so the walk's order is reversed.
        let mut path = Vec::new();
        let (mut start, mut n, mut m) = (0u64, size, index);
        while n > 1 {
            let k = largest_power_of_two_below(n);
            if m < k {
                // PATH(m, D[n]) = PATH(m, D[0:k]) : MTH(D[k:n])
                path.push(self.subtree(start + k, n - k)?);
                n = k;
            } else {
                // PATH(m, D[n]) = PATH(m - k, D[k:n]) : MTH(D[0:k])
                path.push(self.subtree(start, k)?);
                start += k;
                m -= k;
                n -= k;
            }
        }
        path.reverse();
        Ok(path)
    }

    /// The consistency proof from the tree of the first `old_size` leaves
    /// to the tree of the first `new_size`: RFC 6962 §2.1.2
    /// `PROOF(m, D[n]) = SUBPROOF(m, D[n], true)` (RFC 9162 §2.1.4.1).
    ///
    /// Equal sizes and `old_size == 0` give the empty proof, as
    /// [`verify_consistency`] expects.
    pub fn consistency_proof(&self, old_size: u64, new_size: u64) -> Result<Vec<Hash>, ProofError> {
        self.check_size(new_size)?;
        if old_size > new_size {
            return Err(ProofError::OldSizeExceedsNew { old_size, new_size });
        }
        if old_size == 0 || old_size == new_size {
            return Ok(Vec::new());
        }
        let mut tail = Vec::new();
        let mut head = None;
        let (mut start, mut n, mut m, mut whole) = (0u64, new_size, old_size, true);
        loop {
            if m == n {
                // SUBPROOF(m, D[m], true) = {}: the verifier already holds
                // the old root. SUBPROOF(m, D[m], false) = {MTH(D[m])}.
                if !whole {
                    head = Some(self.subtree(start, n)?);
                }
                break;
            }
            let k = largest_power_of_two_below(n);
            if m <= k {
                // SUBPROOF(m, D[0:k], b) : MTH(D[k:n])
                tail.push(self.subtree(start + k, n - k)?);
                n = k;
            } else {
                // SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k])
                tail.push(self.subtree(start, k)?);
                start += k;
                m -= k;
                n -= k;
                whole = false;
            }
        }
        let mut proof = Vec::with_capacity(tail.len() + 1);
        proof.extend(head);
        proof.extend(tail.into_iter().rev());
        Ok(proof)
    }

    /// Drops every leaf at or past `size` (a torn tail being cut off) and
    /// every stored subtree that covered one. A `size` at or above the
    /// current size changes nothing.
    pub fn truncate(&mut self, size: u64) {
        if size >= self.size() {
            return;
        }
        // size < self.size() <= usize::MAX, so the conversion cannot fail.
        let size = usize::try_from(size).unwrap_or(usize::MAX);
        for (k, row) in self.levels.iter_mut().enumerate() {
            // Level k keeps exactly the complete subtrees within `size`.
            row.truncate(size.checked_shr(k as u32).unwrap_or(0));
        }
        while self.levels.last().is_some_and(Vec::is_empty) {
            self.levels.pop();
        }
    }

    fn check_size(&self, size: u64) -> Result<(), ProofError> {
        let available = self.size();
        if size > available {
            return Err(ProofError::SizeOutOfRange { size, available });
        }
        Ok(())
    }

    /// The stored hash of the complete subtree `index` at `level`.
    fn complete(&self, level: u32, index: u64) -> Option<Hash> {
        let row = self.levels.get(usize::try_from(level).ok()?)?;
        row.get(usize::try_from(index).ok()?).copied()
    }

    /// `MTH(D[start..start + len])` as a `Result`, for the proof builders.
    fn subtree(&self, start: u64, len: u64) -> Result<Hash, ProofError> {
        self.range_hash(start, len)
            .ok_or_else(|| ProofError::SizeOutOfRange {
                size: start.saturating_add(len),
                available: self.size(),
            })
    }

    /// `MTH(D[start..start + len])` for the ranges the RFC 6962 recursion
    /// produces, whose `start` is a multiple of the largest power of two
    /// not above `len`. Such a range splits into complete aligned subtrees
    /// of strictly decreasing size (the set bits of `len`), and its MTH is
    /// their right fold: `MTH = H(c0, H(c1, ... H(c_{j-1}, c_j)))`, because
    /// each recursion step splits off the largest power of two below the
    /// remaining length (RFC 6962 §2.1). Returns `None` for a range that
    /// is misaligned or not fully stored, rather than a wrong hash.
    fn range_hash(&self, start: u64, len: u64) -> Option<Hash> {
        if len == 0 {
            return Some(empty_root());
        }
        let mut end = start.checked_add(len)?;
        let mut remaining = len;
        let mut acc: Option<Hash> = None;
        // Smallest (right-most) chunk first, folding leftwards.
        while remaining != 0 {
            let k = remaining.trailing_zeros();
            let chunk = 1u64 << k;
            end -= chunk;
            if end % chunk != 0 {
                return None;
            }
            let hash = self.complete(k, end >> k)?;
            acc = Some(match acc {
                None => hash,
                Some(right) => node_hash(&hash, &right),
            });
            remaining -= chunk;
        }
        acc
    }
}

/// The `k` of RFC 6962 §2.1: the largest power of two smaller than `n`.
/// Only called with `n >= 2`.
fn largest_power_of_two_below(n: u64) -> u64 {
    1u64 << (63 - (n - 1).leading_zeros())
}

/// How many hashes the RFC 9162 §2.1.3.2 loop consumes when started at
/// `fn = index`, `sn = last` (with `index <= last`) before `sn` reaches 0.
/// While `fn != sn` each step shifts off one bit, and the two first agree
/// after `bit_length(index ^ last)` steps; from then on `fn == sn` and each
/// step clears exactly one set bit of `fn`.
fn path_length(index: u64, last: u64) -> usize {
    let inner = u64::BITS - (index ^ last).leading_zeros();
    let border = index.checked_shr(inner).unwrap_or(0).count_ones();
    (inner + border) as usize
}

/// Verifies that `leaf` is the leaf hash at `index` in the tree of `size`
/// leaves whose root is `root`, using the iterative algorithm of
/// RFC 9162 §2.1.3.2.
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    // Step 1: the index must be inside the tree.
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    // Not an RFC step, but it names the failure better than steps 4a/5
    // would; those checks are still made below.
    let expected = path_length(index, size - 1);
    if proof.len() != expected {
        return Err(ProofError::WrongProofLength {
            expected,
            got: proof.len(),
        });
    }
    // Steps 2 and 3.
    let mut fnode = index;
    let mut snode = size - 1;
    let mut r = *leaf;
    // Step 4.
    for p in proof {
        // 4a: a hash left over once sn is 0 means the proof is too long.
        if snode == 0 {
            return Err(ProofError::WrongProofLength {
                expected,
                got: proof.len(),
            });
        }
        // 4b
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        // 4c
        fnode >>= 1;
        snode >>= 1;
    }
    // Step 5.
    if snode != 0 {
        return Err(ProofError::WrongProofLength {
            expected,
            got: proof.len(),
        });
    }
    if r != *root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// Verifies that the tree of `new_size` leaves with root `new_root`
/// extends the tree of `old_size` leaves with root `old_root`, using the
/// iterative algorithm of RFC 9162 §2.1.4.2.
///
/// Edge cases, which the RFC algorithm (defined for `0 < old < new`) does
/// not cover:
/// - `old_size == new_size`: valid only with an empty proof and equal roots.
/// - `old_size == 0`: every tree extends the empty one, so this is valid
///   only with an empty proof, and only if `old_root` is [`empty_root`]
///   (a size-0 tree head with another root is not a real tree head).
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if old_size > new_size {
        return Err(ProofError::OldSizeExceedsNew { old_size, new_size });
    }
    if old_size == 0 || old_size == new_size {
        if !proof.is_empty() {
            return Err(ProofError::WrongProofLength {
                expected: 0,
                got: proof.len(),
            });
        }
        if old_size == 0 && *old_root != empty_root() {
            return Err(ProofError::OldRootMismatch);
        }
        if old_size == new_size && old_root != new_root {
            return Err(ProofError::RootMismatch);
        }
        return Ok(());
    }

    // 0 < old_size < new_size from here on.
    let old_is_power_of_two = old_size.is_power_of_two();
    // Step 3, then step 4 (shift off the trailing set bits of fn).
    let mut fnode = old_size - 1;
    let mut snode = new_size - 1;
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    // The loop below consumes path_length(fn, sn) hashes; the proof also
    // carries the seed unless the old root is itself the seed (step 2).
    let expected = path_length(fnode, snode) + usize::from(!old_is_power_of_two);
    // Step 1 (an empty proof fails) is covered here: expected >= 1 when
    // old_size < new_size.
    if proof.len() != expected {
        return Err(ProofError::WrongProofLength {
            expected,
            got: proof.len(),
        });
    }
    // Steps 2 and 5: the seed is the old root when old_size is a power of
    // two (it is then a complete subtree of the new tree), else proof[0].
    let (seed, rest) = if old_is_power_of_two {
        (*old_root, proof)
    } else {
        match proof.split_first() {
            Some((first, rest)) => (*first, rest),
            None => {
                return Err(ProofError::WrongProofLength {
                    expected,
                    got: proof.len(),
                });
            }
        }
    };
    let mut fr = seed;
    let mut sr = seed;
    // Step 6.
    for c in rest {
        // 6a
        if snode == 0 {
            return Err(ProofError::WrongProofLength {
                expected,
                got: proof.len(),
            });
        }
        // 6b
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        // 6c
        fnode >>= 1;
        snode >>= 1;
    }
    // Step 7.
    if snode != 0 {
        return Err(ProofError::WrongProofLength {
            expected,
            got: proof.len(),
        });
    }
    if fr != *old_root {
        return Err(ProofError::OldRootMismatch);
    }
    if sr != *new_root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::cell::Cell;

    thread_local! {
        static NODE_HASHES: Cell<u64> = const { Cell::new(0) };
    }

    /// Called by `node_hash` in test builds so tests can count hash work.
    pub(super) fn count_node_hash() {
        NODE_HASHES.with(|c| c.set(c.get() + 1));
    }

    fn node_hashes_so_far() -> u64 {
        NODE_HASHES.with(Cell::get)
    }

    fn h(hex_str: &str) -> Hash {
        let bytes = hex::decode(hex_str).unwrap();
        bytes.try_into().unwrap()
    }

    // Reference data: the RFC 6962 test vectors published by
    // transparency-dev/merkle (testonly/constants.go, proof/verify_test.go),
    // which are the same as Certificate Transparency's and Trillian's.
    const LEAF_INPUTS: [&str; 8] = [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ];

    /// Roots for tree sizes 0..=8.
    const ROOTS: [&str; 9] = [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    /// Hashes of every complete subtree of the 8-leaf tree, by level.
    const NODE_HASHES_BY_LEVEL: [&[&str]; 4] = [
        &[
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
            "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
        ],
        &[
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        ],
        &[
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
        &["5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"],
    ];

    /// (leaf index, tree size, audit path). The published table counts
    /// leaves from 1; the indices here are 0-based.
    const INCLUSION_PROOFS: [(u64, u64, &[&str]); 5] = [
        (0, 1, &[]),
        (
            0,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            5,
            8,
            &[
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            2,
            3,
            &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
        ),
        (
            1,
            5,
            &[
                "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
    ];

    /// (old size, new size, consistency proof).
    const CONSISTENCY_PROOFS: [(u64, u64, &[&str]); 5] = [
        (1, 1, &[]),
        (
            1,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            6,
            8,
            &[
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            2,
            5,
            &[
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
        (
            6,
            7,
            &[
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
    ];

    fn reference_tree() -> MerkleTree {
        let mut tree = MerkleTree::new();
        for input in LEAF_INPUTS {
            tree.push(leaf_hash(&hex::decode(input).unwrap()));
        }
        tree
    }

    fn hashes(list: &[&str]) -> Vec<Hash> {
        list.iter().map(|s| h(s)).collect()
    }

    /// A tree of `n` distinct leaves, with the leaf hashes.
    fn numbered_tree(n: u64) -> (MerkleTree, Vec<Hash>) {
        let mut tree = MerkleTree::new();
        let mut leaves = Vec::new();
        for i in 0..n {
            let leaf = leaf_hash(format!("entry {i}").as_bytes());
            tree.push(leaf);
            leaves.push(leaf);
        }
        (tree, leaves)
    }

    /// RFC 6962 §2.1 MTH, written as the plain recursion, as an oracle.
    fn naive_mth(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => empty_root(),
            1 => leaves[0],
            n => {
                let k = 1usize << (usize::BITS - 1 - (n - 1).leading_zeros());
                node_hash(&naive_mth(&leaves[..k]), &naive_mth(&leaves[k..]))
            }
        }
    }

    /// Tiny deterministic generator so the random-pair tests repeat.
    struct XorShift(u64);
    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    fn flip(hash: &Hash) -> Hash {
        let mut out = *hash;
        out[0] ^= 0x10;
        out
    }

    #[test]
    fn hash_primitives_match_rfc6962() {
        assert_eq!(empty_root(), h(ROOTS[0]));
        assert_eq!(leaf_hash(&[]), h(NODE_HASHES_BY_LEVEL[0][0]));
        let l0 = h(NODE_HASHES_BY_LEVEL[0][0]);
        let l1 = h(NODE_HASHES_BY_LEVEL[0][1]);
        assert_eq!(node_hash(&l0, &l1), h(NODE_HASHES_BY_LEVEL[1][0]));
        // Domain separation: a node is not the leaf hash of its children.
        let mut concat = l0.to_vec();
        concat.extend_from_slice(&l1);
        assert_ne!(leaf_hash(&concat), node_hash(&l0, &l1));
    }

    #[test]
    fn known_roots_for_every_size() {
        let tree = reference_tree();
        assert_eq!(tree.size(), 8);
        for (size, want) in ROOTS.iter().enumerate() {
            assert_eq!(tree.root_at(size as u64), Ok(h(want)), "size {size}");
        }
        assert_eq!(tree.root(), h(ROOTS[8]));

        // The same roots while the tree grows one leaf at a time.
        let mut growing = MerkleTree::new();
        assert_eq!(growing.root(), h(ROOTS[0]));
        for (i, input) in LEAF_INPUTS.iter().enumerate() {
            growing.push(leaf_hash(&hex::decode(input).unwrap()));
            assert_eq!(growing.root(), h(ROOTS[i + 1]), "size {}", i + 1);
        }
    }

    #[test]
    fn known_complete_subtree_hashes() {
        let tree = reference_tree();
        for (level, row) in NODE_HASHES_BY_LEVEL.iter().enumerate() {
            for (j, want) in row.iter().enumerate() {
                let width = 1u64 << level;
                assert_eq!(
                    tree.range_hash(j as u64 * width, width),
                    Some(h(want)),
                    "level {level} node {j}"
                );
            }
        }
        for (i, input) in LEAF_INPUTS.iter().enumerate() {
            let want = leaf_hash(&hex::decode(input).unwrap());
            assert_eq!(tree.leaf(i as u64), Some(want));
        }
        assert_eq!(tree.leaf(8), None);
    }

    #[test]
    fn known_inclusion_proofs() {
        let tree = reference_tree();
        for (index, size, want) in INCLUSION_PROOFS {
            let want = hashes(want);
            let proof = tree.inclusion_proof(index, size).unwrap();
            assert_eq!(proof, want, "index {index} size {size}");
            let leaf = tree.leaf(index).unwrap();
            let root = h(ROOTS[size as usize]);
            assert_eq!(verify_inclusion(index, size, &leaf, &want, &root), Ok(()));

            // Corruptions in the style of the reference suite.
            let bad = |i: u64, s: u64, l: &Hash, p: &[Hash], r: &Hash| {
                assert!(
                    verify_inclusion(i, s, l, p, r).is_err(),
                    "accepted index {i} size {s} proof len {}",
                    p.len()
                );
            };
            if index > 0 {
                bad(index - 1, size, &leaf, &want, &root);
            }
            bad(index + 1, size, &leaf, &want, &root);
            bad(index ^ 2, size, &leaf, &want, &root);
            bad(index, size * 2, &leaf, &want, &root);
            bad(index, size / 2, &leaf, &want, &root);
            bad(index, size, &flip(&leaf), &want, &root);
            bad(index, size, &leaf, &want, &empty_root());
            bad(index, size, &leaf, &want, &flip(&root));
            let mut longer = want.clone();
            longer.push(root);
            bad(index, size, &leaf, &longer, &root);
            let mut longer = vec![[0u8; 32]];
            longer.extend_from_slice(&want);
            bad(index, size, &leaf, &longer, &root);
            for i in 0..want.len() {
                let mut wrong = want.clone();
                wrong[i] = flip(&wrong[i]);
                bad(index, size, &leaf, &wrong, &root);
            }
            if !want.is_empty() {
                bad(index, size, &leaf, &want[..want.len() - 1], &root);
            }
        }
    }

    #[test]
    fn known_consistency_proofs() {
        let tree = reference_tree();
        for (old, new, want) in CONSISTENCY_PROOFS {
            let want = hashes(want);
            assert_eq!(
                tree.consistency_proof(old, new).unwrap(),
                want,
                "{old} -> {new}"
            );
            let old_root = h(ROOTS[old as usize]);
            let new_root = h(ROOTS[new as usize]);
            assert_eq!(
                verify_consistency(old, new, &old_root, &new_root, &want),
                Ok(())
            );
            if want.is_empty() {
                continue;
            }
            let bad = |o: u64, n: u64, or: &Hash, nr: &Hash, p: &[Hash]| {
                assert!(
                    verify_consistency(o, n, or, nr, p).is_err(),
                    "accepted {o} -> {n} proof len {}",
                    p.len()
                );
            };
            bad(old - 1, new, &old_root, &new_root, &want);
            bad(old + 1, new, &old_root, &new_root, &want);
            bad(old ^ 2, new, &old_root, &new_root, &want);
            bad(old, new * 2, &old_root, &new_root, &want);
            bad(old, new / 2, &old_root, &new_root, &want);
            bad(old, new, &flip(&old_root), &new_root, &want);
            bad(old, new, &old_root, &flip(&new_root), &want);
            bad(old, new, &new_root, &old_root, &want);
            bad(old, new, &old_root, &new_root, &[]);
            for extra in [[0u8; 32], old_root, new_root, want[0]] {
                let mut longer = want.clone();
                longer.push(extra);
                bad(old, new, &old_root, &new_root, &longer);
                let mut longer = vec![extra];
                longer.extend_from_slice(&want);
                bad(old, new, &old_root, &new_root, &longer);
            }
            bad(old, new, &old_root, &new_root, &want[..want.len() - 1]);
            for i in 0..want.len() {
                let mut wrong = want.clone();
                wrong[i] = flip(&wrong[i]);
                bad(old, new, &old_root, &new_root, &wrong);
            }
        }
    }

    #[test]
    fn every_size_up_to_300_matches_the_naive_recursion_and_verifies() {
        let (tree, leaves) = numbered_tree(300);
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        for size in 1..=300u64 {
            let prefix = &leaves[..size as usize];
            let root = naive_mth(prefix);
            assert_eq!(tree.root_at(size), Ok(root), "size {size}");

            let indices: Vec<u64> = if size <= 64 {
                (0..size).collect()
            } else {
                let mut v = vec![0, 1, size / 2, size - 2, size - 1];
                v.extend((0..8).map(|_| rng.below(size)));
                v
            };
            for index in indices {
                let leaf = leaves[index as usize];
                let proof = tree.inclusion_proof(index, size).unwrap();
                assert_eq!(proof.len(), path_length(index, size - 1));
                assert_eq!(verify_inclusion(index, size, &leaf, &proof, &root), Ok(()));

                for i in 0..proof.len() {
                    let mut wrong = proof.clone();
                    wrong[i][31] ^= 0x01;
                    assert!(verify_inclusion(index, size, &leaf, &wrong, &root).is_err());
                }
                if !proof.is_empty() {
                    let dropped = &proof[..proof.len() - 1];
                    assert!(verify_inclusion(index, size, &leaf, dropped, &root).is_err());
                    let dropped_first = &proof[1..];
                    assert!(verify_inclusion(index, size, &leaf, dropped_first, &root).is_err());
                }
                let mut longer = proof.clone();
                longer.push(root);
                assert!(verify_inclusion(index, size, &leaf, &longer, &root).is_err());
                for wrong_index in [index + 1, index.wrapping_sub(1), index ^ 1] {
                    if wrong_index != index {
                        assert!(
                            verify_inclusion(wrong_index, size, &leaf, &proof, &root).is_err(),
                            "index {index} accepted as {wrong_index} in size {size}"
                        );
                    }
                }
                // The size is bound only through the root (RFC 6962 proofs
                // do not commit to it): index 0 of 3 leaves has the same
                // path shape as index 0 of 4, and the size-3 root is then a
                // "valid" size-4 root whose right child is a leaf. So a
                // wrong size is guaranteed to fail when it changes the path
                // length; callers take size and root from one checkpoint.
                for wrong_size in [size + 1, size - 1, size * 2] {
                    if wrong_size <= index || path_length(index, wrong_size - 1) != proof.len() {
                        assert!(
                            verify_inclusion(index, wrong_size, &leaf, &proof, &root).is_err(),
                            "size {size} accepted as {wrong_size} for index {index}"
                        );
                    }
                }
                let other = leaf_hash(b"not in the tree");
                assert_eq!(
                    verify_inclusion(index, size, &other, &proof, &root),
                    Err(ProofError::RootMismatch)
                );
            }
        }
    }

    #[test]
    fn random_consistency_pairs_up_to_300_verify_and_resist_tampering() {
        let (tree, leaves) = numbered_tree(301);
        let mut rng = XorShift(0x0123_4567_89ab_cdef);
        for new in 1..=300u64 {
            let new_root = naive_mth(&leaves[..new as usize]);
            let mut olds = vec![0, 1, new - 1, new, new / 2];
            olds.extend((0..6).map(|_| rng.below(new) + 1));
            let mut p = 1;
            while p <= new {
                olds.push(p);
                p <<= 1;
            }
            for old in olds {
                let old_root = naive_mth(&leaves[..old as usize]);
                let proof = tree.consistency_proof(old, new).unwrap();
                assert_eq!(
                    verify_consistency(old, new, &old_root, &new_root, &proof),
                    Ok(()),
                    "{old} -> {new}"
                );
                if old == 0 || old == new {
                    assert!(proof.is_empty());
                    continue;
                }
                for i in 0..proof.len() {
                    let mut wrong = proof.clone();
                    wrong[i][7] ^= 0x80;
                    assert!(verify_consistency(old, new, &old_root, &new_root, &wrong).is_err());
                }
                let dropped = &proof[..proof.len() - 1];
                assert!(verify_consistency(old, new, &old_root, &new_root, dropped).is_err());
                assert!(verify_consistency(old, new, &old_root, &new_root, &proof[1..]).is_err());
                let mut longer = proof.clone();
                longer.push(new_root);
                assert!(verify_consistency(old, new, &old_root, &new_root, &longer).is_err());
                // As for inclusion, sizes are bound only through the roots:
                // 1 -> 3 and 1 -> 4 have the same proof shape, and the
                // size-3 root passes as a size-4 root whose last subtree is
                // a leaf. A wrong size must fail whenever it changes the
                // proof's shape (its length, or the trivial cases).
                for (o, n) in [
                    (old + 1, new),
                    (old - 1, new),
                    (old, new + 1),
                    (old, new - 1),
                ] {
                    let same_shape = o > 0
                        && o < n
                        && n <= tree.size()
                        && tree.consistency_proof(o, n).map(|p| p.len()) == Ok(proof.len());
                    if !same_shape {
                        assert!(
                            verify_consistency(o, n, &old_root, &new_root, &proof).is_err(),
                            "{old} -> {new} accepted as {o} -> {n}"
                        );
                    }
                }
                assert!(verify_consistency(old, new, &new_root, &old_root, &proof).is_err());
                // With a power-of-two old size the old root is the seed of
                // both computations, so a wrong one shows as a new-root
                // mismatch (RFC 9162 §2.1.4.2 step 2); otherwise as an
                // old-root mismatch.
                let want = if old.is_power_of_two() {
                    ProofError::RootMismatch
                } else {
                    ProofError::OldRootMismatch
                };
                assert_eq!(
                    verify_consistency(old, new, &flip(&old_root), &new_root, &proof),
                    Err(want)
                );
                assert_eq!(
                    verify_consistency(old, new, &old_root, &flip(&new_root), &proof),
                    Err(ProofError::RootMismatch)
                );
            }
        }
    }

    #[test]
    fn consistency_edge_cases() {
        let (tree, _) = numbered_tree(5);
        let r3 = tree.root_at(3).unwrap();
        let r5 = tree.root();
        let empty = empty_root();

        // Equal sizes: empty proof, equal roots.
        assert_eq!(tree.consistency_proof(3, 3), Ok(vec![]));
        assert_eq!(verify_consistency(3, 3, &r3, &r3, &[]), Ok(()));
        assert_eq!(
            verify_consistency(3, 3, &r3, &r5, &[]),
            Err(ProofError::RootMismatch)
        );
        assert_eq!(
            verify_consistency(3, 3, &r3, &r3, &[r3]),
            Err(ProofError::WrongProofLength {
                expected: 0,
                got: 1
            })
        );

        // From the empty tree: empty proof, and the old root must be MTH({}).
        assert_eq!(tree.consistency_proof(0, 5), Ok(vec![]));
        assert_eq!(verify_consistency(0, 5, &empty, &r5, &[]), Ok(()));
        assert_eq!(verify_consistency(0, 0, &empty, &empty, &[]), Ok(()));
        assert_eq!(
            verify_consistency(0, 5, &empty, &r5, &[r5]),
            Err(ProofError::WrongProofLength {
                expected: 0,
                got: 1
            })
        );
        assert_eq!(
            verify_consistency(0, 5, &r3, &r5, &[]),
            Err(ProofError::OldRootMismatch)
        );
        assert_eq!(
            verify_consistency(0, 0, &empty, &r5, &[]),
            Err(ProofError::RootMismatch)
        );

        // Shrinking is never consistent.
        assert_eq!(
            tree.consistency_proof(5, 3),
            Err(ProofError::OldSizeExceedsNew {
                old_size: 5,
                new_size: 3
            })
        );
        assert_eq!(
            verify_consistency(5, 3, &r5, &r3, &[]),
            Err(ProofError::OldSizeExceedsNew {
                old_size: 5,
                new_size: 3
            })
        );
        // A growing tree with an empty proof is not consistent (RFC 9162
        // §2.1.4.2 step 1).
        assert!(matches!(
            verify_consistency(3, 5, &r3, &r5, &[]),
            Err(ProofError::WrongProofLength { got: 0, .. })
        ));

        // Sizes beyond the tree.
        assert_eq!(
            tree.consistency_proof(3, 6),
            Err(ProofError::SizeOutOfRange {
                size: 6,
                available: 5
            })
        );
    }

    #[test]
    fn inclusion_edge_cases() {
        let (tree, leaves) = numbered_tree(5);
        let root = tree.root();
        assert_eq!(
            tree.inclusion_proof(5, 5),
            Err(ProofError::IndexOutOfRange { index: 5, size: 5 })
        );
        assert_eq!(
            tree.inclusion_proof(0, 0),
            Err(ProofError::IndexOutOfRange { index: 0, size: 0 })
        );
        assert_eq!(
            tree.inclusion_proof(0, 6),
            Err(ProofError::SizeOutOfRange {
                size: 6,
                available: 5
            })
        );
        assert_eq!(
            tree.root_at(6),
            Err(ProofError::SizeOutOfRange {
                size: 6,
                available: 5
            })
        );
        assert_eq!(
            verify_inclusion(5, 5, &leaves[0], &[], &root),
            Err(ProofError::IndexOutOfRange { index: 5, size: 5 })
        );
        assert_eq!(
            verify_inclusion(0, 0, &leaves[0], &[], &empty_root()),
            Err(ProofError::IndexOutOfRange { index: 0, size: 0 })
        );
        // A one-leaf tree: the root is the leaf hash and the path is empty.
        assert_eq!(verify_inclusion(0, 1, &leaves[0], &[], &leaves[0]), Ok(()));
        assert_eq!(
            verify_inclusion(0, 1, &leaves[0], &[leaves[1]], &leaves[0]),
            Err(ProofError::WrongProofLength {
                expected: 0,
                got: 1
            })
        );
        let empty = MerkleTree::new();
        assert_eq!(empty.size(), 0);
        assert_eq!(empty.root(), empty_root());
        assert_eq!(empty.root_at(0), Ok(empty_root()));
        assert_eq!(empty.leaf(0), None);
    }

    #[test]
    fn truncate_matches_a_tree_built_to_that_size() {
        let (full, leaves) = numbered_tree(300);
        for cut in [
            0u64, 1, 2, 3, 7, 8, 9, 64, 127, 128, 129, 200, 255, 256, 299, 300, 400,
        ] {
            let mut tree = full.clone();
            tree.truncate(cut);
            let kept = cut.min(300);
            let (fresh, _) = numbered_tree(kept);
            assert_eq!(tree.size(), kept);
            assert_eq!(tree.levels, fresh.levels, "cut {cut}");
            assert_eq!(tree.root(), naive_mth(&leaves[..kept as usize]));
            // Growing again after the cut gives the same tree as never
            // having had the torn tail.
            for leaf in &leaves[kept as usize..] {
                tree.push(*leaf);
            }
            assert_eq!(tree.levels, full.levels, "regrown after cut {cut}");
        }
    }

    #[test]
    fn proof_length_formula_matches_generated_proofs() {
        // path_length is what the verifiers demand, so it must agree with
        // what the generator emits for every shape of tree.
        let (tree, _) = numbered_tree(130);
        for size in 1..=130u64 {
            for index in 0..size {
                let proof = tree.inclusion_proof(index, size).unwrap();
                assert_eq!(proof.len(), path_length(index, size - 1));
            }
            for old in 1..size {
                let proof = tree.consistency_proof(old, size).unwrap();
                let root_old = tree.root_at(old).unwrap();
                let root_new = tree.root_at(size).unwrap();
                assert_eq!(
                    verify_consistency(old, size, &root_old, &root_new, &proof),
                    Ok(()),
                    "{old} -> {size}"
                );
            }
        }
    }

    #[test]
    fn proofs_cost_logarithmic_hashing() {
        // 2^17 - 1 + 4 leaves: every level is partly filled, the worst
        // shape for right-edge subtrees.
        let n = (1u64 << 17) + 3;
        let (tree, _) = numbered_tree(n);
        let log = 64 - u64::from(n.leading_zeros());
        let budget = log * log;

        let before = node_hashes_so_far();
        let _ = tree.root();
        assert!(node_hashes_so_far() - before <= log);

        for index in [0, 1, n / 3, n / 2, n - 2, n - 1] {
            let before = node_hashes_so_far();
            let proof = tree.inclusion_proof(index, n).unwrap();
            let spent = node_hashes_so_far() - before;
            assert!(spent <= budget, "inclusion of {index} cost {spent} hashes");
            assert!(proof.len() as u64 <= log + 1);
        }
        for old in [1, 2, 3, n / 2, n - 1, (1 << 17) - 1] {
            let before = node_hashes_so_far();
            tree.consistency_proof(old, n).unwrap();
            let spent = node_hashes_so_far() - before;
            assert!(
                spent <= budget,
                "consistency from {old} cost {spent} hashes"
            );
        }
        for size in [n / 2, n - 7, 99_999] {
            let before = node_hashes_so_far();
            tree.root_at(size).unwrap();
            assert!(node_hashes_so_far() - before <= log);
        }
    }

    /// Timing check for the brief's "proofs for 1M leaves should cost
    /// microseconds". Run with `cargo test --release -- --ignored`.
    #[test]
    #[ignore]
    fn million_leaf_proofs_are_fast() {
        let n = 1u64 << 20;
        let (tree, leaves) = numbered_tree(n);
        let start = std::time::Instant::now();
        let rounds = 1000u64;
        for i in 0..rounds {
            let index = (i * 7919) % (n - rounds);
            let proof = tree.inclusion_proof(index, n - i).unwrap();
            std::hint::black_box(&proof);
        }
        let per_proof = start.elapsed() / rounds as u32;
        let proof = tree.inclusion_proof(12345, n).unwrap();
        assert_eq!(
            verify_inclusion(12345, n, &leaves[12345], &proof, &tree.root()),
            Ok(())
        );
        eprintln!("inclusion proof over ~1M leaves: {per_proof:?}");
        assert!(per_proof < std::time::Duration::from_millis(1));
    }

    fn arb_hash() -> impl Strategy<Value = Hash> {
        prop::array::uniform32(any::<u8>())
    }

    fn arb_size() -> impl Strategy<Value = u64> {
        prop_oneof![
            0u64..300,
            any::<u64>(),
            Just(u64::MAX),
            Just(u64::MAX - 1),
            Just(1u64 << 63),
        ]
    }

    proptest! {
        #[test]
        fn verify_inclusion_never_panics(
            index in arb_size(),
            size in arb_size(),
            leaf in arb_hash(),
            proof in prop::collection::vec(arb_hash(), 0..70),
            root in arb_hash(),
        ) {
            let _ = verify_inclusion(index, size, &leaf, &proof, &root);
        }

        #[test]
        fn verify_consistency_never_panics(
            old in arb_size(),
            new in arb_size(),
            old_root in arb_hash(),
            new_root in arb_hash(),
            proof in prop::collection::vec(arb_hash(), 0..70),
        ) {
            let _ = verify_consistency(old, new, &old_root, &new_root, &proof);
        }

        #[test]
        fn proofs_from_random_trees_verify(
            size in 1u64..200,
            a in any::<u64>(),
            b in any::<u64>(),
        ) {
            let (tree, leaves) = numbered_tree(size);
            let index = a % size;
            let root = tree.root();
            let proof = tree.inclusion_proof(index, size).unwrap();
            prop_assert_eq!(
                verify_inclusion(index, size, &leaves[index as usize], &proof, &root),
                Ok(())
            );
            let old = b % (size + 1);
            let old_root = tree.root_at(old).unwrap();
            let proof = tree.consistency_proof(old, size).unwrap();
            prop_assert_eq!(verify_consistency(old, size, &old_root, &root, &proof), Ok(()));
        }
    }
}
