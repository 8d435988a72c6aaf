//! Exact lookup of the routes whose templates have no parameter.
//!
//! A request path that is one of these templates' texts, byte for byte, is found here with one
//! hash and one comparison, before the router is asked. The table puts a text here only when
//! the text is clean (so a path equal to it needs no normalisation) and the router gives the
//! same route for it, so that finding a route here never differs from what the router would
//! say.

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
    /// The hash of `text`.
    hash: u64,
    /// The route index for each method slot, [`NONE`] when the method has no route here.
    routes: [u32; METHODS],
    /// The path; empty for an empty slot (no path is empty).
    text: Box<str>,
}

impl Default for Slot {
    fn default() -> Slot {
        Slot {
            hash: 0,
            routes: [NONE; METHODS],
            text: Box::default(),
        }
    }
}

const MULTIPLIER: u64 = 0x9E37_79B9_7F4A_7C15;

/// A hash of `bytes`, eight at a time: the first and the last eight bytes (overlapping when
/// there are fewer than sixteen), and those in between. Texts come from the configuration; a
/// request path only probes, so a path that collides costs a comparison and nothing more.
#[inline]
fn hash(bytes: &[u8]) -> u64 {
    let mix = |hash: u64, word: u64| (hash.rotate_left(23) ^ word).wrapping_mul(MULTIPLIER);
    let length = bytes.len();
    let start = (length as u64).wrapping_mul(MULTIPLIER);
    let hash = if length >= 8 {
        let mut hash = mix(start, word(&bytes[..8]));
        let mut at = 8;
        while at + 8 < length {
            hash = mix(hash, word(&bytes[at..at + 8]));
            at += 8;
        }
        mix(hash, word(&bytes[length - 8..]))
    } else if length >= 4 {
        let low = u64::from(half_word(&bytes[..4]));
        let high = u64::from(half_word(&bytes[length - 4..]));
        mix(start, low | high << 32)
    } else if let (Some(&first), Some(&last)) = (bytes.first(), bytes.last()) {
        let middle = bytes[length / 2];
        mix(
            start,
            u64::from(first) | u64::from(middle) << 8 | u64::from(last) << 16,
        )
    } else {
        start
    };
    hash.wrapping_mul(MULTIPLIER)
}

/// Whether `a` and `b` hold the same bytes, compared eight at a time as [`hash`] reads them
/// (the texts are short, and a call to `memcmp` costs more than comparing them here).
#[inline]
fn same(a: &[u8], b: &[u8]) -> bool {
    let length = a.len();
    if length != b.len() {
        return false;
    }
    if length < 8 {
        return a == b;
    }
    if word(&a[length - 8..]) != word(&b[length - 8..]) {
        return false;
    }
    let mut at = 0;
    while at + 8 < length {
        if word(&a[at..at + 8]) != word(&b[at..at + 8]) {
            return false;
        }
        at += 8;
    }
    true
}

#[inline]
fn word(bytes: &[u8]) -> u64 {
    let mut word = [0; 8];
    word.copy_from_slice(bytes);
    u64::from_le_bytes(word)
}

#[inline]
fn half_word(bytes: &[u8]) -> u32 {
    let mut word = [0; 4];
    word.copy_from_slice(bytes);
    u32::from_le_bytes(word)
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
            let hash = hash(text.as_bytes());
            let mut position = (hash >> shift) as usize;
            loop {
                let slot = &mut slots[position];
                if slot.text.is_empty() {
                    *slot = Slot {
                        hash,
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
        let hash = hash(bytes);
        let mask = self.slots.len() - 1;
        let mut position = (hash >> self.shift) as usize;
        loop {
            let slot = self.slots.get(position)?;
            if slot.text.is_empty() {
                return None;
            }
            if slot.hash == hash && same(slot.text.as_bytes(), bytes) {
                let index = *slot.routes.get(method)?;
                return (index != NONE).then_some(index as usize);
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
    fn compares_every_byte() {
        for length in 0..40 {
            let text = vec![b'a'; length];
            assert!(same(&text, &text.clone()));
            assert!(!same(&text, &text[..length.saturating_sub(1)]) || length == 0);
            for position in 0..length {
                let mut other = text.clone();
                other[position] = b'b';
                assert!(!same(&text, &other), "{length} {position}");
            }
        }
    }

    #[test]
    fn hashes_every_byte() {
        for length in 0..40 {
            let text = vec![b'a'; length];
            for position in 0..length {
                let mut other = text.clone();
                other[position] = b'b';
                assert_ne!(hash(&text), hash(&other), "{length} {position}");
            }
        }
    }
}
