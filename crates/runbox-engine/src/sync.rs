//! Locks that survive a panic elsewhere. A thread that panics while holding one of the engine's or the server's
//! mutexes leaves it poisoned; every value they guard (maps of sessions, pools, counters) stays consistent at each
//! unlock, so the next holder takes the value as it is instead of failing every later request.

use std::sync::{Mutex, MutexGuard};

/// `lock()` that takes a poisoned mutex's value as it is (see the module comment).
pub trait LockOrRecover<T: ?Sized> {
    fn lock_or_recover(&self) -> MutexGuard<'_, T>;
}

impl<T: ?Sized> LockOrRecover<T> for Mutex<T> {
    fn lock_or_recover(&self) -> MutexGuard<'_, T> {
        self.lock().unwrap_or_else(|e| e.into_inner())
    }
}
