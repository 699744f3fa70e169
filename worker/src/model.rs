//! Loaded models: per model an [`Executor`] of ONNX Runtime sessions (a pool of one-thread
//! sessions plus an all-cores one), created once at start-up, plus the full classify path
//! (decode -> preprocess -> run -> softmax -> top-k). Everything here is blocking; callers run
//! it off the async runtime.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use fast_image_resize::Resizer;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::TensorRef;

use shared::queue::JobInput;
use shared::registry::OutputKind;
use shared::{JobResult, ModelSpec, Prediction, Registry};

use crate::executor::{Choice, ExecError, Executor, Held, Pool, SessionCounts};
use shared::upload::{DecodeLimits, ImageError};

/// Longest side of the thumbnails kept with the history: twice the 160 CSS px the UI shows
/// them at, so they stay sharp on 2x screens.
pub const THUMB_SIDE: u32 = 320;

/// Loads the ONNX Runtime shared library once per process. The path comes from
/// `ORT_DYLIB_PATH`, else the project's own install (`.ort/` in the checkout, found from the
/// working directory or the executable), so nobody has to export anything by hand.
pub fn init_runtime(explicit: Option<&Path>) -> anyhow::Result<ort::environment::Environment> {
    let path = match explicit {
        Some(p) => p.to_owned(),
        None => find_runtime().context(
            "libonnxruntime.so not found: run `make ort` (scripts/install-ort.sh) or set ORT_DYLIB_PATH",
        )?,
    };
    let builder = ort::init_from(&path)
        .map_err(|e| anyhow::anyhow!("cannot load ONNX Runtime from {}: {e}", path.display()))?;
    builder
        .with_name("worker")
        .build()
        .map_err(|e| anyhow::anyhow!("cannot create the ONNX Runtime environment: {e}"))
}

fn find_runtime() -> Option<PathBuf> {
    let rel = Path::new(".ort").join("libonnxruntime.so");
    let mut dirs: Vec<PathBuf> = std::env::current_dir().ok().into_iter().collect();
    if let Ok(exe) = std::env::current_exe() {
        dirs.extend(exe.ancestors().skip(1).map(Path::to_owned));
    }
    dirs.into_iter().map(|d| d.join(&rel)).find(|p| p.is_file())
}

/// One model ready to classify.
pub struct Model {
    pub name: String,
    pub spec: ModelSpec,
    labels: Vec<String>,
    exec: Executor<Session>,
}

/// How many sessions of a model, with how many threads, under how many CPU permits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// One-thread sessions used in parallel (0: none).
    pub narrow: usize,
    /// Threads of the all-cores session (0 or 1: no such session; the pool serves alone).
    pub wide_threads: usize,
    /// CPU permits (the budget, rounded up).
    pub permits: usize,
    /// Let the wide session's threads spin (only when the worker owns its cores).
    pub spin: bool,
}

/// Why one image could not be classified.
#[derive(Debug, thiserror::Error)]
pub enum ClassifyError {
    /// The upload's fault: permanent, the job fails at once.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// A preprocessed tensor of the wrong size or with values that are not finite: permanent.
    #[error("the tensor cannot be used: {0}")]
    Tensor(String),
    /// The runtime's fault: may be retried elsewhere.
    #[error("inference failed: {0}")]
    Inference(String),
}

/// One upload to classify and how: the bytes and what they are, how many classes to return,
/// whether every class's probability comes back too, the decode limits.
#[derive(Debug, Clone, Copy)]
pub struct Upload<'a> {
    pub bytes: &'a [u8],
    pub input: JobInput,
    pub top_k: usize,
    pub scores: bool,
    pub limits: DecodeLimits,
}

impl<'a> Upload<'a> {
    /// An encoded image, `top_k` classes, no full scores.
    pub fn image(bytes: &'a [u8], top_k: usize, limits: DecodeLimits) -> Self {
        Upload {
            bytes,
            input: JobInput::Image,
            top_k,
            scores: false,
            limits,
        }
    }
}

/// What [`Classifier::classify`] answers.
pub type Classification = Result<Classified, ClassifyError>;

/// What the worker needs of a model: the whole classify path for one upload. Blocking; the
/// worker runs it on the blocking pool. [`Model`] is the real one; tests use fakes.
pub trait Classifier: Send + Sync + 'static {
    /// Decodes, preprocesses and scores the upload, best `top_k` first.
    fn classify(&self, upload: Upload<'_>, resizer: &mut Resizer) -> Classification;

    /// The executor whose sessions run the classifications, if any: the rest of the trait is
    /// derived from it (without one, a classifier counts as one healthy session that never
    /// wedges and ignores the CPU budget).
    fn executor(&self) -> Option<&dyn Pool> {
        None
    }

    /// Counts one job in hand until the guard drops (the executor runs a lone job on every
    /// core and several in parallel on one core each).
    fn hold(&self) -> Option<Held> {
        self.executor().map(Pool::hold)
    }

    /// Sessions in service and retired.
    fn sessions(&self) -> SessionCounts {
        self.executor().map_or(
            SessionCounts {
                healthy: 1,
                retired: 0,
            },
            Pool::counts,
        )
    }

    /// Retires every session whose run has lasted `older_than` or more; returns how many.
    fn retire_stuck(&self, older_than: Duration) -> usize {
        self.executor().map_or(0, |e| e.retire_stuck(older_than))
    }

    /// Sets the CPU permits (the worker's share of its host changed).
    fn set_cpus(&self, permits: usize) {
        if let Some(e) = self.executor() {
            e.set_permits(permits);
        }
    }
}

impl Classifier for Model {
    fn classify(&self, upload: Upload<'_>, resizer: &mut Resizer) -> Classification {
        let start = Instant::now();
        let (tensor, img) = match upload.input {
            JobInput::Image => {
                let img = preprocess::decode_for(upload.bytes, upload.limits, self.spec.resize)?;
                crate::metrics::stage(crate::metrics::DECODE, &self.name, start.elapsed());
                let t = Instant::now();
                let tensor = preprocess::to_tensor(&img, &self.spec, resizer);
                crate::metrics::stage(crate::metrics::PREPROCESS, &self.name, t.elapsed());
                (tensor, Some(img))
            }
            JobInput::Tensor => (self.tensor_from(upload.bytes)?, None),
        };
        let t = Instant::now();
        let raw = self.infer(&tensor)?;
        crate::metrics::stage(crate::metrics::INFERENCE, &self.name, t.elapsed());
        crate::metrics::batch(&self.name, 1);
        let probs = self.probabilities(&raw);
        let predictions = self.top_k(&probs, upload.top_k);
        let thumbnail = img.map_or_else(Vec::new, |img| {
            preprocess::thumbnail(&img, THUMB_SIDE, resizer)
        });
        let scores = if upload.scores {
            probs.iter().flat_map(|p| p.to_le_bytes()).collect()
        } else {
            Vec::new()
        };
        Ok(Classified {
            result: JobResult {
                predictions,
                model: self.name.clone(),
                elapsed_ms: start.elapsed().as_secs_f64() * 1e3,
            },
            thumbnail,
            scores,
        })
    }

    fn executor(&self) -> Option<&dyn Pool> {
        Some(&self.exec)
    }
}

/// A finished classification plus the thumbnail for the history (none for a tensor input)
/// and, when asked for, every class's probability (f32 little-endian).
pub struct Classified {
    pub result: JobResult,
    pub thumbnail: Vec<u8>,
    pub scores: Vec<u8>,
}

impl Model {
    /// Creates the sessions `layout` asks for and reads the labels.
    pub fn load(
        env: &ort::environment::Environment,
        registry: &Registry,
        registry_dir: &Path,
        name: &str,
        models_dir: &Path,
        layout: Layout,
    ) -> anyhow::Result<Self> {
        let spec = registry.get(name)?.clone();
        let path = registry.model_path(name, models_dir)?;
        let labels = registry.labels(name, models_dir, registry_dir)?;
        let wide = if layout.wide_threads > 1 || layout.narrow == 0 {
            let threads = layout.wide_threads.max(1);
            Some(Self::session(
                env,
                &spec,
                name,
                &path,
                threads,
                layout.spin,
            )?)
        } else {
            None
        };
        let narrow = (0..layout.narrow)
            .map(|_| Self::session(env, &spec, name, &path, 1, false))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Model {
            name: name.to_owned(),
            spec,
            labels,
            exec: Executor::new(narrow, wide, layout.wide_threads, layout.permits),
        })
    }

    /// One session with `threads` intra-op threads, checked against the registry's names.
    fn session(
        env: &ort::environment::Environment,
        spec: &ModelSpec,
        name: &str,
        path: &Path,
        threads: usize,
        spin: bool,
    ) -> anyhow::Result<Session> {
        let session = Session::builder(env)
            .and_then(|b| {
                b.with_optimization_level(GraphOptimizationLevel::Level3)
                    .map_err(Into::into)
            })
            .and_then(|b| b.with_intra_threads(threads).map_err(Into::into))
            .and_then(|b| b.with_inter_threads(1).map_err(Into::into))
            .and_then(|b| {
                b.with_config_entry(
                    "session.intra_op.allow_spinning",
                    if spin { "1" } else { "0" },
                )
                .map_err(Into::into)
            })
            .and_then(|mut b| b.commit_from_file(path))
            .map_err(|e| {
                anyhow::anyhow!("cannot load model {name} from {}: {e}", path.display())
            })?;
        let has = |names: Vec<&str>, want: &str| names.contains(&want);
        anyhow::ensure!(
            has(
                session.inputs().iter().map(|o| o.name()).collect(),
                &spec.input_name
            ),
            "model {name}: the graph has no input named `{}`",
            spec.input_name
        );
        anyhow::ensure!(
            has(
                session.outputs().iter().map(|o| o.name()).collect(),
                &spec.output_name
            ),
            "model {name}: the graph has no output named `{}`",
            spec.output_name
        );
        Ok(session)
    }

    /// Runs a session on one preprocessed `[1, 3, S, S]` tensor; returns the raw output row.
    pub fn infer(&self, tensor: &[f32]) -> Result<Vec<f32>, ClassifyError> {
        self.infer_on(Choice::Auto, tensor)
    }

    /// [`Model::infer`] on the kind of session `choice` names (tests and benchmarks). `tensor`
    /// may hold several images one after the other: they run as one batch (the graph's batch
    /// dimension must be dynamic), and the outputs come back in the same order.
    pub fn infer_on(&self, choice: Choice, tensor: &[f32]) -> Result<Vec<f32>, ClassifyError> {
        let s = self.spec.input_size as usize;
        let batch = (tensor.len() / (3 * s * s)).max(1);
        let input = TensorRef::from_array_view(([batch, 3, s, s], tensor))
            .map_err(|e| ClassifyError::Inference(e.to_string()))?;
        let (input_name, output_name) = (
            self.spec.input_name.as_str(),
            self.spec.output_name.as_str(),
        );
        self.exec
            .run(choice, |session| {
                let outputs = session
                    .run(ort::inputs![input_name => input])
                    .map_err(|e| ClassifyError::Inference(e.to_string()))?;
                let (_, row) = outputs[output_name]
                    .try_extract_tensor::<f32>()
                    .map_err(|e| ClassifyError::Inference(e.to_string()))?;
                Ok(row.to_vec())
            })
            .map_err(|e: ExecError| ClassifyError::Inference(e.to_string()))?
    }

    /// The executor's sessions (for benchmarks: how many run in parallel).
    pub fn session_counts(&self) -> SessionCounts {
        self.exec.counts()
    }

    /// A preprocessed `[1, 3, S, S]` input as sent (f32 little-endian). The API checked its
    /// size; it is checked again here, and a value that is not finite is refused.
    fn tensor_from(&self, bytes: &[u8]) -> Result<Vec<f32>, ClassifyError> {
        let s = self.spec.input_size as usize;
        let want = 3 * s * s * 4;
        if bytes.len() != want {
            return Err(ClassifyError::Tensor(format!(
                "it holds {} bytes; [1, 3, {s}, {s}] FP32 is {want}",
                bytes.len()
            )));
        }
        let values: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        if values.iter().any(|v| !v.is_finite()) {
            return Err(ClassifyError::Tensor(
                "it holds a NaN or an infinity".into(),
            ));
        }
        Ok(values)
    }

    /// Class probabilities: the softmax of logits, or the output as given.
    pub fn probabilities(&self, raw: &[f32]) -> Vec<f32> {
        match self.spec.output {
            OutputKind::Logits => softmax(raw),
            OutputKind::Probabilities => raw.to_vec(),
        }
    }

    /// The classes of `probs` ([`Model::probabilities`]), best `k` first.
    pub fn top_k(&self, probs: &[f32], k: usize) -> Vec<Prediction> {
        let mut idx: Vec<usize> = (0..probs.len()).collect();
        let k = k.min(idx.len());
        if k == 0 {
            return Vec::new();
        }
        idx.select_nth_unstable_by(k - 1, |&a, &b| probs[b].total_cmp(&probs[a]));
        idx.truncate(k);
        idx.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
        idx.into_iter()
            .map(|i| Prediction {
                label: self
                    .labels
                    .get(i)
                    .cloned()
                    .unwrap_or_else(|| format!("class {i}")),
                class_id: i,
                score: probs[i],
            })
            .collect()
    }
}

/// Numerically stable softmax.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = logits.iter().map(|&x| (x - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    exp.into_iter().map(|e| e / sum).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn softmax_is_a_distribution_and_stable() {
        let p = softmax(&[1000.0, 1000.0, -1000.0]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!((p[0] - 0.5).abs() < 1e-6 && p[2] < 1e-6);
    }
}
