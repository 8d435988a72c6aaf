//! The hasher of the maps read on every governed request.

/// A hash map keyed by names (plans, resources, users) with `foldhash`: seeded per process, and
/// several times faster than the standard SipHash on short strings.
pub(crate) type Map<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// An empty [`Map`] with room for `capacity` entries.
pub(crate) fn map_with_capacity<K, V>(capacity: usize) -> Map<K, V> {
    Map::with_capacity_and_hasher(capacity, foldhash::fast::RandomState::default())
}
