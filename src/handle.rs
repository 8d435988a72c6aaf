//! The layer's state as its services hold it: a handle whose clones write a reference count of
//! the cloning thread's own.
//!
//! A router may clone a service for every request: axum's clones the service of the route it
//! picked, layers included, and calls the clone once. Cloning an `Arc` that the services of
//! every thread share writes its reference count twice a request (the clone, then its drop),
//! on one cache line that would pass between the cores serving requests. A [`Handle`] cloned
//! on a thread other than the one it belongs to becomes that thread's copy instead: made once
//! per thread and state, kept in a small table, and written by that thread only (as
//! `crate::local` does for names and `Counting::local` for the counting configuration).
//!
//! The layer holds the first handle, and each service it makes a clone. A thread's copy keeps
//! the state alive: it stays in the thread's table while the handle it was made from lives
//! (the layer's, which its clones on the thread that built it share); once that handle is
//! gone, the copy is dropped when the thread next makes a copy, or when the thread ends.

use std::cell::RefCell;
use std::ops::Deref;
use std::sync::{Arc, Weak};

use crate::inner::Inner;

/// How many states a thread keeps copies of (a power of two): more than the layers one
/// thread's requests pass through. A state that collides with another is copied again when it
/// comes back.
const SLOTS: usize = 16;

/// The layer's shared state, as a [`PlanLimit`](crate::PlanLimit) holds it.
pub(crate) struct Handle(Arc<Local>);

/// One thread's handle on a state.
struct Local {
    state: Arc<Inner>,
    /// The thread whose handle this is (see [`this_thread`]).
    thread: usize,
    /// The handle this copy was made from, which bounds how long a thread's table keeps it;
    /// `None` on a handle made by the layer.
    origin: Option<Weak<Local>>,
}

impl Local {
    /// Whether the handle this copy was made from is still held.
    fn is_live(&self) -> bool {
        self.origin
            .as_ref()
            .is_none_or(|origin| origin.strong_count() > 0)
    }
}

thread_local! {
    /// Only its address is used: it tells threads apart.
    static MARK: u8 = const { 0 };
    static COPIES: RefCell<[Option<Arc<Local>>; SLOTS]> =
        const { RefCell::new([const { None }; SLOTS]) };
}

/// This thread, as the address of its [`MARK`] (0 once the thread's storage is gone).
fn this_thread() -> usize {
    MARK.try_with(|mark| std::ptr::from_ref(mark) as usize)
        .unwrap_or(0)
}

impl Handle {
    /// A handle on `state` that belongs to the calling thread.
    pub(crate) fn new(state: Arc<Inner>) -> Self {
        Handle(Arc::new(Local {
            state,
            thread: this_thread(),
            origin: None,
        }))
    }

    /// The state's `Arc`, for what outlives a call (a check that waits for the store).
    pub(crate) fn shared(&self) -> &Arc<Inner> {
        &self.0.state
    }

    /// This thread's copy of the handle, made and kept in the thread's table if it has none;
    /// `None` when the table is unavailable (as the thread ends) or the handle's origin is
    /// gone (a copy would not stay).
    fn copy_for(&self, thread: usize) -> Option<Arc<Local>> {
        // The address's bits mixed, so that states allocated alike spread over the slots.
        let address = Arc::as_ptr(&self.0.state) as usize as u64;
        let at = (address.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - SLOTS.trailing_zeros()))
            as usize
            % SLOTS;
        let copy = COPIES.try_with(|copies| {
            let copies = copies.try_borrow().ok()?;
            let copy = copies[at].as_ref()?;
            let live = Arc::ptr_eq(&copy.state, &self.0.state) && copy.is_live();
            live.then(|| Arc::clone(copy))
        });
        match copy {
            Ok(Some(copy)) => Some(copy),
            Ok(None) => self.make_copy(at, thread),
            Err(_) => None,
        }
    }

    /// Makes this thread's copy and keeps it in slot `at` of the thread's table, dropping the
    /// copies there whose origin is gone; `None` when the table is unavailable or this
    /// handle's origin is gone.
    #[cold]
    fn make_copy(&self, at: usize, thread: usize) -> Option<Arc<Local>> {
        let origin = match &self.0.origin {
            Some(origin) => origin.clone(),
            None => Arc::downgrade(&self.0),
        };
        if origin.strong_count() == 0 {
            return None;
        }
        let copy = Arc::new(Local {
            state: Arc::clone(&self.0.state),
            thread,
            origin: Some(origin),
        });
        // What leaves the table is dropped once it is released: the last handle on a state
        // drops the state, and with it whatever its store holds.
        let mut gone: [Option<Arc<Local>>; SLOTS] = [const { None }; SLOTS];
        let kept = COPIES.try_with(|copies| {
            let mut copies = copies.try_borrow_mut().ok()?;
            for (slot, gone) in copies.iter_mut().zip(gone.iter_mut()) {
                if slot.as_ref().is_some_and(|copy| !copy.is_live()) {
                    *gone = slot.take();
                }
            }
            // A copy of another state, still live, gives way.
            let replaced = copies[at].replace(Arc::clone(&copy));
            if replaced.is_some() {
                gone[at] = replaced;
            }
            Some(())
        });
        drop(gone);
        kept.ok().flatten().map(|()| copy)
    }
}

impl Clone for Handle {
    /// A handle that belongs to the calling thread: the same one when this one does, else the
    /// thread's copy.
    fn clone(&self) -> Self {
        let here = this_thread();
        if self.0.thread == here {
            return Handle(Arc::clone(&self.0));
        }
        Handle(self.copy_for(here).unwrap_or_else(|| Arc::clone(&self.0)))
    }
}

impl Deref for Handle {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0.state
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::thread;

    use super::*;
    use crate::{Catalog, MemoryStore, PlanLimitLayer};

    fn state() -> Arc<Inner> {
        let layer = PlanLimitLayer::builder(MemoryStore::new(Catalog::default()))
            .build()
            .unwrap();
        Arc::clone(layer.state.shared())
    }

    /// Clones `handle` twice on a new thread, and a clone once more; whether the three are one
    /// handle, and whether it is `handle` itself.
    fn clone_elsewhere(handle: &Handle) -> (bool, bool) {
        thread::scope(|scope| {
            scope
                .spawn(|| {
                    let first = handle.clone();
                    let second = handle.clone();
                    let third = first.clone();
                    (
                        Arc::ptr_eq(&first.0, &second.0) && Arc::ptr_eq(&first.0, &third.0),
                        Arc::ptr_eq(&first.0, &handle.0),
                    )
                })
                .join()
                .unwrap()
        })
    }

    #[test]
    fn a_clone_on_the_same_thread_is_the_same_handle() {
        let handle = Handle::new(state());
        let clone = handle.clone();
        assert!(Arc::ptr_eq(&clone.0, &handle.0));
        assert!(Arc::ptr_eq(clone.shared(), handle.shared()));
    }

    #[test]
    fn clones_on_another_thread_share_that_threads_copy() {
        let handle = Handle::new(state());
        assert_eq!(clone_elsewhere(&handle), (true, false));
        // A copy cloned on yet another thread (while the copy's own thread lives, which
        // tells the two apart) becomes that thread's, of the same state.
        let elsewhere = thread::scope(|scope| {
            scope
                .spawn(|| {
                    let copy = handle.clone();
                    assert!(!Arc::ptr_eq(&copy.0, &handle.0));
                    assert!(Arc::ptr_eq(copy.shared(), handle.shared()));
                    clone_elsewhere(&copy)
                })
                .join()
                .unwrap()
        });
        assert_eq!(elsewhere, (true, false));
    }

    #[test]
    fn a_copy_goes_when_its_thread_ends() {
        let state = state();
        let weak = Arc::downgrade(&state);
        let handle = Handle::new(state);
        assert_eq!(clone_elsewhere(&handle), (true, false));
        drop(handle);
        assert!(weak.upgrade().is_none());
    }

    #[test]
    fn a_copy_goes_once_its_origin_is_gone_and_the_thread_copies_again() {
        let state = state();
        let weak = Arc::downgrade(&state);
        let handle = Handle::new(state);
        let (to_worker, inbox) = mpsc::channel::<Handle>();
        let (to_main, outbox) = mpsc::channel::<()>();
        let worker = thread::spawn(move || {
            // A request's clone, made here, then dropped: the thread's table keeps the copy.
            let received = inbox.recv().unwrap();
            let copy = received.clone();
            assert!(!Arc::ptr_eq(&copy.0, &received.0));
            drop((received, copy));
            to_main.send(()).unwrap();
            // A copy of another state clears out the copies whose origin is gone.
            let other = inbox.recv().unwrap();
            let _copy = other.clone();
            to_main.send(()).unwrap();
            // Until the main thread has looked.
            let _ = inbox.recv();
        });
        to_worker.send(handle.clone()).unwrap();
        outbox.recv().unwrap();
        drop(handle);
        assert!(
            weak.upgrade().is_some(),
            "the worker's copy stays until it copies again"
        );
        to_worker.send(Handle::new(self::state())).unwrap();
        outbox.recv().unwrap();
        assert!(weak.upgrade().is_none(), "the worker's copy kept the state");
        drop(to_worker);
        worker.join().unwrap();
    }
}
