//! `/collections`: a user's named sets of images, classified together. Each image of a
//! collection is one job, checked, cached and limited exactly like an upload; identical bytes
//! in one collection are classified once. Counts and the histogram are kept as results arrive
//! ([`crate::db`]); the export is streamed a batch of rows at a time.

use axum::body::{Body, Bytes};
use axum::extract::multipart::{Field, Multipart, MultipartRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::stream::{self, Stream};

use api_types::collections::export;
use api_types::{
    Collection, CollectionItem, CollectionItemPage, CollectionPage, CreateCollection, ErrorCode,
    ImagesAdded, ItemState, PartOutcome, PartResult, Prediction, MAX_COLLECTION_NAME_CHARS,
};
use shared::time_util::{now_ms, rfc3339};

use crate::config::MAX_JSON_BODY;
use crate::db::{CollectionRow, ItemFilter, ItemRow, NewCollection, NewItem, COLLECTIONS};
use crate::error::{ApiError, AppJson, Result};
use crate::extract::{AuthUser, ClientAddr};
use crate::jobs::{self, Upload};
use crate::routes::upload::sanitize_file_name;
use crate::routes::Page;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/collections",
            get(list_collections)
                .post(create_collection)
                .layer(DefaultBodyLimit::max(MAX_JSON_BODY)),
        )
        .route(
            "/collections/{id}",
            get(get_collection).delete(delete_collection),
        )
        // Read part by part, each at most MAX_UPLOAD_BYTES: the body as a whole is not bounded
        // (REQUEST_TIMEOUT is), and memory holds one part at a time.
        .route(
            "/collections/{id}/images",
            post(add_images).layer(DefaultBodyLimit::disable()),
        )
        .route("/collections/{id}/items", get(list_items))
        .route("/collections/{id}/export", get(export))
}

/// The collection `id` if the caller may see it (its owner, or an admin); 404 otherwise.
async fn owned(state: &AppState, user: &AuthUser, id: i64) -> Result<CollectionRow> {
    match state.db_call(state.db.collection(id)).await? {
        Some(c) if user.may_access(c.user_id) => Ok(c),
        _ => Err(ApiError::not_found("collection")),
    }
}

/// The client view of a collection row, with the rate and ETA derived from its counts.
fn view(c: &CollectionRow, histogram: Option<Vec<api_types::LabelCount>>) -> Collection {
    let finished = c.counts.done + c.counts.failed;
    let rate = match (c.first_activity_ms, c.last_activity_ms) {
        (Some(a), Some(b)) if b > a && finished > 0 => Some(finished as f64 * 1e3 / (b - a) as f64),
        _ => None,
    };
    let eta = rate
        .filter(|_| c.counts.queued > 0)
        .map(|r| c.counts.queued as f64 / r);
    Collection {
        id: c.id,
        name: c.name.clone(),
        model: c.model.clone(),
        top_k: c.top_k as u32,
        min_confidence: c.min_confidence as f32,
        created_at: rfc3339(c.created_ms),
        first_activity_at: c.first_activity_ms.map(rfc3339),
        last_activity_at: c.last_activity_ms.map(rfc3339),
        counts: c.counts,
        images_per_second: rate,
        eta_seconds: eta,
        histogram,
    }
}

/// Creates a collection of the caller's.
#[utoipa::path(post, path = "/collections", tag = "collections", security(("bearer" = [])),
    request_body = CreateCollection,
    responses((status = 201, body = Collection),
        (status = 409, body = api_types::ErrorBody, description = "the caller has a collection of that name")))]
pub async fn create_collection(
    State(state): State<AppState>,
    user: AuthUser,
    AppJson(body): AppJson<CreateCollection>,
) -> Result<(StatusCode, Json<Collection>)> {
    let name = body.name.trim();
    let chars = name.chars().count();
    if !(1..=MAX_COLLECTION_NAME_CHARS).contains(&chars)
        || name.chars().any(shared::text::is_invisible)
    {
        return Err(ApiError::Validation(
            format!("name must be 1 to {MAX_COLLECTION_NAME_CHARS} visible characters"),
            "name",
        ));
    }
    if body.model.as_deref().is_some_and(|m| m.trim().is_empty()) {
        let msg = "model must name a model (leave it out for the default)".to_owned();
        return Err(ApiError::Validation(msg, "model"));
    }
    let model = state.model(body.model.as_deref())?;
    let top_k = body.top_k.unwrap_or(api_types::DEFAULT_TOP_K as u32);
    if !(1..=api_types::MAX_TOP_K as u32).contains(&top_k) {
        let msg = format!("top_k must be between 1 and {}", api_types::MAX_TOP_K);
        return Err(ApiError::Validation(msg, "top_k"));
    }
    let min_confidence = body.min_confidence.unwrap_or(0.5);
    if !(0.0..=1.0).contains(&min_confidence) {
        let msg = "min_confidence must be between 0 and 1".to_owned();
        return Err(ApiError::Validation(msg, "min_confidence"));
    }
    let new = NewCollection {
        user_id: user.id,
        name,
        model: &model,
        top_k: i64::from(top_k),
        min_confidence: f64::from(min_confidence),
        created_ms: now_ms(),
    };
    let row = state
        .db_call(state.db.create_collection(&new))
        .await?
        .ok_or_else(|| {
            ApiError::Conflict(format!("you already have a collection named {name:?}"))
        })?;
    Ok((StatusCode::CREATED, Json(view(&row, None))))
}

/// The caller's collections, newest first (without histograms).
#[utoipa::path(get, path = "/collections", tag = "collections", security(("bearer" = [])),
    params(Page), responses((status = 200, body = CollectionPage)))]
pub async fn list_collections(
    State(state): State<AppState>,
    user: AuthUser,
    Query(page): Query<Page>,
) -> Result<Json<CollectionPage>> {
    fn page_of(rows: Vec<CollectionRow>, page: u32, per: u32, total: i64) -> CollectionPage {
        CollectionPage::new(
            rows.iter().map(|r| view(r, None)).collect(),
            page,
            per,
            total,
        )
    }
    Ok(Json(
        page.fetch(&state, user.id, &COLLECTIONS, page_of).await?,
    ))
}

/// One collection: counts by state, the top-1 histogram, the rate and ETA.
#[utoipa::path(get, path = "/collections/{id}", tag = "collections", security(("bearer" = [])),
    params(("id" = i64, Path, description = "collection id")),
    responses((status = 200, body = Collection), (status = 404, body = api_types::ErrorBody, description = "no such collection of the caller's")))]
pub async fn get_collection(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<i64>,
) -> Result<Json<Collection>> {
    let c = owned(&state, &user, id).await?;
    let histogram = state.db_call(state.db.collection_histogram(id)).await?;
    Ok(Json(view(&c, Some(histogram))))
}

/// Deletes the collection and its items; their jobs and results stay in the history.
#[utoipa::path(delete, path = "/collections/{id}", tag = "collections", security(("bearer" = [])),
    params(("id" = i64, Path, description = "collection id")),
    responses((status = 204, description = "deleted"), (status = 404, body = api_types::ErrorBody, description = "no such collection of the caller's")))]
pub async fn delete_collection(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<i64>,
) -> Result<StatusCode> {
    owned(&state, &user, id).await?;
    state.db_call(state.db.delete_collection(id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The multipart form of `POST /collections/{id}/images`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // documents the form; the parts are read as a stream
pub struct ImagesForm {
    /// One part per image, its file name the image's path relative to the folder it came
    /// from (`2019/beach/IMG_0001.jpg`); each at most `MAX_UPLOAD_BYTES`.
    #[schema(value_type = Vec<String>, format = Binary)]
    file: Vec<Vec<u8>>,
}

/// Adds images: every `file` part is one item, checked and queued like an upload; the answer
/// gives each part's outcome. A part that is refused (not an image, too large, a path that
/// climbs, a quota) fails alone; a body cut off keeps every complete part before the cut.
#[utoipa::path(post, path = "/collections/{id}/images", tag = "collections", security(("bearer" = [])),
    params(("id" = i64, Path, description = "collection id")),
    request_body(content = ImagesForm, content_type = "multipart/form-data"),
    responses((status = 200, body = ImagesAdded, description = "every part's outcome, in order"),
        (status = 404, body = api_types::ErrorBody, description = "no such collection of the caller's")))]
pub async fn add_images(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    user: AuthUser,
    Path(id): Path<i64>,
    form: std::result::Result<Multipart, MultipartRejection>,
) -> Result<Json<ImagesAdded>> {
    let c = owned(&state, &user, id).await?;
    let mut form = form.map_err(|e| ApiError::BadRequest {
        code: ErrorCode::BadRequest,
        message: format!(
            "expected a multipart/form-data body of `file` parts ({})",
            e.body_text()
        ),
    })?;
    let mut parts = Vec::new();
    let mut retry_after_seconds = None;
    // An unreadable or cut-off body ends the list: the parts before it stand.
    while let Ok(Some(field)) = form.next_field().await {
        if field.name() != Some("file") {
            continue;
        }
        let path = field.file_name().unwrap_or_default().to_owned();
        let Some(bytes) = read_part(field, state.cfg.max_upload_bytes).await else {
            break;
        };
        let added = match bytes {
            Ok(bytes) => {
                // On a task of its own: a client that goes away drops this handler, and that
                // must never leave an item without its job.
                let (state, user, c, path) = (state.clone(), user.clone(), c.clone(), path.clone());
                tokio::spawn(async move { add_part(&state, &user, addr, &c, &path, bytes).await })
                    .await
                    .unwrap_or_else(|e| Err(anyhow::Error::from(e).into()))
            }
            Err(e) => Err(e),
        };
        parts.push(added.unwrap_or_else(|e| {
            retry_after_seconds = retry_after_seconds.max(e.retry_after());
            refused(path, &e)
        }));
    }
    let count = |o: PartOutcome| parts.iter().filter(|p| p.outcome == o).count() as u64;
    Ok(Json(ImagesAdded {
        queued: count(PartOutcome::Queued),
        duplicate: count(PartOutcome::Duplicate),
        present: count(PartOutcome::Present),
        refused: count(PartOutcome::Refused),
        retry_after_seconds,
        parts,
    }))
}

/// One part's bytes, at most `max` (a larger part is read to its end and refused); `None`
/// when the body ends inside it.
async fn read_part(
    mut field: Field<'_>,
    max: usize,
) -> Option<std::result::Result<Vec<u8>, ApiError>> {
    let mut bytes = Vec::new();
    let mut too_large = false;
    loop {
        match field.chunk().await {
            Ok(Some(chunk)) if too_large || bytes.len() + chunk.len() > max => {
                too_large = true;
                bytes.clear();
            }
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            Ok(None) if too_large => return Some(Err(ApiError::PayloadTooLarge(max))),
            Ok(None) => return Some(Ok(bytes)),
            Err(_) => return None,
        }
    }
}

fn refused(path: String, e: &ApiError) -> PartResult {
    PartResult {
        path,
        outcome: PartOutcome::Refused,
        job_id: None,
        duplicate_of: None,
        error: Some(e.body().error),
    }
}

/// `raw` as a relative path of `/`-separated names: not absolute, no `..` or empty names, no
/// control or invisible characters, at most 1,024 bytes.
fn relative_path(raw: &str) -> Result<String> {
    let bad = |why: &str| ApiError::BadRequest {
        code: ErrorCode::BadRequest,
        message: format!("the part's path {raw:?} {why}"),
    };
    let path = raw.replace('\\', "/");
    if path.is_empty() || path.len() > 1024 {
        return Err(bad("must be 1 to 1,024 bytes (the part's file name)"));
    }
    if path.starts_with('/') || path.as_bytes().get(1) == Some(&b':') {
        return Err(bad("is absolute"));
    }
    if path
        .chars()
        .any(|c| c.is_control() || shared::text::is_invisible(c))
    {
        return Err(bad("holds control or invisible characters"));
    }
    let names: Vec<&str> = path.split('/').filter(|n| *n != ".").collect();
    if names.contains(&"..") {
        return Err(bad("climbs out of its folder (`..`)"));
    }
    if names.is_empty() || names.iter().any(|n| n.is_empty()) {
        return Err(bad("has an empty folder or file name"));
    }
    Ok(names.join("/"))
}

/// One part: present already, a duplicate of an earlier item, a new queued job, or the error
/// that refuses it.
async fn add_part(
    state: &AppState,
    user: &AuthUser,
    addr: Option<std::net::IpAddr>,
    c: &CollectionRow,
    raw_path: &str,
    bytes: Vec<u8>,
) -> Result<PartResult> {
    let path = relative_path(raw_path)?;
    let up = Upload::image(
        bytes,
        Some(c.model.clone()),
        Some(c.top_k as usize),
        sanitize_file_name(&path),
    );
    let checked = jobs::check(state, user, up)?;
    let sha = checked.sha256().to_owned();
    let result = |outcome, job_id: String, duplicate_of| PartResult {
        path: path.clone(),
        outcome,
        job_id: Some(job_id),
        duplicate_of,
        error: None,
    };
    if let Some((held, job)) = state.db_call(state.db.item_at(c.id, &path)).await? {
        if held == sha {
            return Ok(result(PartOutcome::Present, job, None));
        }
        return Err(ApiError::Conflict(format!(
            "the collection already holds other bytes at {path}"
        )));
    }
    let mut item = NewItem {
        collection_id: c.id,
        path: &path,
        sha256: &sha,
        job_id: checked.job_id(),
        duplicate: false,
        created_ms: now_ms(),
    };
    if let Some((first, job)) = state.db_call(state.db.item_with_bytes(c.id, &sha)).await? {
        item.job_id = &job;
        item.duplicate = true;
        state.db_call(state.db.insert_item(&item)).await?;
        return Ok(result(PartOutcome::Duplicate, job.clone(), Some(first)));
    }
    let job_id = checked.job_id().to_owned();
    // The item first, so the recorder finds it however fast the job finishes.
    if !state.db_call(state.db.insert_item(&item)).await? {
        return Ok(result(PartOutcome::Present, job_id, None));
    }
    if let Err(e) = jobs::submit_checked(state, user, addr, checked).await {
        state.db_call(state.db.remove_item(c.id, &path)).await?;
        return Err(e);
    }
    Ok(result(PartOutcome::Queued, job_id, None))
}

/// `GET /collections/{id}/items` filters.
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ItemsQuery {
    /// `queued` (waiting or being classified), `done`, `failed` or `duplicate`.
    #[param(value_type = Option<String>)]
    pub state: Option<String>,
    /// Exact top-1 label, case-insensitive.
    pub label: Option<String>,
    /// `true`: done items below the collection's `min_confidence`; `false`: the others.
    #[param(value_type = Option<bool>)]
    pub uncertain: Option<String>,
    #[param(value_type = Option<i64>, minimum = 1, maximum = 2147483647)]
    pub page: Option<String>,
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    pub per_page: Option<String>,
}

impl ItemsQuery {
    fn filter(&self) -> Result<ItemFilter> {
        let state = match self.state.as_deref() {
            None | Some("") => None,
            Some(s @ ("queued" | "done" | "failed" | "duplicate")) => Some(s.to_owned()),
            Some(_) => {
                let msg = "state must be queued, done, failed or duplicate".to_owned();
                return Err(ApiError::Validation(msg, "state"));
            }
        };
        let uncertain = match self.uncertain.as_deref() {
            None | Some("") => None,
            Some("true") => Some(true),
            Some("false") => Some(false),
            Some(_) => {
                let msg = "uncertain must be true or false".to_owned();
                return Err(ApiError::Validation(msg, "uncertain"));
            }
        };
        let label = self.label.clone().filter(|l| !l.trim().is_empty());
        Ok(ItemFilter {
            state,
            label,
            uncertain,
        })
    }
}

/// The model version a row shows: the first 12 hex digits of the model file's SHA-256.
fn model_version(state: &AppState, model: &str) -> String {
    state
        .registry
        .get(model)
        .ok()
        .and_then(|s| s.sha256.as_deref())
        .map_or_else(|| "unknown".to_owned(), |s| s.chars().take(12).collect())
}

fn item_view(state: &AppState, c: &CollectionRow, r: ItemRow) -> CollectionItem {
    let item_state = if r.duplicate {
        ItemState::Duplicate
    } else {
        match r.status.as_str() {
            "done" => ItemState::Done,
            "failed" => ItemState::Failed,
            "processing" => ItemState::Processing,
            _ => ItemState::Queued,
        }
    };
    let result: Option<api_types::JobResult> = r
        .result
        .as_deref()
        .and_then(|j| serde_json::from_str(j).ok());
    let predictions: Option<Vec<Prediction>> = result.map(|r| r.predictions);
    let done = r.status == "done";
    let feedback = match (r.is_correct, r.correct_label) {
        (Some(true), _) => Some("right".to_owned()),
        (Some(false), Some(l)) => Some(format!("wrong: {l}")),
        (Some(false), None) => Some("wrong".to_owned()),
        (None, _) => None,
    };
    CollectionItem {
        original_file_name: r.path.rsplit('/').next().unwrap_or_default().to_owned(),
        path: r.path,
        sha256: r.sha256,
        state: item_state,
        job_id: r.job_id,
        error: r.error.filter(|e| !e.is_empty()),
        top_label: r.top_label,
        top_score: r.top_score.map(|s| s as f32),
        uncertain: done && r.top_score.is_some_and(|s| s < c.min_confidence),
        predictions,
        model_version: model_version(state, &r.model),
        model: r.model,
        finished_at: r.finished_ms.map(rfc3339),
        feedback,
    }
}

/// The collection's items in path order, filtered.
#[utoipa::path(get, path = "/collections/{id}/items", tag = "collections", security(("bearer" = [])),
    params(("id" = i64, Path, description = "collection id"), ItemsQuery),
    responses((status = 200, body = CollectionItemPage), (status = 404, body = api_types::ErrorBody, description = "no such collection of the caller's")))]
pub async fn list_items(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<i64>,
    Query(q): Query<ItemsQuery>,
) -> Result<Json<CollectionItemPage>> {
    let c = owned(&state, &user, id).await?;
    let filter = q.filter()?;
    let paging = Page {
        page: q.page.clone(),
        per_page: q.per_page.clone(),
    };
    let (page, per_page, limit, offset) = paging.bounds()?;
    let (rows, total) = state
        .db_call(state.db.items_page(&c, &filter, limit, offset))
        .await?;
    let items = rows.into_iter().map(|r| item_view(&state, &c, r)).collect();
    Ok(Json(CollectionItemPage::new(items, page, per_page, total)))
}

/// `?format=` of the export.
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// `csv` (default) or `jsonl`.
    #[param(value_type = Option<String>)]
    pub format: Option<String>,
}

/// The export file of `GET /collections/{id}/export`.
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct ExportFile(#[allow(dead_code)] Vec<u8>);

/// Every item as CSV (RFC 4180, a header row) or JSON lines, streamed a batch at a time.
#[utoipa::path(get, path = "/collections/{id}/export", tag = "collections", security(("bearer" = [])),
    params(("id" = i64, Path, description = "collection id"), ExportQuery),
    responses((status = 200, description = "the items: path, original_file_name, sha256, state, error, top_label, top_score, top_k (JSON), uncertain, model, model_version, finished_at, feedback",
            content((ExportFile = "text/csv"), (ExportFile = "application/x-ndjson"))),
        (status = 404, body = api_types::ErrorBody, description = "no such collection of the caller's"),
        (status = 422, body = api_types::ErrorBody, description = "`format` is neither csv nor jsonl")))]
pub async fn export(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<i64>,
    Query(q): Query<ExportQuery>,
) -> Result<Response> {
    let csv = match q.format.as_deref() {
        None | Some("csv") => true,
        Some("jsonl") => false,
        Some(_) => {
            let msg = "format must be csv or jsonl".to_owned();
            return Err(ApiError::Validation(msg, "format"));
        }
    };
    let c = owned(&state, &user, id).await?;
    let (ctype, ext) = if csv {
        ("text/csv; charset=utf-8", "csv")
    } else {
        ("application/x-ndjson", "jsonl")
    };
    let file: String = c
        .name
        .chars()
        .map(|ch| {
            if ch.is_ascii_alphanumeric() || "-_.".contains(ch) {
                ch
            } else {
                '_'
            }
        })
        .collect();
    let disposition = format!("attachment; filename=\"{file}.{ext}\"");
    let body = Body::from_stream(export_stream(state, c, csv));
    Ok((
        [
            (header::CONTENT_TYPE, ctype.to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response())
}

/// Rows read per database call while exporting.
const EXPORT_BATCH: i64 = 500;

/// The export as chunks: the header (CSV), then one chunk per batch of rows.
fn export_stream(
    state: AppState,
    c: CollectionRow,
    csv: bool,
) -> impl Stream<Item = std::result::Result<Bytes, std::io::Error>> {
    let first = csv.then(|| Bytes::from(format!("{}\r\n", export::CSV_HEADER)));
    let head = stream::iter(first.map(Ok));
    let rows = stream::try_unfold(
        (state, c, 0i64, false),
        move |(state, c, after, end)| async move {
            if end {
                return Ok(None);
            }
            let batch = state
                .db
                .items_after(c.id, after, EXPORT_BATCH)
                .await
                .map_err(std::io::Error::other)?;
            let last = batch.last().map(|r| r.id);
            let end = (batch.len() as i64) < EXPORT_BATCH;
            let mut out = String::new();
            for r in batch {
                let item = item_view(&state, &c, r);
                out.push_str(&export::line(&item, csv));
            }
            Ok(Some((
                Bytes::from(out),
                (state, c, last.unwrap_or(after), end),
            )))
        },
    );
    futures::StreamExt::chain(head, rows)
}
