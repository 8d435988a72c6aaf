//! Per-thread copies of shared names, so that a request does not write a reference count that
//! every thread's requests write.
//!
//! An allowed request clones the plan's and the resource's names (the `Allowed` extension, a
//! counted request's counter): cloning an `Arc<str>` that the catalog shares writes its
//! reference count, one cache line that the requests of every thread would pass between cores.
//! [`name`] returns a copy of the name made once by this thread and kept in a small table
//! instead: its count is written by this thread only. The copy is equal to the catalog's name
//! (same text); only its address differs. (`Counting::local` does the same for the layer's
//! counting configuration.)

use std::cell::RefCell;
use std::sync::Arc;

/// How many names a thread keeps (a power of two): more than a catalog's plans and resources
/// that one thread's requests name at a time. A name that collides with another is copied
/// again when it comes back.
const SLOTS: usize = 64;

/// A shared name (kept alive, so that its address stays its own) and this thread's copy.
type Slot = Option<(Arc<str>, Arc<str>)>;

thread_local! {
    static NAMES: RefCell<[Slot; SLOTS]> = const { RefCell::new([const { None }; SLOTS]) };
}

/// A clone of `shared` whose reference count only this thread writes (see the module docs);
/// a plain clone when the thread's table is unavailable (as the thread ends).
pub(crate) fn name(shared: &Arc<str>) -> Arc<str> {
    let address = Arc::as_ptr(shared).cast::<u8>() as usize;
    // Names are allocations of at least 16 bytes apart: the low bits say little.
    let at = (address >> 4) % SLOTS;
    let copy = NAMES.try_with(|names| {
        let mut names = names.try_borrow_mut().ok()?;
        let local = match &names[at] {
            Some((original, local)) if Arc::ptr_eq(original, shared) => Arc::clone(local),
            _ => {
                let local: Arc<str> = Arc::from(&**shared);
                names[at] = Some((Arc::clone(shared), Arc::clone(&local)));
                local
            }
        };
        Some(local)
    });
    copy.ok().flatten().unwrap_or_else(|| Arc::clone(shared))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_gets_one_equal_copy_per_name() {
        let shared: Arc<str> = Arc::from("clients");
        let first = name(&shared);
        let second = name(&shared);
        assert_eq!(first, shared);
        assert!(!Arc::ptr_eq(&first, &shared));
        assert!(Arc::ptr_eq(&first, &second));
        let other = std::thread::spawn({
            let shared = Arc::clone(&shared);
            move || name(&shared)
        })
        .join()
        .unwrap();
        assert_eq!(other, shared);
        assert!(!Arc::ptr_eq(&other, &first));
    }

    #[test]
    fn names_that_share_a_slot_are_told_apart() {
        let names: Vec<Arc<str>> = (0..4 * SLOTS).map(|i| Arc::from(format!("r{i}"))).collect();
        for _ in 0..2 {
            for shared in &names {
                assert_eq!(name(shared), *shared);
            }
        }
    }
}
