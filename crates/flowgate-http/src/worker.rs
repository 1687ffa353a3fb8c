//! Which data-plane worker a thread is, and what it is serving
//! (docs/decisions/2026-11-22-thread-per-core.md).
//!
//! Each worker is an OS thread running a single-threaded tokio runtime with its own
//! listener socket (started by `server::workers`). A connection, its requests, the
//! upstream connections they use and the tasks that drive those connections all live on
//! one thread, so a request is served without cross-thread wake-ups; the connection pool
//! keeps an idle stack per worker ([`current`]).

use std::cell::Cell;
use std::num::NonZeroUsize;

thread_local! {
    static SLOT: Cell<Option<usize>> = const { Cell::new(None) };
    static SERVING: Cell<u32> = const { Cell::new(0) };
}

/// Marks a request as being served on this thread, from its arrival until its answer's
/// head is ready (dropped then).
///
/// The count tells an attempt whether to hold its upstream write back for the rest of the
/// event loop's turn (docs/decisions/2026-11-23-yield-only-with-company.md). A request
/// whose future moved to another thread (only possible off the workers, on a multi-thread
/// runtime) leaves the count too high on one thread and never below zero on the other:
/// that thread then always yields, as every request did before the count existed.
#[derive(Debug)]
pub struct Serving(());

impl Serving {
    pub fn enter() -> Serving {
        SERVING.with(|c| c.set(c.get().saturating_add(1)));
        Serving(())
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        SERVING.with(|c| c.set(c.get().saturating_sub(1)));
    }
}

/// Whether requests other than the caller's are being served on this thread.
pub fn serving_others() -> bool {
    SERVING.with(Cell::get) > 1
}

/// The index of the worker running on this thread, if this is a worker thread.
pub fn current() -> Option<usize> {
    SLOT.with(Cell::get)
}

/// How many workers to run: `configured`, or one per CPU core.
pub fn count(configured: Option<NonZeroUsize>) -> usize {
    configured.map_or_else(
        || std::thread::available_parallelism().map_or(1, NonZeroUsize::get),
        NonZeroUsize::get,
    )
}

/// Marks this thread as worker `slot` (done once, by the thread that runs it).
pub(crate) fn become_worker(slot: usize) {
    SLOT.set(Some(slot));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_alone_has_no_company_and_two_have() {
        assert!(!serving_others());
        let a = Serving::enter();
        assert!(!serving_others(), "the caller's own request is not company");
        let b = Serving::enter();
        assert!(serving_others());
        drop(a);
        assert!(!serving_others());
        drop(b);
        assert_eq!(SERVING.with(Cell::get), 0);
        // A count that went to another thread never takes this one below zero.
        drop(Serving(()));
        assert_eq!(SERVING.with(Cell::get), 0);
    }
}
