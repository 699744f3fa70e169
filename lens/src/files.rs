//! The images under the folders (or files) named on the command line, each with the path the
//! collection knows it by. A file is an image when its first bytes say so (JPEG, PNG, GIF,
//! WebP, BMP), whatever its name; the others are counted and left alone.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use sha2::{Digest, Sha256};

/// One image found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// `/`-separated, relative to its root (with several roots, under the root's name).
    pub rel: String,
    pub abs: PathBuf,
}

/// What a walk found.
#[derive(Debug, Default)]
pub struct Walk {
    /// Images, in path order.
    pub images: Vec<Found>,
    /// Files that are not images.
    pub skipped: u64,
    /// Files or folders that could not be read, with why.
    pub unreadable: Vec<(PathBuf, String)>,
}

/// Walks `roots` (following links). One folder: paths relative to it; several: each under its
/// own name; a file: its file name.
pub fn walk(roots: &[PathBuf]) -> Result<Walk> {
    let mut found = BTreeMap::new();
    let mut walk = Walk::default();
    for root in roots {
        let prefix = match (roots.len(), root.is_dir()) {
            (1, true) => String::new(),
            _ => format!("{}/", name(root)),
        };
        for entry in walkdir::WalkDir::new(root).follow_links(true) {
            let entry = match entry {
                Ok(e) if e.file_type().is_file() => e,
                Ok(_) => continue,
                Err(e) => {
                    let path = e.path().unwrap_or(root).to_owned();
                    walk.unreadable.push((path, e.to_string()));
                    continue;
                }
            };
            match is_image(entry.path()) {
                Ok(true) => {}
                Ok(false) => {
                    walk.skipped += 1;
                    continue;
                }
                Err(e) => {
                    walk.unreadable
                        .push((entry.path().to_owned(), e.to_string()));
                    continue;
                }
            }
            let rel = if root.is_dir() {
                let inner = entry.path().strip_prefix(root).unwrap_or(entry.path());
                format!("{prefix}{}", slashed(inner))
            } else {
                name(root)
            };
            if let Some(other) = found.insert(rel.clone(), entry.path().to_owned()) {
                bail!(
                    "{} and {} would both be {rel} in the collection: name folders apart",
                    other.display(),
                    entry.path().display()
                );
            }
        }
    }
    walk.images = found
        .into_iter()
        .map(|(rel, abs)| Found { rel, abs })
        .collect();
    Ok(walk)
}

/// The last component of `path` (of its absolute form for `.` and the like).
pub fn name(path: &Path) -> String {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let abs = abs.components().collect::<PathBuf>();
    abs.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "photos".to_owned())
}

fn slashed(p: &Path) -> String {
    p.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

fn is_image(path: &Path) -> std::io::Result<bool> {
    let mut head = [0u8; 12];
    let mut f = File::open(path)?;
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(sniff(&head[..n]))
}

/// Whether `head` (a file's first 12 bytes) starts an image type the service accepts.
pub fn sniff(head: &[u8]) -> bool {
    head.starts_with(&[0xFF, 0xD8, 0xFF])
        || head.starts_with(b"\x89PNG\r\n\x1a\n")
        || head.starts_with(b"GIF87a")
        || head.starts_with(b"GIF89a")
        || (head.starts_with(b"RIFF") && head.get(8..12) == Some(b"WEBP"))
        || head.starts_with(b"BM")
}

/// The file's bytes and their SHA-256 (hex), from one read.
pub fn load(path: &Path) -> std::io::Result<(Vec<u8>, String)> {
    let bytes = std::fs::read(path)?;
    let sha = hex::encode(Sha256::digest(&bytes));
    Ok((bytes, sha))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn images_are_found_by_their_bytes_with_paths_relative_to_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("shoot");
        std::fs::create_dir_all(root.join("2019/beach")).unwrap();
        std::fs::write(root.join("2019/beach/a.jpg"), b"\xFF\xD8\xFF\xE0rest").unwrap();
        std::fs::write(root.join("b.png"), b"\x89PNG\r\n\x1a\nrest").unwrap();
        std::fs::write(root.join("notes.jpg"), b"just text").unwrap();
        std::fs::write(root.join("empty.jpg"), b"").unwrap();

        let w = walk(std::slice::from_ref(&root)).unwrap();
        let rels: Vec<_> = w.images.iter().map(|f| f.rel.as_str()).collect();
        assert_eq!(rels, ["2019/beach/a.jpg", "b.png"]);
        assert_eq!(w.skipped, 2);

        let both = walk(&[root.clone(), root.join("b.png")]).unwrap();
        let rels: Vec<_> = both.images.iter().map(|f| f.rel.as_str()).collect();
        assert_eq!(rels, ["b.png", "shoot/2019/beach/a.jpg", "shoot/b.png"]);

        let file = walk(&[root.join("b.png")]).unwrap();
        assert_eq!(file.images[0].rel, "b.png");
    }

    #[test]
    fn two_roots_with_one_name_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for side in ["x/photos", "y/photos"] {
            std::fs::create_dir_all(dir.path().join(side)).unwrap();
            std::fs::write(dir.path().join(side).join("a.gif"), b"GIF89a....").unwrap();
        }
        let roots = [dir.path().join("x/photos"), dir.path().join("y/photos")];
        assert!(walk(&roots).is_err());
    }

    #[test]
    fn webp_needs_its_form_type() {
        assert!(sniff(b"RIFF\0\0\0\0WEBPVP8 "));
        assert!(!sniff(b"RIFF\0\0\0\0WAVEfmt "));
        assert!(!sniff(b"\xFF\xD8"));
    }
}
