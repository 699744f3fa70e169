//! The executor of one model: a pool of sessions sharing the worker's CPU budget.
//!
//! `ort`'s `Session::run` takes `&mut self`, so parallel inference needs several sessions. The
//! executor holds
//! - a *pool* of narrow sessions (one intra-op thread each, one per CPU of the budget), used in
//!   parallel while several jobs are in hand: the engine's best throughput layout on this CPU
//!   (2 x 1 thread beats 1 x 2 threads by ~18 %, README "Benchmarks");
//! - a *wide* session (every CPU of the budget), used when exactly one job is in hand and
//!   nothing runs, so a lone request keeps the all-cores latency.
//!
//! A CPU-permit count keeps the two from oversubscribing the budget: a narrow run takes one
//! permit, a wide run takes every permit. The count can change at run time (workers sharing a
//! host re-divide its CPUs as heartbeats come and go).
//!
//! A session whose run outlives `JOB_TIMEOUT` is wedged: [`Pool::retire_stuck`] takes it
//! out of service for good (its permits go back; when its run ever returns, the session is
//! dropped, never reused). A model with no session left cannot serve: the worker exits so its
//! supervisor restarts it.
//!
//! Generic over the session type so tests drive it with fakes (no ONNX).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Which session a run may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// The wide session when this is the only job in hand and nothing runs, else a narrow one.
    Auto,
    /// A narrow session (tests, benchmarks).
    Narrow,
    /// The wide session (tests, benchmarks).
    Wide,
}

/// Why a run could not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecError {
    /// Every session of the model was retired.
    #[error("no working session left (every session was retired as wedged)")]
    NoSession,
    /// The requested kind of session does not exist (or was retired).
    #[error("no such session in this executor")]
    Unavailable,
}

/// Sessions of one model, as heartbeats report them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionCounts {
    /// Sessions in service.
    pub healthy: u32,
    /// Sessions taken out of service because a run never returned.
    pub retired: u32,
}

struct Slot<S> {
    /// `None` while a run holds it (or once retired).
    session: Option<S>,
    wide: bool,
    busy_since: Option<Instant>,
    /// Permits the current run holds.
    permits: usize,
    retired: bool,
}

struct State<S> {
    slots: Vec<Slot<S>>,
    /// CPU permits of the budget.
    total: usize,
    in_use: usize,
}

impl<S> State<S> {
    fn running(&self) -> usize {
        self.slots.iter().filter(|s| s.busy_since.is_some()).count()
    }

    fn healthy(&self, wide: bool) -> usize {
        self.slots
            .iter()
            .filter(|s| !s.retired && s.wide == wide)
            .count()
    }

    fn free(&self, wide: bool) -> Option<usize> {
        self.slots
            .iter()
            .position(|s| s.wide == wide && !s.retired && s.session.is_some())
    }
}

/// A pool of sessions of one model behind a CPU-permit count.
pub struct Executor<S> {
    state: Mutex<State<S>>,
    freed: Condvar,
    /// Threads of the wide session: it only runs when the budget covers them.
    wide_threads: usize,
    /// Jobs of this model in the worker's hands (decoding, waiting or running).
    in_hand: Arc<AtomicUsize>,
}

/// Counts one job in hand while alive (see [`Pool::hold`]).
pub struct Held(Arc<AtomicUsize>);

impl Drop for Held {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl<S: Send> Executor<S> {
    /// An executor over `narrow` one-thread sessions and an optional `wide` one of
    /// `wide_threads` threads, with `permits` CPU permits.
    pub fn new(narrow: Vec<S>, wide: Option<S>, wide_threads: usize, permits: usize) -> Self {
        let slot = |session, wide| Slot {
            session: Some(session),
            wide,
            busy_since: None,
            permits: 0,
            retired: false,
        };
        let mut slots: Vec<Slot<S>> = narrow.into_iter().map(|s| slot(s, false)).collect();
        slots.extend(wide.map(|s| slot(s, true)));
        Executor {
            state: Mutex::new(State {
                slots,
                total: permits.max(1),
                in_use: 0,
            }),
            freed: Condvar::new(),
            wide_threads: wide_threads.max(1),
            in_hand: Arc::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<S>> {
        // A poisoned lock only means a caller panicked while holding it; the state is intact
        // (every change is made before anything that can panic).
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The CPU permit count.
    pub fn permits(&self) -> usize {
        self.lock().total
    }

    /// Runs `f` on a session chosen by `choice`, waiting for a free session and the CPU
    /// permits it needs.
    pub fn run<R>(&self, choice: Choice, f: impl FnOnce(&mut S) -> R) -> Result<R, ExecError> {
        let (idx, mut session) = self.acquire(choice)?;
        let mut guard = Release {
            exec: self,
            idx,
            session: None,
        };
        let out = f(&mut session);
        guard.session = Some(session);
        drop(guard);
        Ok(out)
    }

    fn acquire(&self, choice: Choice) -> Result<(usize, S), ExecError> {
        let mut st = self.lock();
        loop {
            let narrow_ok = st.healthy(false) > 0;
            let wide_ok = st.healthy(true) > 0;
            if !narrow_ok && !wide_ok {
                return Err(ExecError::NoSession);
            }
            let pick = match choice {
                Choice::Narrow if !narrow_ok => return Err(ExecError::Unavailable),
                Choice::Wide if !wide_ok => return Err(ExecError::Unavailable),
                Choice::Narrow => self.narrow(&st),
                Choice::Wide => self.wide(&st, true),
                Choice::Auto => {
                    let alone = self.in_hand.load(Ordering::Relaxed) <= 1 && st.running() == 0;
                    // The wide session serves a lone job, or everything when no narrow one is left.
                    let wide = if alone || !narrow_ok {
                        self.wide(&st, !narrow_ok)
                    } else {
                        None
                    };
                    wide.or_else(|| self.narrow(&st))
                }
            };
            if let Some((idx, permits)) = pick {
                st.in_use += permits;
                let slot = &mut st.slots[idx];
                slot.permits = permits;
                slot.busy_since = Some(Instant::now());
                let session = slot.session.take().ok_or(ExecError::Unavailable)?;
                return Ok((idx, session));
            }
            st = self
                .freed
                .wait(st)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }

    /// A free narrow session and one permit, if both are free.
    fn narrow(&self, st: &State<S>) -> Option<(usize, usize)> {
        if st.in_use >= st.total {
            return None;
        }
        st.free(false).map(|i| (i, 1))
    }

    /// The wide session with every permit, if nothing else runs and the budget covers its
    /// threads (`force`: even when it does not, because nothing else is left).
    fn wide(&self, st: &State<S>, force: bool) -> Option<(usize, usize)> {
        if st.in_use > 0 || (!force && st.total < self.wide_threads) {
            return None;
        }
        st.free(true).map(|i| (i, st.total))
    }
}

/// What the worker asks of a model's executor whatever its session type (object safe, so a
/// model's `Classifier` can hand out its executor as `&dyn Pool`).
pub trait Pool {
    /// Counts a job in hand until the guard drops: the worker holds one per job from delivery
    /// to result, so `Choice::Auto` knows whether other jobs are coming.
    fn hold(&self) -> Held;

    /// Healthy and retired sessions.
    fn counts(&self) -> SessionCounts;

    /// Takes out of service every session whose current run started more than `older_than`
    /// ago (it never returned: the job was abandoned at `JOB_TIMEOUT`). Returns how many.
    fn retire_stuck(&self, older_than: Duration) -> usize;

    /// Changes the CPU permit count (at least 1); waiting runs re-check at once.
    fn set_permits(&self, permits: usize);
}

impl<S: Send> Pool for Executor<S> {
    fn hold(&self) -> Held {
        self.in_hand.fetch_add(1, Ordering::Relaxed);
        Held(self.in_hand.clone())
    }

    fn counts(&self) -> SessionCounts {
        let st = self.lock();
        let retired = st.slots.iter().filter(|s| s.retired).count();
        SessionCounts {
            healthy: (st.slots.len() - retired) as u32,
            retired: retired as u32,
        }
    }

    fn retire_stuck(&self, older_than: Duration) -> usize {
        let mut st = self.lock();
        let mut n = 0;
        let mut released = 0;
        for s in st.slots.iter_mut() {
            if s.retired {
                continue;
            }
            if s.busy_since.is_some_and(|t| t.elapsed() >= older_than) {
                s.retired = true;
                released += s.permits;
                s.permits = 0;
                n += 1;
            }
        }
        st.in_use -= released;
        drop(st);
        if n > 0 {
            self.freed.notify_all();
        }
        n
    }

    fn set_permits(&self, permits: usize) {
        self.lock().total = permits.max(1);
        self.freed.notify_all();
    }
}

/// Puts the session back (or drops it, if it was retired meanwhile) and frees its permits;
/// runs on unwinding too, so a panicking run does not leak its session.
struct Release<'a, S: Send> {
    exec: &'a Executor<S>,
    idx: usize,
    session: Option<S>,
}

impl<S: Send> Drop for Release<'_, S> {
    fn drop(&mut self) {
        let mut st = self.exec.lock();
        let mut released = 0;
        let slot = &mut st.slots[self.idx];
        slot.busy_since = None;
        if !slot.retired {
            released = slot.permits;
            slot.permits = 0;
            // After a panic the session is lost with the closure's frame; the slot retires.
            match self.session.take() {
                Some(s) => slot.session = Some(s),
                None => slot.retired = true,
            }
        }
        st.in_use -= released;
        drop(st);
        self.exec.freed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::mpsc;

    /// A fake session: records which one ran, optionally blocks until told.
    struct Fake {
        name: &'static str,
    }

    fn exec(narrow: usize, wide: bool, permits: usize) -> Arc<Executor<Fake>> {
        let names = ["n0", "n1", "n2", "n3"];
        Arc::new(Executor::new(
            (0..narrow).map(|i| Fake { name: names[i] }).collect(),
            wide.then_some(Fake { name: "wide" }),
            permits,
            permits,
        ))
    }

    fn counts(healthy: u32, retired: u32) -> SessionCounts {
        SessionCounts { healthy, retired }
    }

    /// Starts a `choice` run on another thread that keeps its session until told through the
    /// returned sender (or until the sender drops), and waits until it has started.
    fn blocked_run(
        e: &Arc<Executor<Fake>>,
        choice: Choice,
    ) -> (
        mpsc::Sender<()>,
        std::thread::JoinHandle<Result<(), ExecError>>,
    ) {
        let (started_tx, started) = mpsc::channel();
        let (go_tx, go) = mpsc::channel::<()>();
        let e = e.clone();
        let run = std::thread::spawn(move || {
            e.run(choice, |_| {
                started_tx.send(()).unwrap();
                let _ = go.recv();
            })
        });
        started.recv().unwrap();
        (go_tx, run)
    }

    #[test]
    fn a_lone_job_runs_wide_and_parallel_jobs_run_narrow() {
        let e = exec(2, true, 2);
        let _h = e.hold();
        assert_eq!(e.run(Choice::Auto, |s| s.name).unwrap(), "wide");
        let _h2 = e.hold();
        // Two jobs in hand: narrow, even though nothing runs right now.
        assert!(e.run(Choice::Auto, |s| s.name).unwrap().starts_with('n'));
        // Two parallel runs take both narrow sessions at once.
        let (tx, rx) = mpsc::channel();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let go_rx = Arc::new(Mutex::new(go_rx));
        let mut threads = Vec::new();
        for _ in 0..2 {
            let (e, tx, go) = (e.clone(), tx.clone(), go_rx.clone());
            threads.push(std::thread::spawn(move || {
                e.run(Choice::Auto, |s| {
                    tx.send(s.name).unwrap();
                    go.lock().unwrap().recv().unwrap();
                })
                .unwrap();
            }));
        }
        let mut names = vec![rx.recv().unwrap(), rx.recv().unwrap()];
        names.sort_unstable();
        assert_eq!(names, ["n0", "n1"]);
        go_tx.send(()).unwrap();
        go_tx.send(()).unwrap();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(e.counts(), counts(3, 0));
    }

    #[test]
    fn the_wide_session_waits_for_every_permit_and_narrow_ones_for_one() {
        let e = exec(2, true, 2);
        let (go_tx, narrow) = blocked_run(&e, Choice::Narrow);
        // One permit in use: the wide run must wait; a second narrow run need not.
        assert_eq!(e.run(Choice::Narrow, |s| s.name).unwrap(), "n1");
        let (done_tx, done) = mpsc::channel();
        let e3 = e.clone();
        let wide = std::thread::spawn(move || {
            e3.run(Choice::Wide, |s| done_tx.send(s.name).unwrap())
                .unwrap();
        });
        assert!(done.recv_timeout(Duration::from_millis(100)).is_err());
        go_tx.send(()).unwrap();
        assert_eq!(done.recv().unwrap(), "wide");
        narrow.join().unwrap().unwrap();
        wide.join().unwrap();
    }

    #[test]
    fn the_permit_count_changes_at_run_time() {
        let e = Arc::new(Executor::new(
            vec![Fake { name: "n0" }, Fake { name: "n1" }],
            Some(Fake { name: "wide" }),
            2,
            1,
        ));
        // One permit: the 2-thread wide session is not used (it would oversubscribe).
        let _h = e.hold();
        assert!(e.run(Choice::Auto, |s| s.name).unwrap().starts_with('n'));
        let (go_tx, t) = blocked_run(&e, Choice::Narrow);
        let (done_tx, done) = mpsc::channel();
        let e3 = e.clone();
        let second = std::thread::spawn(move || {
            e3.run(Choice::Narrow, |_| done_tx.send(()).unwrap())
                .unwrap();
        });
        assert!(
            done.recv_timeout(Duration::from_millis(100)).is_err(),
            "one permit, one run"
        );
        e.set_permits(2);
        done.recv_timeout(Duration::from_secs(5)).unwrap();
        go_tx.send(()).unwrap();
        t.join().unwrap().unwrap();
        second.join().unwrap();
        assert_eq!(e.permits(), 2);
    }

    #[test]
    fn a_wedged_session_is_retired_never_reused_and_the_last_one_reports_none_left() {
        let e = exec(1, true, 2);
        // Blocks "forever" (until the test ends and drops the sender).
        let (_never_tx, _) = blocked_run(&e, Choice::Wide);
        assert_eq!(e.retire_stuck(Duration::from_secs(60)), 0, "not stuck yet");
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(e.retire_stuck(Duration::from_millis(20)), 1);
        assert_eq!(e.counts(), counts(1, 1));
        // Its permits came back: the narrow session runs; the wide one is gone.
        assert_eq!(e.run(Choice::Auto, |s| s.name).unwrap(), "n0");
        assert_eq!(e.run(Choice::Wide, |s| s.name), Err(ExecError::Unavailable));
        // Now the last one wedges too.
        let (_never_tx2, _) = blocked_run(&e, Choice::Auto);
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(e.retire_stuck(Duration::from_millis(20)), 1);
        assert_eq!(e.counts(), counts(0, 2));
        assert_eq!(e.run(Choice::Auto, |s| s.name), Err(ExecError::NoSession));
    }

    #[test]
    fn a_panicking_run_frees_its_permits() {
        let e = exec(1, false, 1);
        let e2 = e.clone();
        let r = std::thread::spawn(move || e2.run(Choice::Narrow, |_| panic!("boom"))).join();
        assert!(r.is_err());
        // The session went with the panic; the slot is retired, the permit is back.
        assert_eq!(e.counts(), counts(0, 1));
        assert_eq!(e.lock().in_use, 0);
    }
}
