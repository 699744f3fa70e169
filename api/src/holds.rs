//! Requests held open waiting for a result (`GET /predictions/{id}?wait=`, `POST /predict`),
//! bounded over all users (`MAX_WAITS`) and per account (`MAX_WAITS_PER_USER`). Each hold is
//! a task, a connection and a subscription woken by every finished job; unbounded, one user
//! held 10,000 `?wait=30` requests and took the API from 126 to 372 MB (issue 24, finding 3).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The holds in use.
pub struct Holds {
    total: Arc<Semaphore>,
    per_user: Arc<Mutex<HashMap<i64, usize>>>,
    max_per_user: usize,
}

/// One held request; dropping it gives the place back.
pub struct Hold {
    _total: OwnedSemaphorePermit,
    user: i64,
    per_user: Arc<Mutex<HashMap<i64, usize>>>,
}

impl Holds {
    pub fn new(max_total: usize, max_per_user: usize) -> Self {
        Holds {
            total: Arc::new(Semaphore::new(max_total)),
            per_user: Arc::default(),
            max_per_user,
        }
    }

    /// Requests holding a place now (all users).
    pub fn in_use(&self) -> usize {
        self.per_user
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .sum()
    }

    /// A place for `user`'s request to wait in, if both bounds allow one more.
    pub fn try_hold(&self, user: i64) -> Option<Hold> {
        let mut held = self.per_user.lock().unwrap_or_else(|p| p.into_inner());
        if held.get(&user).is_some_and(|n| *n >= self.max_per_user) {
            return None;
        }
        // The total first: a refusal leaves no entry behind for this user.
        let permit = self.total.clone().try_acquire_owned().ok()?;
        *held.entry(user).or_insert(0) += 1;
        Some(Hold {
            _total: permit,
            user,
            per_user: self.per_user.clone(),
        })
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        let mut held = self.per_user.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = held.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                held.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_are_bounded_per_user_and_in_all_and_come_back_when_dropped() {
        let holds = Holds::new(3, 2);
        let a1 = holds.try_hold(1).expect("first");
        let a2 = holds.try_hold(1).expect("second");
        assert!(holds.try_hold(1).is_none(), "a third for the same user");
        let b1 = holds.try_hold(2).expect("another user");
        assert!(holds.try_hold(3).is_none(), "over the total");
        assert_eq!(
            holds.per_user.lock().expect("lock").len(),
            2,
            "no entry for a refusal"
        );
        drop(a1);
        assert!(holds.try_hold(1).is_some(), "a place came back");
        drop((a2, b1));
        assert!(holds.per_user.lock().expect("lock").len() <= 1);
    }
}
