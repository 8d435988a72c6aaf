//! A map keyed by names, for the few names that a plan, an add-on or a usage record holds.
//!
//! Every governed request looks its resource up in the user's plan and in the user's usage.
//! Each holds a handful of names, and hashing the name, probing a table and comparing the bytes
//! through `memcmp` costs about a hundred instructions a lookup. A [`NameMap`] keeps its entries
//! in a vector with a [`Key`] of each name, and compares the length (which the name's pointer
//! carries, so nothing is read) and the key's two words: up to sixteen bytes, that is the whole
//! name, and no byte is compared at all.

use std::fmt;
use std::sync::Arc;

use crate::hash::{map_with_capacity, Map};

/// Two words that, with the length, tell texts of up to sixteen bytes apart: from eight bytes
/// on, the first and the last eight (overlapping below sixteen); below, the bytes themselves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Key(pub(crate) u64, pub(crate) u64);

/// The longest text that its length and its [`Key`] tell apart from every other.
pub(crate) const KEYED: usize = 16;

impl Key {
    /// The key of `bytes`.
    #[inline]
    pub(crate) fn of(bytes: &[u8]) -> Key {
        let length = bytes.len();
        if length >= 8 {
            Key(word(&bytes[..8]), word(&bytes[length - 8..]))
        } else if length >= 4 {
            let low = u64::from(half_word(&bytes[..4]));
            let high = u64::from(half_word(&bytes[length - 4..]));
            Key(low | high << 32, 0)
        } else if let (Some(&first), Some(&last)) = (bytes.first(), bytes.last()) {
            let middle = bytes[length / 2];
            Key(
                u64::from(first) | u64::from(middle) << 8 | u64::from(last) << 16,
                0,
            )
        } else {
            Key(0, 0)
        }
    }
}

/// The eight `bytes` as a little-endian word.
#[inline]
pub(crate) fn word(bytes: &[u8]) -> u64 {
    let mut word = [0; 8];
    word.copy_from_slice(bytes);
    u64::from_le_bytes(word)
}

/// The four `bytes` as a little-endian half word.
#[inline]
fn half_word(bytes: &[u8]) -> u32 {
    let mut word = [0; 4];
    word.copy_from_slice(bytes);
    u32::from_le_bytes(word)
}

/// Above this many entries, a [`NameMap`] keeps a hash index of its names as well.
///
/// A lookup that misses compares every entry, about eight instructions each (most lengths
/// differ), and one that hits compares half of them on average; at sixteen entries a miss costs
/// about what a hash lookup does (a hundred-odd instructions: the hash, the probe and a
/// `memcmp`), so beyond that the index is cheaper. Plans and usage records rarely hold that
/// many names, and below it the index costs nothing: it is not built.
const INDEXED: usize = 16;

/// A map keyed by names that finds few names with a few comparisons, and many with a hash.
///
/// Entries stay in insertion order until one is removed: [`remove`](NameMap::remove) moves the
/// last entry into the gap. Two maps are equal when they hold the same names with equal values,
/// in whatever order.
#[derive(Clone)]
pub(crate) struct NameMap<V> {
    /// The entries, each name once.
    entries: Vec<Entry<V>>,
    /// Name -> position in `entries`: present whenever there are more than [`INDEXED`]
    /// entries, and dropped when they fall to half that, so that a map that grows and shrinks
    /// around the threshold does not build it again on every insert.
    index: Option<Box<Map<Arc<str>, usize>>>,
}

/// One name of a [`NameMap`], with its key and its value.
#[derive(Clone)]
struct Entry<V> {
    /// The [`Key`] of `name`.
    key: Key,
    /// The name.
    name: Arc<str>,
    /// The value.
    value: V,
}

impl<V> Default for NameMap<V> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
            index: None,
        }
    }
}

impl<V> NameMap<V> {
    /// The value of `name`.
    #[inline]
    pub(crate) fn get(&self, name: &str) -> Option<&V> {
        let position = self.position(name)?;
        self.entries.get(position).map(|entry| &entry.value)
    }

    /// The value of `name`, to change in place.
    #[inline]
    pub(crate) fn get_mut(&mut self, name: &str) -> Option<&mut V> {
        let position = self.position(name)?;
        self.entries.get_mut(position).map(|entry| &mut entry.value)
    }

    /// Sets the value of `name` and returns the one it replaces. A name already present keeps
    /// its place (and its first allocation).
    pub(crate) fn insert(&mut self, name: Arc<str>, value: V) -> Option<V> {
        match self.position(&name).and_then(|p| self.entries.get_mut(p)) {
            Some(entry) => Some(std::mem::replace(&mut entry.value, value)),
            None => {
                self.push(name, value);
                None
            }
        }
    }

    /// The value of `name`, set to `make()` first if the map does not hold the name.
    pub(crate) fn get_or_insert_with(
        &mut self,
        name: Arc<str>,
        make: impl FnOnce() -> V,
    ) -> &mut V {
        match self.position(&name) {
            Some(position) => &mut self.entries[position].value,
            None => self.push(name, make()),
        }
    }

    /// Removes `name` and returns its value. The last entry takes its place.
    pub(crate) fn remove(&mut self, name: &str) -> Option<V> {
        let position = self.position(name)?;
        let removed = self.entries.swap_remove(position);
        if self.entries.len() <= INDEXED / 2 {
            self.index = None;
        } else if let Some(index) = &mut self.index {
            index.remove(name);
            if let Some(moved) = self.entries.get(position) {
                if let Some(at) = index.get_mut(&moved.name) {
                    *at = position;
                }
            }
        }
        Some(removed.value)
    }

    /// The names and their values.
    pub(crate) fn iter(&self) -> impl ExactSizeIterator<Item = (&Arc<str>, &V)> + '_ {
        self.entries.iter().map(|entry| (&entry.name, &entry.value))
    }

    /// How many names the map holds.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the map holds no name.
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The position of `name` in `entries`.
    #[inline]
    fn position(&self, name: &str) -> Option<usize> {
        if let Some(index) = &self.index {
            return indexed(index, name);
        }
        let bytes = name.as_bytes();
        let length = bytes.len();
        if length > KEYED {
            return self.position_long(bytes);
        }
        // Up to sixteen bytes, the length and the key are the whole name.
        let key = Key::of(bytes);
        self.entries
            .iter()
            .position(|entry| entry.name.len() == length && entry.key == key)
    }

    /// [`position`](Self::position) without the index, for a name longer than sixteen bytes;
    /// out of line, as names are rarely that long.
    #[inline(never)]
    fn position_long(&self, bytes: &[u8]) -> Option<usize> {
        let key = Key::of(bytes);
        self.entries.iter().position(|entry| {
            entry.name.len() == bytes.len() && entry.key == key && entry.name.as_bytes() == bytes
        })
    }

    /// Adds `name`, which the map does not hold, with `value`, and returns the value in place.
    fn push(&mut self, name: Arc<str>, value: V) -> &mut V {
        let position = self.entries.len();
        if self.entries.capacity() == 0 {
            // Many maps hold one name (a usage record with one count, kept per subscriber): the
            // first entry gets room for itself alone, not the four a vector starts with.
            self.entries.reserve_exact(1);
        }
        if let Some(index) = &mut self.index {
            index.insert(Arc::clone(&name), position);
        }
        self.entries.push(Entry {
            key: Key::of(name.as_bytes()),
            name,
            value,
        });
        if self.index.is_none() && self.entries.len() > INDEXED {
            let mut index = map_with_capacity(self.entries.len() * 2);
            for (at, entry) in self.entries.iter().enumerate() {
                index.insert(Arc::clone(&entry.name), at);
            }
            self.index = Some(Box::new(index));
        }
        &mut self.entries[position].value
    }
}

/// The position that `index` gives `name`; out of line, so that the scan of a small map, the
/// common case, does not pay for the registers a hash lookup needs.
#[inline(never)]
fn indexed(index: &Map<Arc<str>, usize>, name: &str) -> Option<usize> {
    index.get(name).copied()
}

impl<V: PartialEq> PartialEq for NameMap<V> {
    /// The same names with equal values, in whatever order (as for a hash map).
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len()
            && self
                .iter()
                .all(|(name, value)| other.get(name) == Some(value))
    }
}

impl<V: Eq> Eq for NameMap<V> {}

impl<V: fmt::Debug> fmt::Debug for NameMap<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// Checks `map` against `model`, and the index against the entries.
    fn check(map: &NameMap<u64>, model: &HashMap<Arc<str>, u64>, names: &[Arc<str>]) {
        assert_eq!(map.len(), model.len());
        assert_eq!(map.is_empty(), model.is_empty());
        for name in names {
            assert_eq!(map.get(name), model.get(name), "{name:?}");
        }
        let mut seen: Vec<(&str, u64)> = map.iter().map(|(n, v)| (&**n, *v)).collect();
        let mut expected: Vec<(&str, u64)> = model.iter().map(|(n, v)| (&**n, *v)).collect();
        seen.sort_unstable();
        expected.sort_unstable();
        assert_eq!(seen, expected);
        for entry in &map.entries {
            assert_eq!(entry.key, Key::of(entry.name.as_bytes()));
        }
        match &map.index {
            Some(index) => {
                assert!(map.len() > INDEXED / 2, "{}", map.len());
                assert_eq!(index.len(), map.len());
                for (position, entry) in map.entries.iter().enumerate() {
                    assert_eq!(index.get(&entry.name), Some(&position));
                }
            }
            None => assert!(map.len() <= INDEXED, "{}", map.len()),
        }
    }

    /// Names of every length from 0 to 40 and, for each, the names that differ from it in one
    /// byte: in the key for the short ones, and also between the key's words for the long ones.
    fn names() -> Vec<Arc<str>> {
        let mut names = Vec::new();
        for length in 0..40 {
            let base = "a".repeat(length);
            names.push(Arc::from(base.as_str()));
            for position in (0..length)
                .step_by(3)
                .chain((length > 0).then_some(length / 2))
            {
                let mut other = base.clone().into_bytes();
                other[position] = b'b';
                let other = String::from_utf8(other).expect("ASCII");
                if !names.iter().any(|n| **n == *other) {
                    names.push(Arc::from(other));
                }
            }
        }
        names
    }

    /// A small deterministic generator (xorshift64*).
    struct Random(u64);

    impl Random {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % n
        }
    }

    #[test]
    fn keys_tell_short_texts_apart() {
        for length in 0..=KEYED {
            let text = vec![b'a'; length];
            for position in 0..length {
                let mut other = text.clone();
                other[position] = b'b';
                assert_ne!(Key::of(&text), Key::of(&other), "{length} {position}");
            }
        }
    }

    #[test]
    fn finds_names_that_differ_in_one_byte() {
        let names = names();
        assert!(names.len() > 3 * INDEXED);
        // Few names (scanned), then all of them (indexed).
        for count in [1, 2, INDEXED, names.len()] {
            let mut map = NameMap::default();
            let mut model = HashMap::new();
            for (value, name) in names.iter().take(count).enumerate() {
                assert_eq!(map.insert(Arc::clone(name), value as u64), None);
                model.insert(Arc::clone(name), value as u64);
            }
            check(&map, &model, &names);
            assert_eq!(map.index.is_some(), count > INDEXED);
        }
    }

    #[test]
    fn insert_replace_and_remove_across_the_index_threshold() {
        let names = names();
        let mut map = NameMap::default();
        let mut model = HashMap::new();
        for (value, name) in names.iter().take(40).enumerate() {
            assert_eq!(map.insert(Arc::clone(name), value as u64), None);
            model.insert(Arc::clone(name), value as u64);
            check(&map, &model, &names);
        }
        assert!(map.index.is_some());
        // Replacing keeps the place and the first name's allocation.
        let first = Arc::from(&*names[0]);
        assert_eq!(map.insert(first, 100), Some(0));
        model.insert(Arc::clone(&names[0]), 100);
        assert!(Arc::ptr_eq(&map.entries[0].name, &names[0]));
        check(&map, &model, &names);
        // Remove from the front, so that each removal moves the last entry.
        for name in names.iter().take(37) {
            assert_eq!(map.remove(name), model.remove(name));
            assert_eq!(map.remove(name), None);
            check(&map, &model, &names);
        }
        assert!(map.index.is_none());
        assert_eq!(map.len(), 3);
    }

    #[test]
    fn matches_a_hash_map_under_random_operations() {
        let names = names();
        let mut random = Random(0x9E37_79B9_7F4A_7C15);
        let mut map = NameMap::default();
        let mut model: HashMap<Arc<str>, u64> = HashMap::new();
        let (mut built, mut dropped) = (0, 0);
        for step in 0..6_000u64 {
            // Phases that grow the map past the threshold and shrink it to nothing: a shrinking
            // phase mostly removes names that the map holds.
            let growing = (step / 150) % 2 == 0;
            let name = match map.entries.len() {
                0 => &names[random.below(names.len())],
                held if !growing && random.below(4) != 0 => &map.entries[random.below(held)].name,
                _ => &names[random.below(names.len())],
            };
            let name = Arc::clone(name);
            let was_indexed = map.index.is_some();
            match (growing, random.below(8)) {
                (true, 0 | 1) => {
                    let copy = Arc::from(&*name);
                    assert_eq!(
                        map.insert(copy, step),
                        model.insert(Arc::clone(&name), step)
                    );
                }
                (true, 2) => {
                    *map.get_or_insert_with(Arc::clone(&name), || step) += 1;
                    *model.entry(Arc::clone(&name)).or_insert(step) += 1;
                }
                (false, 0..=4) => assert_eq!(map.remove(&name), model.remove(&name)),
                (_, 5) => {
                    if let Some(value) = map.get_mut(&name) {
                        *value = value.wrapping_mul(3);
                    }
                    if let Some(value) = model.get_mut(&name) {
                        *value = value.wrapping_mul(3);
                    }
                }
                _ => assert_eq!(map.get(&name), model.get(&name)),
            }
            check(&map, &model, &names);
            match (was_indexed, map.index.is_some()) {
                (false, true) => built += 1,
                (true, false) => dropped += 1,
                _ => {}
            }
        }
        assert!(built >= 10 && dropped >= 10, "{built} {dropped}");
    }

    #[test]
    fn equal_maps_hold_the_same_names_and_values_in_any_order() {
        let names = names();
        for count in [0, 3, INDEXED + 4] {
            let mut forward = NameMap::default();
            let mut backward = NameMap::default();
            for (value, name) in names[..count].iter().enumerate() {
                forward.insert(Arc::clone(name), value as u64);
            }
            for (value, name) in names[..count].iter().enumerate().rev() {
                backward.insert(Arc::from(&**name), value as u64);
            }
            assert_eq!(forward, backward);
            assert_eq!(forward, forward.clone());
            if count == 0 {
                continue;
            }
            let mut changed = backward.clone();
            changed.insert(Arc::clone(&names[0]), 99);
            assert_ne!(forward, changed);
            let mut fewer = backward.clone();
            fewer.remove(&names[count - 1]);
            assert_ne!(forward, fewer);
            assert_ne!(fewer, forward);
            let mut other = fewer.clone();
            other.insert(Arc::from("other"), 0);
            assert_ne!(forward, other);
        }
    }

    #[test]
    fn debug_prints_a_map() {
        let mut map = NameMap::default();
        map.insert(Arc::from("clients"), 3);
        map.insert(Arc::from("groups"), 1);
        assert_eq!(format!("{map:?}"), r#"{"clients": 3, "groups": 1}"#);
    }
}
