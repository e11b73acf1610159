//! Cheap hashing for the per-session caches (verdicts, result plans). Their
//! keys are checked for equality on every hit, so a collision costs one
//! extra evaluation, never a wrong answer; SipHash's resistance to chosen
//! collisions buys nothing there and costs on every statement.

use std::hash::{BuildHasherDefault, Hasher};

/// Multiplicative word hasher (the Fx scheme): a rotate, xor and multiply per 8 bytes.
#[derive(Debug, Default, Clone, Copy)]
pub struct FastHasher(u64);

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FastHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 56));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// For maps whose keys are already hashes: the key is its own hash.
#[derive(Debug, Default, Clone, Copy)]
pub struct PrehashedHasher(u64);

impl Hasher for PrehashedHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are expected; anything else still hashes, just slowly.
        let mut h = FastHasher(self.0);
        h.write(bytes);
        self.0 = h.finish();
    }

    fn write_u64(&mut self, i: u64) {
        self.0 = i;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A `HashMap` keyed by precomputed hashes.
pub type PrehashedMap<V> = std::collections::HashMap<u64, V, BuildHasherDefault<PrehashedHasher>>;

#[cfg(test)]
mod tests {
    use std::hash::Hash;

    use super::*;

    fn hash(value: impl Hash) -> u64 {
        let mut h = FastHasher::default();
        value.hash(&mut h);
        h.finish()
    }

    #[test]
    fn different_texts_and_lengths_hash_differently() {
        assert_ne!(hash("select"), hash("delete"));
        assert_ne!(hash(["ab", "c"]), hash(["a", "bc"]));
        assert_ne!(hash(&b"abcdefgh"[..]), hash(&b"abcdefgh\0"[..]));
        assert_eq!(hash("pgbench_accounts"), hash("pgbench_accounts"));
    }

    #[test]
    fn prehashed_keys_are_their_own_hash() {
        let mut map: PrehashedMap<&str> = PrehashedMap::default();
        map.insert(42, "a");
        map.insert(7, "b");
        assert_eq!(map.get(&42), Some(&"a"));
        assert_eq!(map.get(&7), Some(&"b"));
        assert_eq!(map.get(&8), None);
    }
}
