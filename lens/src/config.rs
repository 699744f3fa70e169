//! The saved login: `config.json` in `$LENS_CONFIG_DIR`, else `$XDG_CONFIG_HOME/lens`, else
//! `~/.config/lens`. The folder is 0700 and the file 0600 (it holds a bearer token), written
//! to a temporary file and renamed, so a crash never leaves half a file.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::PathBuf;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// Where the API listens when nothing says otherwise (the compose stack's published port).
pub const DEFAULT_API_URL: &str = "http://127.0.0.1:8000";

/// What `lens login` keeps.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Saved {
    pub api_url: Option<String>,
    pub token: Option<String>,
}

fn dir() -> Result<PathBuf> {
    let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(d) = var("LENS_CONFIG_DIR") {
        return Ok(d.into());
    }
    if let Some(d) = var("XDG_CONFIG_HOME") {
        return Ok(PathBuf::from(d).join("lens"));
    }
    let home = var("HOME").context("neither LENS_CONFIG_DIR nor HOME is set")?;
    Ok(PathBuf::from(home).join(".config/lens"))
}

/// The saved login; empty when there is none.
pub fn load() -> Result<Saved> {
    let path = dir()?.join("config.json");
    match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not lens's config", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Saved::default()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

pub fn save(saved: &Saved) -> Result<()> {
    let dir = dir()?;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    let tmp = dir.join(".config.json.tmp");
    let _ = fs::remove_file(&tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(&serde_json::to_vec_pretty(saved)?)?;
    f.sync_all()?;
    fs::rename(&tmp, dir.join("config.json"))
        .with_context(|| format!("saving {}", dir.join("config.json").display()))
}
