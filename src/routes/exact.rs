//! Exact lookup of the routes whose templates have no parameter.
//!
//! A request path that is one of these templates' texts, byte for byte, is found here with one
//! hash and one comparison, before the router is asked. The table puts a text here only when
//! the text is clean (so a path equal to it needs no normalisation) and the router gives the
//! same route for it, so that finding a route here never differs from what the router would
//! say.

use crate::names::{word, Key, KEYED};

/// The number of method slots: one per standard method.
pub(super) const METHODS: usize = 9;

/// No route for this method.
const NONE: u32 = u32::MAX;

/// An open-addressing hash table from path texts to route indices, one per method slot.
#[derive(Clone, Debug)]
pub(super) struct ExactMap {
    /// A power of two of slots, at most half of them used, so that a probe ends at an empty
    /// slot.
    slots: Box<[Slot]>,
    /// The hash bits that pick the first slot: `64 - log2(slots.len())`.
    shift: u32,
}

#[derive(Clone, Debug)]
struct Slot {
    /// The length of `text`; 0 for an empty slot (no path is empty).
    length: usize,
    /// The [`Key`] of `text`, which is all of it up to sixteen bytes.
    key: Key,
    /// The route index for each method slot, [`NONE`] when the method has no route here.
    routes: [u32; METHODS],
    /// The path.
    text: Box<str>,
}

impl Default for Slot {
    fn default() -> Slot {
        Slot {
            length: 0,
            key: Key(0, 0),
            routes: [NONE; METHODS],
            text: Box::default(),
        }
    }
}

const MULTIPLIER: u64 = 0x9E37_79B9_7F4A_7C15;

/// A hash of `bytes` with their `key`: the length and the key, and for a text longer than
/// sixteen bytes the eight-byte words between the first and the last. Texts come from the
/// configuration; a request path only probes, so a path that collides costs a comparison and
/// nothing more.
#[inline]
fn hash(bytes: &[u8], key: Key) -> u64 {
    let mix = |hash: u64, word: u64| (hash.rotate_left(23) ^ word).wrapping_mul(MULTIPLIER);
    let length = bytes.len();
    let mut hash = mix((length as u64).wrapping_mul(MULTIPLIER), key.0);
    let mut at = 8;
    while at + 8 < length {
        hash = mix(hash, word(&bytes[at..at + 8]));
        at += 8;
    }
    mix(hash, key.1).wrapping_mul(MULTIPLIER)
}

impl ExactMap {
    /// A map of `routes`: a path (not empty), a method slot (below [`METHODS`]) and the route
    /// index, each path and method slot at most once. Others are left out.
    pub(super) fn new(routes: &[(String, usize, usize)]) -> ExactMap {
        let mut texts: Vec<&str> = routes.iter().map(|(text, _, _)| text.as_str()).collect();
        texts.sort_unstable();
        texts.dedup();
        let capacity = (texts.len() * 2).next_power_of_two().max(2);
        let mut slots = vec![Slot::default(); capacity].into_boxed_slice();
        let shift = 64 - capacity.trailing_zeros();
        let mask = capacity - 1;
        for (text, method, index) in routes {
            let Ok(index) = u32::try_from(*index) else {
                continue;
            };
            if text.is_empty() || index == NONE || *method >= METHODS {
                continue;
            }
            let key = Key::of(text.as_bytes());
            let mut position = (hash(text.as_bytes(), key) >> shift) as usize;
            loop {
                let slot = &mut slots[position];
                if slot.length == 0 {
                    *slot = Slot {
                        length: text.len(),
                        key,
                        routes: [NONE; METHODS],
                        text: text.clone().into_boxed_str(),
                    };
                }
                if *slot.text == **text {
                    slot.routes[*method] = index;
                    break;
                }
                position = (position + 1) & mask;
            }
        }
        ExactMap { slots, shift }
    }

    /// The route index stored for exactly `path` and the method `slot`.
    #[inline]
    pub(super) fn get(&self, path: &str, method: usize) -> Option<usize> {
        let bytes = path.as_bytes();
        let length = bytes.len();
        if length > KEYED {
            return self.get_long(bytes, method);
        }
        // Up to sixteen bytes, the length and the key are the whole text.
        let key = Key::of(bytes);
        self.probe(hash(bytes, key), method, |slot| {
            slot.length == length && slot.key == key
        })
    }

    /// [`get`](Self::get) for a path longer than sixteen bytes; out of line, as paths are
    /// rarely that long.
    #[inline(never)]
    fn get_long(&self, bytes: &[u8], method: usize) -> Option<usize> {
        let key = Key::of(bytes);
        self.probe(hash(bytes, key), method, |slot| {
            slot.length == bytes.len() && slot.key == key && *slot.text.as_bytes() == *bytes
        })
    }

    /// The route of `method` in the first slot from the one `hash` picks that `matches`, up to
    /// an empty slot (whose routes are all [`NONE`]: the empty path, matching it, finds nothing).
    #[inline]
    fn probe(&self, hash: u64, method: usize, matches: impl Fn(&Slot) -> bool) -> Option<usize> {
        let mask = self.slots.len() - 1;
        let mut position = (hash >> self.shift) as usize;
        loop {
            let slot = self.slots.get(position)?;
            if matches(slot) {
                let index = *slot.routes.get(method)?;
                return (index != NONE).then_some(index as usize);
            }
            if slot.length == 0 {
                return None;
            }
            position = (position + 1) & mask;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_exactly_the_texts_it_holds() {
        let texts: Vec<String> = (0..200)
            .map(|i| format!("/api/{}", "x".repeat(i % 20)) + &i.to_string())
            .chain(["/".to_owned(), "/a".to_owned(), "/ab".to_owned()])
            .collect();
        let routes: Vec<(String, usize, usize)> = texts
            .iter()
            .enumerate()
            .flat_map(|(i, text)| [(text.clone(), i % 3, i), (text.clone(), 8, 1000 + i)])
            .collect();
        let map = ExactMap::new(&routes);
        for (i, text) in texts.iter().enumerate() {
            for method in 0..METHODS {
                let expected = match method {
                    8 => Some(1000 + i),
                    method if method == i % 3 => Some(i),
                    _ => None,
                };
                assert_eq!(map.get(text, method), expected, "{text} {method}");
            }
            assert_eq!(map.get(text, METHODS), None);
            let mut longer = text.clone();
            longer.push('/');
            assert_eq!(map.get(&longer, 8), None, "{longer}");
            let shorter = &text[..text.len() - 1];
            let position = texts.iter().position(|t| t == shorter);
            assert_eq!(map.get(shorter, 8), position.map(|i| 1000 + i));
        }
        assert_eq!(map.get("", 0), None);
        assert_eq!(map.get("/b", 0), None);
        let empty = ExactMap::new(&[]);
        assert_eq!(empty.get("/", 0), None);
        assert_eq!(empty.get("", 0), None);
        let skipped = ExactMap::new(&[(String::new(), 0, 1), ("/a".to_owned(), METHODS, 2)]);
        assert_eq!(skipped.get("", 0), None);
        assert_eq!(skipped.get("/a", 0), None);
    }

    #[test]
    fn long_texts_differing_in_the_middle() {
        let texts: Vec<String> = (0..40)
            .map(|i| format!("/abcdefg/{i:02}/{}/stuvwxyz", "m".repeat(i % 3)))
            .collect();
        let routes: Vec<(String, usize, usize)> = texts
            .iter()
            .cloned()
            .zip(0..)
            .map(|(t, i)| (t, 0, i))
            .collect();
        let map = ExactMap::new(&routes);
        for (i, text) in texts.iter().enumerate() {
            assert_eq!(map.get(text, 0), Some(i), "{text}");
            let other = text.replace("/stu", "/stU");
            assert_eq!(map.get(&other, 0), None, "{other}");
            let other = text.replacen('m', "n", 1);
            assert_eq!(map.get(&other, 0), (i % 3 == 0).then_some(i), "{other}");
        }
    }

    #[test]
    fn hashes_every_byte() {
        for length in 0..40 {
            let text = vec![b'a'; length];
            for position in 0..length {
                let mut other = text.clone();
                other[position] = b'b';
                assert_ne!(
                    hash(&text, Key::of(&text)),
                    hash(&other, Key::of(&other)),
                    "{length} {position}"
                );
            }
        }
    }
}
