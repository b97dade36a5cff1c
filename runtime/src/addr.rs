//! Maps keyed by the addresses of `'static` items (a model's schema, an operation's name, a
//! dialect): the caches of statement texts and metric keys, looked up on every statement.
//!
//! Such a key is a few machine words, and the maps hold at most a few hundred entries, so
//! hashing each word with one multiply is enough; the standard SipHash cost more than the rest
//! of the lookup. Two addresses for one item (a constant promoted in two places) only make a
//! second entry with the same content.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A map keyed by addresses (see the module).
pub(crate) type AddrMap<K, V> = HashMap<K, V, BuildHasherDefault<AddrHasher>>;

/// The address of a `'static` item, as a map key.
pub(crate) fn of<T: ?Sized>(item: &'static T) -> usize {
    std::ptr::from_ref(item).cast::<()>() as usize
}

/// Hashes machine words with a rotate, an xor and a multiply each.
#[derive(Default)]
pub(crate) struct AddrHasher(u64);

impl Hasher for AddrHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x517c_c1b7_2722_0a95);
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }

    fn write_u8(&mut self, n: u8) {
        self.write_u64(u64::from(n));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_addresses_are_distinct_keys_and_equal_ones_meet() {
        static A: [u8; 4] = [1, 2, 3, 4];
        static B: [u8; 4] = [1, 2, 3, 4];
        let mut map: AddrMap<(usize, bool), &str> = AddrMap::default();
        map.insert((of(&A), false), "a");
        map.insert((of(&B), false), "b");
        map.insert((of(&A), true), "a, kept");
        assert_eq!(map.len(), 3);
        assert_eq!(map.get(&(of(&A), false)), Some(&"a"));
        assert_eq!(map.get(&(of(&B), false)), Some(&"b"));
        assert_eq!(map.get(&(of(&A), true)), Some(&"a, kept"));
        let mut h1 = AddrHasher::default();
        h1.write(b"0123456789");
        let mut h2 = AddrHasher::default();
        h2.write(b"0123456780");
        assert_ne!(h1.finish(), h2.finish(), "bytes past the first word count");
    }
}
