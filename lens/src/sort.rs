//! `--sort-into DIR`: the folder again, one sub-folder per top-1 class: `DIR/<class>/<path>`,
//! uncertain answers under `DIR/_uncertain/<path>`, and failures listed in `DIR/_failed.txt`.
//! Entries are symbolic links to the originals unless `--copy` or `--link` (hard links) asks
//! otherwise; running it again replaces what it made before.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use api_types::{CollectionItem, ItemState};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    Symlink,
    Copy,
    HardLink,
}

/// What sorting made.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Sorted {
    pub placed: u64,
    pub uncertain: u64,
    pub failed: u64,
}

/// Sorts `items` (the ones `sources` names: the files of this run) into `dir`.
pub fn sort_into(
    dir: &Path,
    items: &[CollectionItem],
    sources: &HashMap<&str, &Path>,
    how: How,
) -> Result<Sorted> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut sorted = Sorted::default();
    let mut failed = Vec::new();
    for item in items {
        let Some(src) = sources.get(item.path.as_str()) else {
            continue;
        };
        let class = match (&item.state, &item.top_label) {
            (ItemState::Failed, _) | (_, None) => {
                let why = item.error.as_deref().unwrap_or(item.state.as_str());
                failed.push(format!(
                    "{}\t{}\n",
                    item.path,
                    why.replace(['\n', '\t'], " ")
                ));
                sorted.failed += 1;
                continue;
            }
            _ if item.uncertain => {
                sorted.uncertain += 1;
                "_uncertain".to_owned()
            }
            (_, Some(label)) => folder_name(label),
        };
        let target: PathBuf = dir.join(class).join(&item.path);
        place(src, &target, how)?;
        sorted.placed += 1;
    }
    let list = dir.join("_failed.txt");
    let mut f = fs::File::create(&list).with_context(|| format!("writing {}", list.display()))?;
    f.write_all(failed.concat().as_bytes())?;
    Ok(sorted)
}

/// A class name as one folder name: no separators, no leading dot or underscore (those
/// name lens's own folders).
fn folder_name(label: &str) -> String {
    let clean: String = label
        .chars()
        .map(|c| {
            if c == '/' || c == '\\' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    let clean = clean.trim_start_matches(['.', '_']).trim();
    if clean.is_empty() {
        "unnamed".to_owned()
    } else {
        clean.to_owned()
    }
}

fn place(src: &Path, target: &Path, how: How) -> Result<()> {
    if let Some(parent) = target.parent() {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    if fs::symlink_metadata(target).is_ok() {
        fs::remove_file(target).with_context(|| format!("replacing {}", target.display()))?;
    }
    let made = match how {
        How::Symlink => {
            let abs = fs::canonicalize(src).with_context(|| format!("{}", src.display()))?;
            std::os::unix::fs::symlink(abs, target)
        }
        How::Copy => fs::copy(src, target).map(drop),
        How::HardLink => fs::hard_link(src, target),
    };
    made.with_context(|| format!("placing {} at {}", src.display(), target.display()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn item(path: &str, state: ItemState, label: Option<&str>, uncertain: bool) -> CollectionItem {
        CollectionItem {
            path: path.into(),
            original_file_name: path.rsplit('/').next().unwrap().into(),
            sha256: String::new(),
            state,
            job_id: String::new(),
            error: (state == ItemState::Failed).then(|| "invalid_image".into()),
            top_label: label.map(Into::into),
            top_score: None,
            predictions: None,
            uncertain,
            model: "m".into(),
            model_version: "v".into(),
            finished_at: None,
            feedback: None,
        }
    }

    #[test]
    fn classes_become_folders_and_failures_a_list() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("a.jpg");
        fs::write(&src, b"x").unwrap();
        let items = [
            item(
                "trip/a.jpg",
                ItemState::Done,
                Some("tabby, tabby cat"),
                false,
            ),
            item("b.jpg", ItemState::Done, Some("../up"), true),
            item("c.jpg", ItemState::Failed, None, false),
            item("elsewhere.jpg", ItemState::Done, Some("dog"), false),
        ];
        let sources: HashMap<&str, &Path> = [
            ("trip/a.jpg", src.as_path()),
            ("b.jpg", src.as_path()),
            ("c.jpg", src.as_path()),
        ]
        .into();
        let out = dir.path().join("sorted");
        for _ in 0..2 {
            let s = sort_into(&out, &items, &sources, How::Symlink).unwrap();
            assert_eq!(
                s,
                Sorted {
                    placed: 2,
                    uncertain: 1,
                    failed: 1
                }
            );
        }
        assert!(
            fs::symlink_metadata(out.join("tabby, tabby cat/trip/a.jpg"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(fs::read(out.join("_uncertain/b.jpg")).unwrap(), b"x");
        assert_eq!(
            fs::read_to_string(out.join("_failed.txt")).unwrap(),
            "c.jpg\tinvalid_image\n"
        );
        assert!(!out.join("dog").exists());
        assert_eq!(folder_name("../up"), "up");
    }
}
