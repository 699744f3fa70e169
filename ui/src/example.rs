//! The landing page's worked example: a real photo (`static/example.jpg`, Grace Hopper, a US
//! Navy photograph in the public domain) with the top five the running model gives it.
//!
//! Computed once at first start, in the background: the UI opens an account of its own at the
//! API (a random email and password, kept only in memory), sends the photo and keeps the answer.
//! Until a worker has answered, the landing page shows the photo without results; the task
//! retries every few seconds until it has them or the UI stops.

use std::time::Duration;

use rand::RngCore;
use tokio_util::sync::CancellationToken;

use crate::api::Upload;
use crate::views::{Example, JobView};
use crate::AppState;

/// The photo, embedded in the binary.
pub const PHOTO: &[u8] = include_bytes!("../static/example.jpg");
/// The name it is sent with (and shown under).
pub const PHOTO_NAME: &str = "grace_hopper.jpg";

/// Classifies the example until it succeeds (or `stop` is cancelled) and stores the answer.
pub async fn compute(state: AppState, stop: CancellationToken) {
    let mut delay = Duration::from_secs(1);
    let mut account: Option<(String, String)> = None;
    loop {
        match attempt(&state, &mut account).await {
            Ok(ex) => {
                tracing::info!(model = %ex.model_name, "landing example classified");
                state.set_example(ex);
                return;
            }
            Err(e) => tracing::debug!(error = %e, "landing example not ready yet"),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(30));
    }
}

async fn attempt(
    state: &AppState,
    account: &mut Option<(String, String)>,
) -> anyhow::Result<Example> {
    let info = state.api.info().await?;
    state.remember_models(&info);
    anyhow::ensure!(
        info.models.iter().any(|m| m.available),
        "no worker serves a model yet"
    );
    let (email, password) = match account {
        Some(a) => a.clone(),
        None => {
            let mut bytes = [0u8; 16];
            rand::thread_rng().fill_bytes(&mut bytes);
            let id = hex::encode(bytes);
            let email = format!("landing-example-{}@lens.example.com", &id[..12]);
            state.api.register("Landing example", &email, &id).await?;
            *account = Some((email.clone(), id.clone()));
            (email, id)
        }
    };
    let token = state.api.login(&email, &password).await?.access_token;
    let submitted = state
        .api
        .submit(
            &token,
            Upload {
                file_name: PHOTO_NAME.into(),
                content_type: Some("image/jpeg".into()),
                bytes: PHOTO.to_vec(),
            },
            None,
        )
        .await?;
    let job = state.api.job(&token, submitted.job_id(), Some(30)).await?;
    let _ = state.api.logout(&token).await;
    anyhow::ensure!(
        job.status == api_types::JobStatus::Done,
        "the example job is {:?}",
        job.status
    );
    let view = JobView::from_job(&job);
    anyhow::ensure!(!view.bars.is_empty(), "the example has no predictions");
    Ok(Example {
        model_name: state.model_name(&job.model).await,
        sure: view.sure(),
        candidates: view.candidates(),
        elapsed: view.elapsed.clone(),
        bars: view.bars,
    })
}
