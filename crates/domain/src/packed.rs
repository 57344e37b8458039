//! A sorted map for the read models that keep an entry for every case,
//! repacked as it grows so that it does not hold nearly twice the memory
//! its entries need.
//!
//! Keys inserted in ascending order (a case id is a UUIDv7, a list key
//! starts with the opening time) fill a `BTreeMap` badly: each full node is
//! split at its middle and the left half is never filled again, so its
//! nodes stay a little over half full. A map built in one go from sorted
//! entries (`collect`, `append`) has full nodes. [`PackedMap`] rebuilds
//! itself that way once the keys it gained since its last rebuild reach a
//! quarter of its length (at least [`PACK_AFTER`]), so the rebuilds cost a
//! few moves per insert and at most that quarter is loosely packed. A key
//! removed and inserted again counts as gained (the case list takes a
//! case's row out and puts it back at each of its events): with many
//! events per new case the rebuilds come sooner, still a few moves per
//! insert. Measured on casework restarted on 100,000 cases (issue #15):
//! before, the case list's rows took 31.6 MiB of heap in a `BTreeMap`, the
//! statistics' records 40.5 MiB.

use std::collections::BTreeMap;
use std::ops::Deref;

/// The fewest keys added before a rebuild.
pub const PACK_AFTER: usize = 1024;

/// A `BTreeMap` that repacks itself as it grows; it reads as the map
/// (`Deref`) and changes through its own methods, which count the keys it
/// gains. Two are equal when their entries are.
#[derive(Clone, Debug)]
pub struct PackedMap<K, V> {
    map: BTreeMap<K, V>,
    /// Keys gained since the last rebuild (inserts of a key not present).
    loose: usize,
}

impl<K, V> Default for PackedMap<K, V> {
    fn default() -> Self {
        Self {
            map: BTreeMap::new(),
            loose: 0,
        }
    }
}

impl<K: PartialEq, V: PartialEq> PartialEq for PackedMap<K, V> {
    fn eq(&self, other: &Self) -> bool {
        self.map == other.map
    }
}

impl<K: Eq, V: Eq> Eq for PackedMap<K, V> {}

impl<K, V> Deref for PackedMap<K, V> {
    type Target = BTreeMap<K, V>;
    fn deref(&self) -> &BTreeMap<K, V> {
        &self.map
    }
}

impl<K: Ord + Clone, V> PackedMap<K, V> {
    /// Inserts, as [`BTreeMap::insert`].
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        let old = self.map.insert(key, value);
        if old.is_none() {
            self.gained();
        }
        old
    }

    /// Removes, as [`BTreeMap::remove`].
    pub fn remove(&mut self, key: &K) -> Option<V> {
        self.map.remove(key)
    }

    /// The value of `key`, to change, as [`BTreeMap::get_mut`].
    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        self.map.get_mut(key)
    }

    /// The value of `key`, inserted as `V::default()` when absent.
    pub fn get_or_default(&mut self, key: K) -> &mut V
    where
        V: Default,
    {
        if !self.map.contains_key(&key) {
            self.map.insert(key.clone(), V::default());
            self.gained();
        }
        self.map.entry(key).or_default()
    }

    fn gained(&mut self) {
        self.loose += 1;
        if self.loose >= (self.map.len() / 4).max(PACK_AFTER) {
            self.repack();
            self.loose = 0;
        }
    }

    /// Rebuilds the map with full nodes. `append` of two maps that are
    /// both not empty walks both in order and pushes every entry onto new
    /// nodes, filled one after another, freeing the old ones as it goes
    /// (`collect` would first copy every entry into a `Vec` and sort it:
    /// twice the memory at its peak, left to the allocator afterwards).
    fn repack(&mut self) {
        let Some(second) = self.map.keys().nth(1).cloned() else {
            return;
        };
        let mut rest = self.map.split_off(&second);
        self.map.append(&mut rest);
    }
}

impl<K: Ord, V> FromIterator<(K, V)> for PackedMap<K, V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Self {
            map: iter.into_iter().collect(),
            loose: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_keys_added_in_order_then_the_map_holds_them_all_in_order_across_its_rebuilds() {
        let mut map = PackedMap::default();
        for k in 0..10_000u32 {
            assert_eq!(map.insert(k, u64::from(k) * 2), None);
        }
        assert_eq!(map.insert(7, 1), Some(14));
        assert_eq!(map.remove(&8), Some(16));
        *map.get_or_default(10_000) += 5;
        *map.get_or_default(9) += 5;
        assert_eq!(map.len(), 10_000);
        let expected: BTreeMap<u32, u64> = (0..=10_000u32)
            .filter(|k| *k != 8)
            .map(|k| {
                let v = match k {
                    7 => 1,
                    9 => 23,
                    10_000 => 5,
                    k => u64::from(k) * 2,
                };
                (k, v)
            })
            .collect();
        assert_eq!(*map, expected);
        assert_eq!(map, expected.into_iter().collect::<PackedMap<_, _>>());
    }

    #[test]
    fn given_keys_added_in_order_then_a_rebuild_follows_a_quarter_of_the_length_in_new_keys() {
        let mut map = PackedMap::default();
        for k in 0..PACK_AFTER - 1 {
            map.insert(k, ());
        }
        assert_eq!(map.loose, PACK_AFTER - 1);
        map.insert(PACK_AFTER - 1, ());
        assert_eq!(map.loose, 0, "rebuilt at the {PACK_AFTER}th key");
        // Replacing a value adds no key.
        map.insert(0, ());
        assert_eq!(map.loose, 0);
        for k in PACK_AFTER..8 * PACK_AFTER {
            map.insert(k, ());
        }
        assert!(
            map.loose < map.len() / 4,
            "{} loose of {}",
            map.loose,
            map.len()
        );
    }
}
