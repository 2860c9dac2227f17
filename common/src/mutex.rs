//! Locking that survives a panic elsewhere.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, taking over a lock poisoned by a panicking holder. Use it
/// only where every critical section is a plain edit (an insert, a removal,
/// a store) that leaves the data whole even if a panic cut in between two
/// of them — which is how this codebase's few shared structures are used.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
