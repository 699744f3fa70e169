//! `lens status` and `lens export`: a collection read back.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use api_types::Collection;
use futures::StreamExt;

use crate::api::Api;
use crate::Done;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A collection's name; without one, every collection of yours.
    pub name: Option<String>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    Csv,
    Jsonl,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Jsonl => "jsonl",
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// The collection's name.
    pub name: String,
    #[arg(long, value_enum, default_value_t = Format::Csv)]
    pub format: Format,
    /// Write to this file instead of standard output.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

/// The caller's collection `name`, or an error that lists what there is.
pub async fn named(api: &Api, name: &str) -> Result<Collection> {
    let all = api.collections().await?;
    if let Some(c) = all.iter().find(|c| c.name == name) {
        return Ok(c.clone());
    }
    let names: Vec<_> = all.iter().map(|c| c.name.as_str()).collect();
    anyhow::bail!(
        "you have no collection called {name:?} (you have: {})",
        if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        }
    )
}

pub async fn status(api: &Api, args: Args) -> Result<Done> {
    let Some(name) = args.name else {
        println!(
            "{:<32} {:>8} {:>8} {:>8} {:>8}  created",
            "name", "items", "done", "failed", "queued"
        );
        for c in api.collections().await? {
            let n = &c.counts;
            println!(
                "{:<32} {:>8} {:>8} {:>8} {:>8}  {}",
                c.name, n.items, n.done, n.failed, n.queued, c.created_at
            );
        }
        return Ok(Done::Ok);
    };
    let c = api.collection(named(api, &name).await?.id).await?;
    print!("{}", describe(&c));
    Ok(Done::Ok)
}

/// A collection for people: counts, rate and ETA, and its ten most frequent classes.
pub fn describe(c: &Collection) -> String {
    let n = &c.counts;
    let mut out = format!(
        "{} (model {}, top {}, uncertain below {:.2})\n  {} items: {} done ({} uncertain), {} failed, {} duplicates, {} queued\n",
        c.name, c.model, c.top_k, c.min_confidence, n.items, n.done, n.uncertain, n.failed, n.duplicate, n.queued
    );
    if let Some(rate) = c.images_per_second {
        out.push_str(&format!("  {rate:.1} images/s"));
        if let Some(eta) = c.eta_seconds {
            out.push_str(&format!(", about {eta:.0} s to go"));
        }
        out.push('\n');
    }
    for l in c.histogram.iter().flatten().take(10) {
        out.push_str(&format!("  {:>7}  {}\n", l.count, l.label));
    }
    out
}

pub async fn export(api: &Api, args: ExportArgs) -> Result<Done> {
    let c = named(api, &args.name).await?;
    let mut body = api.export(c.id, args.format.as_str()).await?.bytes_stream();
    let mut out: Box<dyn Write> = match &args.output {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => Box::new(std::io::stdout().lock()),
    };
    while let Some(chunk) = body.next().await {
        out.write_all(&chunk.context("the export stopped part-way")?)?;
    }
    out.flush()?;
    Ok(Done::Ok)
}
