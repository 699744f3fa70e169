//! The model registry (`models/registry.toml`): every model a worker can serve and exactly how
//! to feed it. The worker preprocesses by these numbers; the API validates model names by them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// What the model's output tensor holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputKind {
    /// Raw scores: the worker applies softmax.
    Logits,
    /// Already a probability distribution.
    Probabilities,
}

/// One model entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    #[serde(default)]
    pub description: String,
    /// File name inside `MODELS_DIR`.
    pub file: String,
    /// Where `make model` downloads it from, if anywhere (pinned to a commit, not a branch).
    pub url: Option<String>,
    /// SHA-256 of the file, lowercase hex: every downloadable entry has one.
    pub sha256: Option<String>,
    /// Expected size in bytes: every downloadable entry has one.
    pub size: Option<u64>,
    pub input_name: String,
    pub output_name: String,
    /// Side of the square input (center crop), e.g. 224.
    pub input_size: u32,
    /// The shorter image side is resized to this before the crop, e.g. 256.
    pub resize: u32,
    pub mean: [f32; 3],
    pub std: [f32; 3],
    /// Label file, one class name per line (index = class id).
    pub labels: String,
    pub output: OutputKind,
    /// Served only when named explicitly (benchmark graphs with meaningless outputs).
    #[serde(default)]
    pub benchmark_only: bool,
}

/// The whole registry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registry {
    /// Model used when a request names none (overridable by `DEFAULT_MODEL`).
    pub default: String,
    pub models: BTreeMap<String, ModelSpec>,
}

/// Registry problems, each worded so the user knows what to do.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("cannot read the model registry {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the model registry {path} is invalid: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("unknown model `{0}`; known models: {1}")]
    UnknownModel(String, String),
    #[error("model {name}: {file} is missing from {dir}; run `make model` (downloads {url}) or set MODELS_DIR to a folder holding it")]
    MissingFile {
        name: String,
        file: String,
        dir: String,
        url: String,
    },
    #[error("cannot read the labels of model {name} ({path}): {source}")]
    Labels {
        name: String,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The registry file shipped with the repository, found from the working directory or the
/// executable's location, so binaries run from any folder of a checkout find it.
pub fn default_registry_path() -> PathBuf {
    let rel = Path::new("models").join("registry.toml");
    let mut candidates = vec![rel.clone()];
    if let Ok(exe) = std::env::current_exe() {
        candidates.extend(exe.ancestors().skip(1).map(|dir| dir.join(&rel)));
    }
    candidates.into_iter().find(|p| p.is_file()).unwrap_or(rel)
}

impl Registry {
    /// Reads and validates a registry file.
    pub fn load(path: &Path) -> Result<Self, RegistryError> {
        let text = std::fs::read_to_string(path).map_err(|source| RegistryError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|source| RegistryError::Parse {
            path: path.to_owned(),
            source: Box::new(source),
        })
    }

    /// Parses registry text.
    pub fn parse(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }

    /// Looks a model up by name, with a helpful error listing the known ones.
    pub fn get(&self, name: &str) -> Result<&ModelSpec, RegistryError> {
        self.models
            .get(name)
            .ok_or_else(|| RegistryError::UnknownModel(name.to_owned(), self.names().join(", ")))
    }

    /// Names of all models, sorted.
    pub fn names(&self) -> Vec<String> {
        self.models.keys().cloned().collect()
    }

    /// The model file of `name` inside `models_dir`, checked to exist.
    pub fn model_path(&self, name: &str, models_dir: &Path) -> Result<PathBuf, RegistryError> {
        let spec = self.get(name)?;
        let path = models_dir.join(&spec.file);
        if path.is_file() {
            Ok(path)
        } else {
            Err(RegistryError::MissingFile {
                name: name.to_owned(),
                file: spec.file.clone(),
                dir: models_dir.display().to_string(),
                url: spec
                    .url
                    .clone()
                    .unwrap_or_else(|| "nothing: this model has no public URL".to_owned()),
            })
        }
    }

    /// Models whose file is present in `models_dir`, excluding benchmark-only graphs.
    pub fn present(&self, models_dir: &Path) -> Vec<String> {
        self.models
            .iter()
            .filter(|(_, s)| !s.benchmark_only && models_dir.join(&s.file).is_file())
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// The model a request gets when it names none: the registry's default when its file is in
    /// `models_dir` (or when no model file is there at all, as on an api host without the
    /// files), else the first servable model that is there, which is what a worker with the
    /// same folder serves.
    pub fn serving_default(&self, models_dir: &Path) -> String {
        let default_here = self
            .models
            .get(&self.default)
            .is_some_and(|s| models_dir.join(&s.file).is_file());
        match self.present(models_dir).into_iter().next() {
            Some(first) if !default_here => first,
            _ => self.default.clone(),
        }
    }

    /// Class names of a model: its label file from `models_dir`, else beside the registry.
    pub fn labels(
        &self,
        name: &str,
        models_dir: &Path,
        registry_dir: &Path,
    ) -> Result<Vec<String>, RegistryError> {
        let spec = self.get(name)?;
        let primary = models_dir.join(&spec.labels);
        let path = if primary.is_file() {
            primary
        } else {
            registry_dir.join(&spec.labels)
        };
        let text = std::fs::read_to_string(&path).map_err(|source| RegistryError::Labels {
            name: name.to_owned(),
            path: path.clone(),
            source,
        })?;
        Ok(text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_registry() -> Registry {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/registry.toml");
        Registry::load(&path).expect("the shipped registry parses")
    }

    #[test]
    fn shipped_registry_has_the_required_models() {
        let reg = repo_registry();
        for name in ["resnet50", "resnet50-int8", "efficientnet-lite0"] {
            let spec = reg.get(name).expect(name);
            assert_eq!(spec.input_size, 224);
            assert_eq!(spec.resize, 256);
        }
        assert!(reg.models.contains_key(&reg.default));
        for (name, spec) in &reg.models {
            if let Some(url) = &spec.url {
                assert!(
                    !url.contains("/main/"),
                    "{name}: pin the URL to a commit: {url}"
                );
                assert!(
                    spec.sha256.as_ref().is_some_and(|h| h.len() == 64),
                    "{name}: sha256"
                );
                assert!(spec.size.is_some(), "{name}: size");
            }
        }
        assert_eq!(reg.get("efficientnet-lite0").expect("entry").mean, [0.5; 3]);
    }

    #[test]
    fn missing_file_error_names_file_and_remedy() {
        let reg = repo_registry();
        let err = reg
            .model_path("resnet50-int8", Path::new("/nonexistent"))
            .expect_err("file is absent");
        let msg = err.to_string();
        assert!(msg.contains("resnet50-v1-12-int8.onnx"), "{msg}");
        assert!(msg.contains("make model"), "{msg}");
        assert!(!msg.contains('\n'), "one line: {msg}");
    }

    #[test]
    fn unknown_model_lists_known_ones() {
        let msg = repo_registry()
            .get("nope")
            .expect_err("unknown")
            .to_string();
        assert!(msg.contains("efficientnet-lite0"), "{msg}");
    }

    #[test]
    fn serving_default_is_the_registry_default_unless_only_others_are_present() {
        let reg = repo_registry();
        let tmp = tempfile::tempdir().expect("tmp");
        assert_eq!(
            reg.serving_default(tmp.path()),
            reg.default,
            "no files at all"
        );
        let lite = &reg.get("efficientnet-lite0").expect("entry").file;
        std::fs::write(tmp.path().join(lite), b"x").expect("write");
        assert_eq!(reg.serving_default(tmp.path()), "efficientnet-lite0");
        let default_file = &reg.get(&reg.default).expect("default").file;
        std::fs::write(tmp.path().join(default_file), b"x").expect("write");
        assert_eq!(reg.serving_default(tmp.path()), reg.default);
    }

    #[test]
    fn labels_fall_back_to_the_registry_folder() {
        let reg = repo_registry();
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
        let labels = reg
            .labels("efficientnet-lite0", Path::new("/nonexistent"), &dir)
            .expect("labels");
        assert_eq!(labels.len(), 1000);
        assert_eq!(labels[0], "tench");
    }
}
