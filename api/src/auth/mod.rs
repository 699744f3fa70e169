//! Passwords (argon2id, hashed off the async runtime) and HS256 JWT bearer tokens ([`jwt`];
//! the `AuthUser` extractor that checks them on each request is in the `extract` module).

mod jwt;

pub use jwt::{Claims, Jwt, Verified};

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use argon2::password_hash::{rand_core::OsRng, PasswordHash, SaltString};
use argon2::Argon2;

use crate::error::ApiError;

type Task = Box<dyn FnOnce() + Send>;

/// Argon2 runs on a small pool of its own threads, one per core: each hash takes 19 MiB and a
/// core for tens of milliseconds, so a burst of logins queues here instead of starving other
/// requests, and the memory stays in these few threads' allocator arenas instead of growing
/// with every thread of the blocking pool (measured: 8 concurrent logins grew the API from
/// 12 MB to 189 MB on the blocking pool).
fn argon2_pool() -> &'static std::sync::mpsc::Sender<Task> {
    static POOL: OnceLock<std::sync::mpsc::Sender<Task>> = OnceLock::new();
    POOL.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<Task>();
        let rx = Arc::new(std::sync::Mutex::new(rx));
        for i in 0..std::thread::available_parallelism().map_or(2, |n| n.get()) {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || loop {
                    let task = match rx.lock() {
                        Ok(guard) => guard.recv(),
                        Err(_) => return,
                    };
                    match task {
                        Ok(task) => {
                            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(task));
                        }
                        Err(_) => return,
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start an argon2 thread");
            }
        }
        tx
    })
}

/// The bound on password hashes waiting or running (`ARGON2_QUEUE`): past it, callers get 429
/// at once instead of waiting behind a flood of log-ins.
#[derive(Debug)]
pub struct Argon2Queue {
    pending: AtomicUsize,
    max: usize,
    /// Hashes skipped because their caller had gone before their turn.
    skipped: AtomicU64,
}

impl Argon2Queue {
    pub fn new(max: usize) -> Self {
        Argon2Queue {
            pending: AtomicUsize::new(0),
            max: max.max(1),
            skipped: AtomicU64::new(0),
        }
    }

    /// Hashes waiting or running now.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Acquire)
    }

    /// Hashes skipped so far because the caller had gone.
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }
}

impl Default for Argon2Queue {
    fn default() -> Self {
        Argon2Queue::new(crate::config::DEFAULT_ARGON2_QUEUE)
    }
}

/// Why a hash did not run.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// The queue is full: the caller gets 429 at once instead of waiting behind it.
    #[error("too many log-ins and sign-ups are being checked right now; retry in a moment")]
    Busy,
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

impl From<HashError> for ApiError {
    fn from(e: HashError) -> Self {
        match e {
            HashError::Busy => ApiError::RateLimited(e.to_string(), 1),
            HashError::Failed(e) => ApiError::Internal(e),
        }
    }
}

/// Gives its place in the queue back when dropped (after the hash, or if it never ran).
struct Slot(Arc<Argon2Queue>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.pending.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Runs `f` on the argon2 pool, or refuses at once when the queue is full. A caller that has
/// gone (client hung up, handler dropped) before its turn costs no hash: the task sees its
/// answer channel closed and skips the work.
async fn on_argon2_thread<T: Send + 'static>(
    queue: &Arc<Argon2Queue>,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, HashError> {
    if queue.pending.fetch_add(1, Ordering::AcqRel) >= queue.max {
        queue.pending.fetch_sub(1, Ordering::AcqRel);
        metrics::counter!("argon2_rejected_total").increment(1);
        return Err(HashError::Busy);
    }
    let slot = Slot(queue.clone());
    let (tx, rx) = tokio::sync::oneshot::channel();
    argon2_pool()
        .send(Box::new(move || {
            if tx.is_closed() {
                slot.0.skipped.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("argon2_skipped_total").increment(1);
                return;
            }
            let out = f();
            // The place is free before the caller wakes up.
            drop(slot);
            let _ = tx.send(out);
        }))
        .map_err(|_| anyhow::anyhow!("the password hashing threads are gone"))?;
    Ok(rx
        .await
        .map_err(|_| anyhow::anyhow!("password hashing failed"))?)
}

thread_local! {
    /// The argon2 working memory of this thread, allocated once and reused by every hash:
    /// without it each hash allocates and frees 19 MiB, which the allocator tends to keep.
    static BLOCKS: std::cell::RefCell<Vec<argon2::Block>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Raw argon2 with this thread's reusable memory.
fn argon2_raw(
    argon: &Argon2<'_>,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> anyhow::Result<()> {
    BLOCKS.with(|cell| {
        let mut blocks = cell.borrow_mut();
        let need = argon.params().block_count();
        if blocks.len() < need {
            blocks.resize(need, argon2::Block::default());
        }
        argon
            .hash_password_into_with_memory(password, salt, out, &mut blocks[..need])
            .map_err(|e| anyhow::anyhow!("argon2 failed: {e}"))
    })
}

/// A PHC string (`$argon2id$v=19$m=…`) for `password` with a fresh salt and default params.
fn phc_hash(password: &[u8]) -> anyhow::Result<String> {
    let argon = Argon2::default();
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_buf = [0u8; 64];
    let salt_bytes = salt
        .decode_b64(&mut salt_buf)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut out = [0u8; 32];
    argon2_raw(&argon, password, salt_bytes, &mut out)?;
    let hash = PasswordHash {
        algorithm: argon2::Algorithm::Argon2id.ident(),
        version: Some(argon2::Version::V0x13.into()),
        params: argon2::password_hash::ParamsString::try_from(argon.params())
            .map_err(|e| anyhow::anyhow!("{e}"))?,
        salt: Some(salt.as_salt()),
        hash: Some(argon2::password_hash::Output::new(&out).map_err(|e| anyhow::anyhow!("{e}"))?),
    };
    Ok(hash.to_string())
}

/// Checks `password` against a PHC string, comparing in constant time.
fn phc_verify(password: &[u8], stored: &str) -> anyhow::Result<bool> {
    let parsed =
        PasswordHash::new(stored).map_err(|e| anyhow::anyhow!("stored hash unreadable: {e}"))?;
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return Ok(false);
    };
    let params = argon2::Params::try_from(&parsed).map_err(|e| anyhow::anyhow!("{e}"))?;
    let algorithm =
        argon2::Algorithm::try_from(parsed.algorithm).map_err(|e| anyhow::anyhow!("{e}"))?;
    let version = parsed
        .version
        .map(argon2::Version::try_from)
        .transpose()
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .unwrap_or_default();
    let argon = Argon2::new(algorithm, version, params);
    let mut salt_buf = [0u8; 64];
    let salt_bytes = salt
        .decode_b64(&mut salt_buf)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut out = vec![0u8; expected.len()];
    argon2_raw(&argon, password, salt_bytes, &mut out)?;
    let computed = argon2::password_hash::Output::new(&out).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(computed == expected)
}

/// Hashes a password with argon2id on the argon2 pool.
pub async fn hash_password(
    queue: &Arc<Argon2Queue>,
    password: String,
) -> Result<String, HashError> {
    Ok(on_argon2_thread(queue, move || phc_hash(password.as_bytes())).await??)
}

/// Verifies a password on the argon2 pool. With no stored hash (unknown email) a dummy
/// hash is checked instead, so both failures take the same time.
pub async fn verify_password(
    queue: &Arc<Argon2Queue>,
    password: String,
    stored: Option<String>,
) -> Result<bool, HashError> {
    Ok(on_argon2_thread(queue, move || {
        let known = stored.is_some();
        let hash = stored.unwrap_or_else(|| dummy_hash().to_owned());
        anyhow::Ok(phc_verify(password.as_bytes(), &hash)? && known)
    })
    .await??)
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| phc_hash(b"timing-equalizer").unwrap_or_default())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn phc_strings_agree_with_the_argon2_crate() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let ours = phc_hash(b"s3cret-pass").unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(Argon2::default()
            .verify_password(b"s3cret-pass", &parsed)
            .is_ok());
        let salt = SaltString::generate(&mut OsRng);
        let theirs = Argon2::default()
            .hash_password(b"s3cret-pass", &salt)
            .unwrap()
            .to_string();
        assert!(phc_verify(b"s3cret-pass", &theirs).unwrap());
        assert!(!phc_verify(b"wrong", &theirs).unwrap());
    }

    #[tokio::test]
    async fn passwords_verify_only_with_the_right_hash() {
        let q = Arc::new(Argon2Queue::default());
        let h = hash_password(&q, "correct horse".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password(&q, "correct horse".into(), Some(h.clone()))
            .await
            .unwrap());
        assert!(!verify_password(&q, "wrong".into(), Some(h)).await.unwrap());
        assert!(!verify_password(&q, "correct horse".into(), None)
            .await
            .unwrap());
    }

    #[tokio::test]
    async fn the_queue_is_bounded_and_callers_that_left_cost_no_hash() {
        let q = Arc::new(Argon2Queue::new(4));
        // Ten callers at once: four get a place, six are refused at once.
        let calls = (0..10).map(|_| verify_password(&q, "pw".into(), None));
        let answers = futures::future::join_all(calls).await;
        let busy = answers
            .iter()
            .filter(|a| matches!(a, Err(HashError::Busy)))
            .count();
        assert_eq!(busy, 6, "{answers:?}");
        assert_eq!(q.pending(), 0, "every place is given back");
        // Callers that hang up before their turn: their hashes are skipped. Every hashing
        // thread is held first, so the 32 wait in line behind them whatever the scheduling.
        let q = Arc::new(Argon2Queue::new(64));
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let (mut gates, mut holders) = (Vec::new(), Vec::new());
        for _ in 0..threads {
            let (open, gate) = std::sync::mpsc::channel::<()>();
            gates.push(open);
            let q = q.clone();
            holders.push(tokio::spawn(async move {
                on_argon2_thread(&q, move || {
                    let _ = gate.recv();
                })
                .await
            }));
        }
        let wait_for = |n: usize| {
            let q = q.clone();
            async move {
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
                while q.pending() != n && std::time::Instant::now() < deadline {
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                }
                assert_eq!(q.pending(), n);
            }
        };
        wait_for(threads).await;
        for _ in 0..32 {
            // Polled once (its hash is in line), then dropped: the caller has gone.
            let mut call = Box::pin(verify_password(&q, "pw".into(), None));
            assert!(futures::poll!(&mut call).is_pending());
        }
        assert_eq!(q.pending(), threads + 32);
        drop(gates);
        for h in holders {
            h.await.unwrap().unwrap();
        }
        wait_for(0).await;
        assert_eq!(
            q.skipped(),
            32,
            "every hash whose caller had gone is skipped"
        );
    }
}
