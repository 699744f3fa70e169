//! `lens classify`: a folder as one collection.
//!
//! 1. Walk the folders; find (or create) the collection by name.
//! 2. Read what the collection holds (its export): a file held at the same path with the same
//!    SHA-256 is not sent again, so a run stopped at any point resumes where it stopped.
//! 3. Send the rest in batches, a few requests at a time. A part refused by a limit that
//!    passes (a full queue, the per-user quota or rate) is sent again once the service has
//!    room; any other refusal is that file's failure.
//! 4. Wait for the results with a progress bar, then write `--out`, `--sort-into` and a
//!    summary; exit 1 when any file failed.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use api_types::collections::export;
use api_types::{Collection, CollectionItem, CreateCollection, ItemState, PartOutcome};
use futures::{future, stream, StreamExt, TryStreamExt};

use crate::api::{Api, Part};
use crate::files::{self, Found};
use crate::progress::Progress;
use crate::sort::{self, How};
use crate::Done;

/// A part the service keeps refusing with a limit that passes is given up after this long
/// without any part of its batch getting through.
const STUCK_LIMIT: Duration = Duration::from_secs(600);
/// Files read ahead of the requests.
const READ_AHEAD: usize = 8;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Folders or image files: every image under them becomes one item of the collection.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// The collection's name (default: the first folder's name); a name used before resumes
    /// that collection.
    #[arg(long)]
    pub collection: Option<String>,
    /// The model, when the collection is created (default: the service's).
    #[arg(long)]
    pub model: Option<String>,
    /// Classes kept per image, when the collection is created (1-20).
    #[arg(long)]
    pub top_k: Option<u32>,
    /// A top-1 score below this is "uncertain", when the collection is created (0-1).
    #[arg(long)]
    pub min_confidence: Option<f32>,
    /// Images per request.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub batch: u16,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=16))]
    pub concurrency: u16,
    /// Return once everything is sent, without waiting for the results.
    #[arg(long, conflicts_with_all = ["out", "sort_into"])]
    pub no_wait: bool,
    /// Write every file's result here: CSV, or JSON lines when the name ends in `.jsonl`.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Sort the files into DIR/<class>/<path>, DIR/_uncertain/<path> and DIR/_failed.txt
    /// (symbolic links to the originals).
    #[arg(long, value_name = "DIR")]
    pub sort_into: Option<PathBuf>,
    /// With --sort-into: copy the files instead of linking them.
    #[arg(long, requires = "sort_into", conflicts_with = "link")]
    pub copy: bool,
    /// With --sort-into: hard links instead of symbolic links.
    #[arg(long, requires = "sort_into")]
    pub link: bool,
}

/// A file read for sending.
struct Loaded {
    rel: String,
    bytes: Vec<u8>,
    sha: String,
}

/// A file that is not in the collection, and why.
#[derive(Debug, Clone)]
struct Refusal {
    rel: String,
    sha: String,
    code: String,
    message: String,
}

/// What sending did.
#[derive(Debug, Default)]
struct Tally {
    /// Held already (this or an earlier run).
    present: u64,
    queued: u64,
    duplicate: u64,
    refused: Vec<Refusal>,
}

impl Tally {
    fn seen(&self) -> u64 {
        self.present + self.queued + self.duplicate + self.refused.len() as u64
    }

    fn line(&self) -> String {
        format!(
            "{} queued, {} duplicates, {} held already, {} refused",
            self.queued,
            self.duplicate,
            self.present,
            self.refused.len()
        )
    }
}

pub async fn run(api: &Api, args: Args) -> Result<Done> {
    let paths = args.paths.clone();
    let walk = tokio::task::spawn_blocking(move || files::walk(&paths)).await??;
    for (path, why) in &walk.unreadable {
        eprintln!("lens: skipping {}: {why}", path.display());
    }
    let name = args
        .collection
        .clone()
        .unwrap_or_else(|| files::name(&args.paths[0]));
    let col = api
        .find_or_create(&CreateCollection {
            name,
            model: args.model.clone(),
            top_k: args.top_k,
            min_confidence: args.min_confidence,
        })
        .await?;
    eprintln!(
        "collection {:?}: {} images to classify ({} other files skipped); model {}",
        col.name,
        walk.images.len(),
        walk.skipped,
        col.model
    );
    let held: HashMap<String, String> = items(api, col.id)
        .await?
        .into_iter()
        .map(|i| (i.path, i.sha256))
        .collect();
    let tally = send_all(api, col.id, &walk.images, &held, &args).await?;
    eprintln!("sent: {}", tally.line());
    if args.no_wait {
        eprintln!(
            "not waiting: `lens status {:?}` shows progress, `lens export` the results",
            col.name
        );
        return Ok(summary(&col, &tally, None));
    }
    let col = wait(api, col.id).await?;
    if args.out.is_some() || args.sort_into.is_some() {
        let rows = with_refusals(items(api, col.id).await?, &tally, &col);
        deliver(&args, &walk.images, &rows)?;
    }
    print!("{}", crate::status::describe(&col));
    Ok(summary(&col, &tally, Some(col.counts.failed)))
}

/// `--out` and `--sort-into`.
fn deliver(args: &Args, images: &[Found], rows: &[CollectionItem]) -> Result<()> {
    if let Some(out) = &args.out {
        write_rows(out, rows)?;
        eprintln!("wrote {} rows to {}", rows.len(), out.display());
    }
    if let Some(dir) = &args.sort_into {
        let sources: HashMap<&str, &Path> = images
            .iter()
            .map(|f| (f.rel.as_str(), f.abs.as_path()))
            .collect();
        let how = match (args.copy, args.link) {
            (true, _) => How::Copy,
            (_, true) => How::HardLink,
            _ => How::Symlink,
        };
        let s = sort::sort_into(dir, rows, &sources, how)?;
        eprintln!(
            "sorted into {}: {} placed ({} uncertain), {} failed listed in _failed.txt",
            dir.display(),
            s.placed,
            s.uncertain,
            s.failed
        );
    }
    Ok(())
}

/// Every item of the collection, from its streamed JSON-lines export.
async fn items(api: &Api, id: i64) -> Result<Vec<CollectionItem>> {
    let body = api.export(id, "jsonl").await?.bytes().await?;
    body.split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).context("reading the collection's export"))
        .collect()
}

/// The tally of a send, shown as it grows.
struct Recorder {
    tally: Mutex<Tally>,
    progress: Progress,
}

impl Recorder {
    fn record(&self, change: impl FnOnce(&mut Tally)) {
        let mut t = self.tally.lock().unwrap_or_else(|e| e.into_inner());
        change(&mut t);
        self.progress.set(t.seen(), &t.line());
    }
}

/// Sends every image the collection does not hold yet.
async fn send_all(
    api: &Api,
    id: i64,
    images: &[Found],
    held: &HashMap<String, String>,
    args: &Args,
) -> Result<Tally> {
    let rec = Recorder {
        tally: Mutex::new(Tally::default()),
        progress: Progress::new("sent", images.len() as u64),
    };
    let to_send = stream::iter(images)
        .map(|f| load(f.clone()))
        .buffered(READ_AHEAD)
        .filter_map(|loaded| {
            let keep = match loaded {
                Err(r) => {
                    rec.record(|t| t.refused.push(r));
                    None
                }
                Ok(l) if held.get(&l.rel) == Some(&l.sha) => {
                    rec.record(|t| t.present += 1);
                    None
                }
                Ok(l) => Some(l),
            };
            future::ready(keep)
        })
        .chunks(usize::from(args.batch))
        .map(|batch| send_batch(api, id, batch, &rec))
        .buffer_unordered(usize::from(args.concurrency));
    to_send.try_collect::<Vec<()>>().await?;
    rec.progress.finish();
    Ok(rec.tally.into_inner().unwrap_or_else(|e| e.into_inner()))
}

async fn load(f: Found) -> std::result::Result<Loaded, Refusal> {
    let abs = f.abs.clone();
    let read = tokio::task::spawn_blocking(move || files::load(&abs)).await;
    match read {
        Ok(Ok((bytes, sha))) => Ok(Loaded {
            rel: f.rel,
            bytes,
            sha,
        }),
        Ok(Err(e)) => Err(Refusal {
            rel: f.rel,
            sha: String::new(),
            code: "unreadable".into(),
            message: format!("{}: {e}", f.abs.display()),
        }),
        Err(e) => Err(Refusal {
            rel: f.rel,
            sha: String::new(),
            code: "unreadable".into(),
            message: e.to_string(),
        }),
    }
}

/// One batch, its parts refused by a passing limit sent again until they get through (or
/// [`STUCK_LIMIT`] passes without any getting through).
async fn send_batch(api: &Api, id: i64, mut pending: Vec<Loaded>, rec: &Recorder) -> Result<()> {
    let mut since_progress = Instant::now();
    while !pending.is_empty() {
        let parts: Vec<Part<'_>> = pending
            .iter()
            .map(|l| Part {
                path: &l.rel,
                bytes: &l.bytes,
            })
            .collect();
        let added = api.add_images(id, &parts).await?;
        drop(parts);
        let answered = added.parts.len().min(pending.len());
        let mut again = Vec::new();
        let mut moved = false;
        for (l, part) in pending.drain(..answered).zip(added.parts) {
            let error = part.error.filter(|_| part.outcome == PartOutcome::Refused);
            if let Some(e) = &error {
                if e.code.passes() && since_progress.elapsed() < STUCK_LIMIT {
                    again.push(l);
                    continue;
                }
            }
            moved = true;
            rec.record(|t| match (error, part.outcome) {
                (Some(e), _) => t.refused.push(Refusal {
                    rel: l.rel,
                    sha: l.sha,
                    code: e.code.as_str().to_owned(),
                    message: e.message,
                }),
                (None, PartOutcome::Duplicate) => t.duplicate += 1,
                (None, PartOutcome::Present) => t.present += 1,
                (None, _) => t.queued += 1,
            });
        }
        if moved {
            since_progress = Instant::now();
        }
        // Parts after a cut-off body were not answered: they go again too.
        again.append(&mut pending);
        pending = again;
        if !pending.is_empty() {
            let secs = added.retry_after_seconds.unwrap_or(1).clamp(1, 60);
            tokio::time::sleep(Duration::from_secs(secs)).await;
        }
    }
    Ok(())
}

/// Polls the collection until nothing of it is queued.
async fn wait(api: &Api, id: i64) -> Result<Collection> {
    let mut c = api.collection(id).await?;
    let progress = Progress::new("classified", c.counts.items);
    let mut last = (u64::MAX, Instant::now());
    let mut warned = false;
    loop {
        let n = c.counts;
        let finished = n.items - n.queued;
        progress.set(
            finished,
            &format!(
                "{} done, {} failed, {} duplicates",
                n.done, n.failed, n.duplicate
            ),
        );
        if n.queued == 0 {
            progress.finish();
            return Ok(c);
        }
        if finished != last.0 {
            last = (finished, Instant::now());
        } else if !warned && last.1.elapsed() > Duration::from_secs(60) {
            warned = true;
            progress.note(
                "no result for a minute: is a worker running? Ctrl-C stops waiting; the \
                 collection goes on, and `lens status` shows it",
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        c = api.collection(id).await?;
    }
}

/// The collection's items, and a failed row for each file it refused, in path order.
fn with_refusals(
    items: Vec<CollectionItem>,
    tally: &Tally,
    col: &Collection,
) -> Vec<CollectionItem> {
    let mut rows: BTreeMap<String, CollectionItem> =
        items.into_iter().map(|i| (i.path.clone(), i)).collect();
    for r in &tally.refused {
        rows.entry(r.rel.clone()).or_insert_with(|| CollectionItem {
            path: r.rel.clone(),
            original_file_name: r.rel.rsplit('/').next().unwrap_or(&r.rel).to_owned(),
            sha256: r.sha.clone(),
            state: ItemState::Failed,
            job_id: String::new(),
            error: Some(format!("{}: {}", r.code, r.message)),
            top_label: None,
            top_score: None,
            predictions: None,
            uncertain: false,
            model: col.model.clone(),
            model_version: String::new(),
            finished_at: None,
            feedback: None,
        });
    }
    rows.into_values().collect()
}

fn write_rows(out: &Path, rows: &[CollectionItem]) -> Result<()> {
    let csv = out.extension().is_none_or(|e| e != "jsonl");
    let mut text = String::new();
    if csv {
        text.push_str(export::CSV_HEADER);
        text.push_str("\r\n");
    }
    for r in rows {
        text.push_str(&export::line(r, csv));
    }
    std::fs::write(out, text).with_context(|| format!("writing {}", out.display()))
}

/// The closing lines, and whether any file failed.
fn summary(col: &Collection, tally: &Tally, failed_in_worker: Option<u64>) -> Done {
    let mut by_code: BTreeMap<&str, u64> = BTreeMap::new();
    for r in &tally.refused {
        *by_code.entry(r.code.as_str()).or_default() += 1;
    }
    if !by_code.is_empty() {
        let codes: Vec<String> = by_code.iter().map(|(c, n)| format!("{c} {n}")).collect();
        eprintln!(
            "{} files refused: {}",
            tally.refused.len(),
            codes.join(", ")
        );
    }
    let worker = failed_in_worker.unwrap_or(0);
    if worker > 0 {
        eprintln!(
            "{worker} items failed in the worker: `lens export {:?}` lists them with why",
            col.name
        );
    }
    if tally.refused.is_empty() && worker == 0 {
        Done::Ok
    } else {
        Done::SomeFailed
    }
}
