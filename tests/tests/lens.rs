//! `lens classify` end to end: the real binary against a real api and worker (EfficientNet-
//! Lite0, a private Redis) on a folder of JPEGs, PNGs and WebPs in nested folders, with
//! duplicates, broken images and files that are not images; then, as another user, killed
//! (SIGKILL) at a random point and run again: every file ends up in the collection once,
//! classified once.

#![allow(clippy::unwrap_used)]

use std::collections::{HashMap, HashSet};
use std::io::Cursor;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use api_types::{CollectionItem, ItemState, JobPage};
use rand::Rng;
use test_support::*;

const JPEGS: usize = 120;
const PNGS: usize = 10;
const WEBPS: usize = 10;
const DUPLICATES: usize = 20;
const BROKEN: usize = 10;
const NOT_IMAGES: usize = 10;
/// Files lens sends: everything whose bytes start like an image.
const IMAGES: usize = JPEGS + PNGS + WEBPS + DUPLICATES + BROKEN;

/// The photo's pixels in `format`, one pixel changed to `seed` so every file is new.
fn recoded(pixels: &image::RgbImage, seed: u32, format: image::ImageFormat) -> Vec<u8> {
    let mut img = pixels.clone();
    let b = seed.to_le_bytes();
    img.put_pixel(seed % 100, 7, image::Rgb([b[0], b[1], 255]));
    let mut out = Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut out, format)
        .unwrap();
    out.into_inner()
}

fn write(root: &Path, rel: &str, bytes: &[u8]) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
}

/// The folder: nested JPEGs, PNGs and WebPs, copies of some JPEGs, broken images (truncated,
/// or an image's first bytes followed by garbage) and files that are not images, one of them a
/// text file named `.jpg`.
fn make_folder(root: &Path) {
    let pixels = image::load_from_memory(&grace_hopper()).unwrap().to_rgb8();
    let mut jpegs = Vec::new();
    for i in 0..JPEGS {
        let bytes = unique_photo(&format!("lens-{i}"));
        write(
            root,
            &format!("{}/day{}/IMG_{i:04}.jpg", 2019 + i % 3, i % 5),
            &bytes,
        );
        jpegs.push(bytes);
    }
    for i in 0..PNGS {
        let seed = i as u32;
        write(
            root,
            &format!("scans/scan {i}.png"),
            &recoded(&pixels, seed, image::ImageFormat::Png),
        );
    }
    for i in 0..WEBPS {
        let seed = 1000 + i as u32;
        write(
            root,
            &format!("phone/{i}.webp"),
            &recoded(&pixels, seed, image::ImageFormat::WebP),
        );
    }
    for (i, bytes) in jpegs.iter().take(DUPLICATES).enumerate() {
        write(root, &format!("copies/copy-{i}.jpg"), bytes);
    }
    for i in 0..BROKEN {
        let bytes = if i % 2 == 0 {
            unique_photo(&format!("cut-{i}"))[..600].to_vec()
        } else {
            let mut b = b"\xFF\xD8\xFF\xE0".to_vec();
            b.extend((0..5000u32).map(|k| (k * 31 + i as u32) as u8));
            b
        };
        write(root, &format!("broken/bad-{i}.jpg"), &bytes);
    }
    for i in 0..NOT_IMAGES - 1 {
        write(
            root,
            &format!("notes/note-{i}.txt"),
            format!("note {i}\n").as_bytes(),
        );
    }
    write(
        root,
        "2019/looks-like-a-photo.jpg",
        b"only text, named like a photo\n",
    );
}

fn lens(stack: &Stack, c: &Client, config: &Path) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(binary("lens"));
    cmd.env("LENS_API_URL", stack.api_url())
        .env("LENS_TOKEN", &c.token)
        .env("LENS_CONFIG_DIR", config)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

fn rows(csv_or_jsonl: &str) -> Vec<CollectionItem> {
    csv_or_jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_folder_is_classified_by_lens_and_a_killed_run_resumes() {
    let (stack, alice) = Stack::builder().workers(1).start_with_client().await;
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("photos");
    make_folder(&folder);
    let config = dir.path().join("config");

    let csv = dir.path().join("alice.csv");
    let sorted = dir.path().join("sorted");
    let out = lens(&stack, &alice, &config)
        .args(["classify", "--min-confidence", "0.1", "--out"])
        .arg(&csv)
        .arg("--sort-into")
        .arg(&sorted)
        .arg(&folder)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("alice's run:\n{stderr}");
    assert_eq!(
        out.status.code(),
        Some(1),
        "broken files fail the run: {stderr}"
    );
    assert!(
        stderr.contains(&format!("{} other files skipped", NOT_IMAGES)),
        "{stderr}"
    );
    let text = std::fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1 + IMAGES, "{text}");
    let count = |needle: &str| lines.iter().filter(|l| l.contains(needle)).count();
    assert_eq!(count(",done,"), JPEGS + PNGS + WEBPS, "{text}");
    assert_eq!(count(",duplicate,"), DUPLICATES, "{text}");
    assert_eq!(count(",failed,"), BROKEN, "{text}");
    assert!(lines
        .iter()
        .filter(|l| l.starts_with("broken/"))
        .all(|l| l.contains(",failed,")));
    assert_eq!(
        count(",academic gown,"),
        JPEGS + PNGS + WEBPS + DUPLICATES,
        "{text}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("phone/3.webp,3.webp,")),
        "{text}"
    );
    // Sorted by class: links to the originals, the failures listed.
    let link = sorted.join("academic gown/2019/day0/IMG_0000.jpg");
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(
        std::fs::read(&link).unwrap(),
        std::fs::read(folder.join("2019/day0/IMG_0000.jpg")).unwrap()
    );
    let failed = std::fs::read_to_string(sorted.join("_failed.txt")).unwrap();
    assert_eq!(failed.lines().count(), BROKEN, "{failed}");
    assert!(failed.lines().all(|l| l.starts_with("broken/")), "{failed}");

    // Bob's run is killed part-way, then run again to the end.
    let bob = Client::register(stack.api_url()).await;
    let mut first = lens(&stack, &bob, &config)
        .args(["classify", "--batch", "8", "--collection", "bob"])
        .arg(&folder)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let kill_after = Duration::from_millis(rand::thread_rng().gen_range(300..4000));
    tokio::time::sleep(kill_after).await;
    first.start_kill().unwrap();
    first.wait().await.unwrap();

    let jsonl = dir.path().join("bob.jsonl");
    let out = lens(&stack, &bob, &config)
        .args(["classify", "--batch", "8", "--collection", "bob", "--out"])
        .arg(&jsonl)
        .arg(&folder)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("bob's second run, the first killed after {kill_after:?}:\n{stderr}");
    assert_eq!(
        out.status.code(),
        Some(1),
        "killed after {kill_after:?}: {stderr}"
    );
    let items = rows(&std::fs::read_to_string(&jsonl).unwrap());
    let paths: HashSet<&str> = items.iter().map(|i| i.path.as_str()).collect();
    assert_eq!(
        (items.len(), paths.len()),
        (IMAGES, IMAGES),
        "killed after {kill_after:?}"
    );
    let mut states: HashMap<&str, usize> = HashMap::new();
    for i in &items {
        *states.entry(i.state.as_str()).or_default() += 1;
    }
    assert_eq!(
        states.get("done"),
        Some(&(JPEGS + PNGS + WEBPS)),
        "{states:?}"
    );
    assert_eq!(states.get("duplicate"), Some(&DUPLICATES), "{states:?}");

    // Classified once each: one job per distinct content, and the history holds exactly those.
    let own: Vec<&CollectionItem> = items
        .iter()
        .filter(|i| i.state != ItemState::Duplicate && !i.job_id.is_empty())
        .collect();
    let jobs: HashSet<&str> = own.iter().map(|i| i.job_id.as_str()).collect();
    let shas: HashSet<&str> = own.iter().map(|i| i.sha256.as_str()).collect();
    assert_eq!(jobs.len(), own.len(), "a job id shared by two items");
    assert_eq!(shas.len(), own.len(), "the same bytes classified twice");
    let history: JobPage = bob.get_ok("/predictions?per_page=1").await;
    assert_eq!(
        history.total as usize,
        own.len(),
        "killed after {kill_after:?}"
    );
}
