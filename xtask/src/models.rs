//! `cargo xtask models fetch|verify` (`make model`, the worker image's build): makes the registry's models available and
//! proves they are the right files. `fetch` downloads what has a URL into the models folder;
//! both then check every file the worker would read: size and SHA-256 against the registry,
//! then a load in ONNX Runtime whose input/output names and shapes must match the registry.
//! One line per model says `ok`, `missing` (and why) or where it is served from instead.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::{TensorElementType, ValueType};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use shared::config::default_models_dir;
use shared::ModelSpec;

use worker::config::WorkerConfig;

/// `cargo xtask models ...`: the subcommand and the worker settings that say which models
/// and where (`MODELS`, `MODELS_DIR`, `MODEL_REGISTRY`, `ORT_DYLIB_PATH`).
#[derive(Debug, Clone, Args)]
pub struct ModelsArgs {
    /// `fetch` or `verify`.
    #[arg(value_enum)]
    pub cmd: ModelsCommand,
    #[command(flatten)]
    pub worker: WorkerConfig,
}

/// What `cargo xtask models` does.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ModelsCommand {
    /// Download the models that have a URL and are missing or wrong, then verify every one.
    Fetch,
    /// Verify the models the worker would read, without downloading anything.
    Verify,
}

/// What became of one model.
#[derive(Debug, PartialEq, Eq)]
enum Status {
    Ok,
    Missing,
    Invalid,
}

/// Runs the subcommand; an error when a model named in `MODELS` is not usable, when a file
/// present is not the registry's, or when no servable model is left at all.
pub async fn run(args: ModelsArgs) -> anyhow::Result<()> {
    let (cfg, cmd) = (&args.worker, args.cmd);
    let registry = cfg.common.registry()?;
    let registry_dir = cfg.common.registry_dir();
    let requested = cfg.listed_models();
    let mut failed = Vec::new();
    for unknown in requested
        .iter()
        .filter(|m| !registry.models.contains_key(*m))
    {
        println!(
            "model {unknown}: not in {} (known: {})",
            cfg.common.registry_path().display(),
            registry.names().join(", ")
        );
        failed.push(unknown.clone());
    }
    let names: Vec<String> = if requested.is_empty() {
        registry.names()
    } else {
        requested
            .iter()
            .filter(|m| registry.models.contains_key(*m))
            .cloned()
            .collect()
    };

    // Downloads go where the user keeps models: MODELS_DIR, else `models/` of the checkout.
    let target = cfg
        .common
        .models_dir
        .clone()
        .unwrap_or_else(|| registry_dir.clone());
    let target = target.canonicalize().unwrap_or(target);
    let mut fetch_notes = std::collections::HashMap::new();
    if matches!(cmd, ModelsCommand::Fetch) {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(15))
            .build()?;
        for name in &names {
            let spec = registry.get(name)?;
            if let Some(note) = fetch_one(&client, name, spec, &target).await {
                fetch_notes.insert(name.clone(), note);
            }
        }
    }

    // Then check what the worker will read: resolved afresh, since a download may have put
    // the default model in place and so ended a fallback.
    let read_dir = match &cfg.common.models_dir {
        Some(dir) => shared::config::ModelsDir {
            path: dir.clone(),
            fallback_reason: None,
        },
        None => default_models_dir(&registry_dir, Some(&registry)),
    };
    if let Some(why) = &read_dir.fallback_reason {
        println!("models: {why}");
    }
    let env = worker::model::init_runtime(cfg.ort_dylib_path.as_deref())?;
    let env = std::sync::Arc::new(env);
    let mut servable = 0;
    for name in &names {
        let spec = registry.get(name)?.clone();
        let labels = registry
            .labels(name, &read_dir.path, &registry_dir)
            .map(|l| l.len());
        let path = read_dir.path.join(&spec.file);
        let fallback = read_dir.fallback_reason.is_some().then(|| target.clone());
        let note = fetch_notes.remove(name);
        let env = env.clone();
        let (status, line) = tokio::task::spawn_blocking(move || {
            describe(
                &env,
                &spec,
                &path,
                labels,
                fallback.as_deref(),
                note.as_deref(),
            )
        })
        .await
        .context("model verification panicked")?;
        println!("model {name}: {line}");
        let explicitly = requested.contains(name);
        match status {
            Status::Ok if !registry.get(name)?.benchmark_only => servable += 1,
            Status::Ok => {}
            Status::Invalid => failed.push(name.clone()),
            Status::Missing if explicitly => failed.push(name.clone()),
            Status::Missing => {}
        }
    }
    anyhow::ensure!(
        failed.is_empty(),
        "not usable: {} (see the lines above)",
        failed.join(", ")
    );
    anyhow::ensure!(
        servable > 0 || !requested.is_empty(),
        "no servable model in {}: the worker would not start (see the lines above)",
        read_dir.path.display()
    );
    Ok(())
}

/// The verdict line of one model whose file should be at `path`; `primary` is the folder
/// the file would normally be in when `path` is in the `../shared/models` fallback.
fn describe(
    env: &ort::environment::Environment,
    spec: &ModelSpec,
    path: &Path,
    labels: Result<usize, shared::registry::RegistryError>,
    primary: Option<&Path>,
    fetch_note: Option<&str>,
) -> (Status, String) {
    let read = path
        .parent()
        .unwrap_or(Path::new("."))
        .display()
        .to_string();
    let home = primary.map_or_else(|| read.clone(), |p| p.display().to_string());
    let note = fetch_note.map(|n| format!(" ({n})")).unwrap_or_default();
    if !path.is_file() {
        let where_ = match primary {
            Some(p) => format!("in neither {} nor {read}", p.display()),
            None => format!("not in {read}"),
        };
        let how = match &spec.url {
            Some(_) if fetch_note.is_some() => {
                format!("download it into {home} by hand or set MODELS_DIR to a folder holding it")
            }
            Some(_) => format!("`make model` (cargo xtask models fetch) downloads it into {home}"),
            None => format!(
                "it has no download URL: copy it into {home} or set MODELS_DIR to a folder holding it"
            ),
        };
        return (
            Status::Missing,
            format!("missing: {} is {where_}{note}; {how}", spec.file),
        );
    }
    let labels = match labels {
        Ok(n) => n,
        Err(e) => return (Status::Invalid, format!("invalid: {e}")),
    };
    match verify_file(env, spec, path, labels) {
        Ok(how) => {
            let whence = if primary.is_some() {
                "served from the ../shared/models fallback, "
            } else {
                ""
            };
            (
                Status::Ok,
                format!("ok ({whence}{}, {how}){note}", path.display()),
            )
        }
        Err(why) => (
            Status::Invalid,
            format!(
                "invalid: {} is not the registry's file: {why}{note}; replace it (`make model` downloads the models that have a URL)",
                path.display()
            ),
        ),
    }
}

/// Downloads `spec` into `dir` when it has a URL and the file there is missing or wrong.
/// Returns a note for the model's line when something was attempted.
async fn fetch_one(
    client: &reqwest::Client,
    name: &str,
    spec: &ModelSpec,
    dir: &Path,
) -> Option<String> {
    let url = spec.url.as_deref()?;
    let path = dir.join(&spec.file);
    if path.is_file() {
        let (p, s) = (path.clone(), spec.clone());
        let intact = tokio::task::spawn_blocking(move || check_bytes(&s, &p))
            .await
            .ok()?;
        if intact.is_ok() {
            return None;
        }
    }
    let tmp = dir.join(format!(".{}.part-{}", spec.file, std::process::id()));
    let result = download(client, url, dir, &tmp).await;
    let result = match result {
        Ok(()) => {
            let (t, s) = (tmp.clone(), spec.clone());
            match tokio::task::spawn_blocking(move || check_bytes(&s, &t)).await {
                Ok(Ok(_)) => std::fs::rename(&tmp, &path)
                    .map(|()| format!("downloaded from {url}"))
                    .map_err(|e| format!("cannot move it into place: {e}")),
                Ok(Err(why)) => Err(format!(
                    "the file downloaded from {url} was rejected: {why}"
                )),
                Err(e) => Err(format!("verification panicked: {e}")),
            }
        }
        Err(e) => Err(format!("download from {url} failed: {e:#}")),
    };
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    tracing::debug!(model = name, ?result, "fetch");
    Some(result.unwrap_or_else(|e| e))
}

/// Streams `url` into `tmp` (in `dir`, so the final rename stays on one file system).
async fn download(
    client: &reqwest::Client,
    url: &str,
    dir: &Path,
    tmp: &Path,
) -> anyhow::Result<()> {
    tokio::fs::create_dir_all(dir)
        .await
        .with_context(|| format!("cannot create {}", dir.display()))?;
    // The URL is already in the model's line: keep it out of the error text.
    let mut resp = client
        .get(url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(reqwest::Error::without_url)?;
    let mut file = tokio::fs::File::create(tmp)
        .await
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    while let Some(chunk) = resp.chunk().await.map_err(reqwest::Error::without_url)? {
        file.write_all(&chunk).await?;
    }
    file.flush().await?;
    Ok(())
}

/// Size and SHA-256 against the registry; what was checked, or why the file is wrong.
fn check_bytes(spec: &ModelSpec, path: &Path) -> Result<String, String> {
    let actual = std::fs::metadata(path)
        .map_err(|e| format!("cannot read it: {e}"))?
        .len();
    if let Some(size) = spec.size {
        if actual != size {
            return Err(format!(
                "its size is {actual} bytes, the registry says {size}"
            ));
        }
    }
    let Some(want) = &spec.sha256 else {
        return Ok(format!("{actual} bytes, no checksum in the registry"));
    };
    let got = sha256_file(path).map_err(|e| format!("cannot read it: {e}"))?;
    if !got.eq_ignore_ascii_case(want) {
        return Err(format!("its sha256 is {got}, the registry says {want}"));
    }
    Ok(format!("{actual} bytes, sha256 matches"))
}

/// Hex SHA-256 of a file, read in chunks (models are up to ~100 MB).
fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher)?;
    Ok(hex::encode(hasher.finalize()))
}

/// Bytes, then graph: the whole proof that `path` is the registry's model.
fn verify_file(
    env: &ort::environment::Environment,
    spec: &ModelSpec,
    path: &Path,
    classes: usize,
) -> Result<String, String> {
    let bytes = check_bytes(spec, path)?;
    check_graph(env, spec, path, classes)?;
    Ok(format!(
        "{bytes}, graph {} -> {} as registered",
        spec.input_name, spec.output_name
    ))
}

/// The graph's input or output named `name`, or an error listing the names it has.
fn outlet<'a>(
    outlets: &'a [ort::value::Outlet],
    name: &str,
    what: &str,
) -> Result<&'a ort::value::Outlet, String> {
    outlets.iter().find(|o| o.name() == name).ok_or_else(|| {
        let names: Vec<&str> = outlets.iter().map(|o| o.name()).collect();
        format!("its graph has no {what} `{name}` ({what}s: {names:?})")
    })
}

/// Loads the file in ONNX Runtime and compares its input and output with the registry:
/// input `[N, 3, S, S]` float32, output `[N, classes]` (`-1` stands for a dynamic dimension).
fn check_graph(
    env: &ort::environment::Environment,
    spec: &ModelSpec,
    path: &Path,
    classes: usize,
) -> Result<(), String> {
    let session = Session::builder(env)
        .and_then(|b| {
            // Only the graph's interface matters here: skip the slow optimisation passes.
            b.with_optimization_level(GraphOptimizationLevel::Disable)
                .map_err(Into::into)
        })
        .and_then(|b| b.with_intra_threads(1).map_err(Into::into))
        .and_then(|mut b| b.commit_from_file(path))
        .map_err(|e| format!("ONNX Runtime cannot load it ({e})"))?;
    let input = outlet(session.inputs(), &spec.input_name, "input")?;
    let output = outlet(session.outputs(), &spec.output_name, "output")?;
    let side = i64::from(spec.input_size);
    let want_in = [-1, 3, side, side];
    check_shape("input", &spec.input_name, input.dtype(), &want_in)?;
    let want_out = [-1, classes as i64];
    check_shape("output", &spec.output_name, output.dtype(), &want_out)
}

/// A tensor of float32 whose dimensions equal `want`, where `-1` on either side matches any.
fn check_shape(kind: &str, name: &str, dtype: &ValueType, want: &[i64]) -> Result<(), String> {
    let (Some(shape), Some(ty)) = (dtype.tensor_shape(), dtype.tensor_type()) else {
        return Err(format!("{kind} `{name}` is not a tensor"));
    };
    if ty != TensorElementType::Float32 {
        return Err(format!("{kind} `{name}` holds {ty:?}, expected float32"));
    }
    let fits = shape.len() == want.len()
        && shape
            .iter()
            .zip(want)
            .all(|(&got, &w)| got == w || got < 0 || w < 0);
    if !fits {
        let want: Vec<String> = want
            .iter()
            .map(|d| {
                if *d < 0 {
                    "N".to_owned()
                } else {
                    d.to_string()
                }
            })
            .collect();
        return Err(format!(
            "{kind} `{name}` has shape {shape:?}, expected [{}]",
            want.join(", ")
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::Registry;

    fn spec(size: Option<u64>, sha256: Option<&str>) -> ModelSpec {
        let reg =
            Registry::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/registry.toml"))
                .expect("registry");
        let mut s = reg.get("efficientnet-lite0").expect("entry").clone();
        s.size = size;
        s.sha256 = sha256.map(str::to_owned);
        s
    }

    #[test]
    fn bytes_are_checked_by_size_then_sha256() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("m.onnx");
        std::fs::write(&path, b"abc").expect("write");
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert!(check_bytes(&spec(Some(3), Some(abc)), &path).is_ok());
        let err = check_bytes(&spec(Some(4), Some(abc)), &path).expect_err("size");
        assert!(err.contains("3 bytes") && err.contains('4'), "{err}");
        let err = check_bytes(&spec(None, Some(&"0".repeat(64))), &path).expect_err("hash");
        assert!(err.contains(abc), "{err}");
    }

    #[test]
    fn shapes_match_with_dynamic_dimensions() {
        let t = |dims: &[i64]| ValueType::Tensor {
            ty: TensorElementType::Float32,
            shape: ort::value::Shape::new(dims.iter().copied()),
            dimension_symbols: ort::value::SymbolicDimensions::new(vec![String::new(); dims.len()]),
        };
        assert!(check_shape("input", "x", &t(&[-1, 3, 224, 224]), &[-1, 3, 224, 224]).is_ok());
        assert!(check_shape("input", "x", &t(&[1, 3, 224, 224]), &[-1, 3, 224, 224]).is_ok());
        let err = check_shape("input", "x", &t(&[1, 3, 299, 299]), &[-1, 3, 224, 224])
            .expect_err("wrong side");
        assert!(err.contains("[N, 3, 224, 224]"), "{err}");
        assert!(check_shape("output", "y", &t(&[1, 1001]), &[-1, 1000]).is_err());
    }

    /// The shipped EfficientNet-Lite0 in ../shared/models passes; the same file under a
    /// registry entry naming another input is rejected with the graph's real names.
    #[test]
    fn graph_check_loads_the_model_in_onnx_runtime() {
        let file = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/models/efficientnet-lite0.onnx");
        assert!(file.is_file(), "{} is missing", file.display());
        let env = worker::model::init_runtime(None).expect("ONNX Runtime (make ort)");
        let good = spec(None, None);
        check_graph(&env, &good, &file, 1000).expect("the shipped model matches its entry");
        let mut bad = good.clone();
        bad.input_name = "data".into();
        let err = check_graph(&env, &bad, &file, 1000).expect_err("wrong input name");
        assert!(
            err.contains("no input `data`") && err.contains("input"),
            "{err}"
        );
        let err = check_graph(&env, &good, &file, 1001).expect_err("wrong class count");
        assert!(err.contains("[N, 1001]"), "{err}");
    }
}
