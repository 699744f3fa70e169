//! Where things are: the checkout, `../shared` beside it, the built binaries.

use std::path::PathBuf;

/// The repository root.
pub fn repo() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent().map(PathBuf::from).unwrap_or(here)
}

/// `../shared` beside the checkout (models and test images).
pub fn shared_dir() -> PathBuf {
    repo().join("../shared")
}

/// The folder of the built binaries: `BIN_DIR` (relative to the checkout) or `target/debug`.
pub fn bin_dir() -> PathBuf {
    std::env::var("BIN_DIR")
        .map(|d| repo().join(d))
        .unwrap_or_else(|_| repo().join("target/debug"))
}

/// A built binary of the workspace (`cargo build --workspace` makes them).
#[track_caller]
pub fn binary(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.is_file(),
        "{} is missing: run `cargo build --workspace` first",
        p.display()
    );
    p
}

/// A built binary of the workspace, or an error saying how to build it.
pub fn binary_path(name: &str) -> anyhow::Result<PathBuf> {
    let p = bin_dir().join(name);
    anyhow::ensure!(
        p.is_file(),
        "{} is missing: run `cargo build --workspace` first",
        p.display()
    );
    Ok(p)
}
