//! Settings both api and worker read, as a clap block flattened into each binary's config
//! (every field is a flag and an environment variable of the same name), and the one parser
//! per kind of value that every binary uses: durations carry their unit (`30s`, `500ms`,
//! `2m`), booleans are `1/0/true/false/yes/no/on/off`.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use clap::{Arg, Args};

use crate::registry::{default_registry_path, Registry, RegistryError};

/// Redis, model registry and lifetimes.
#[derive(Debug, Clone, Args)]
pub struct CommonConfig {
    /// Redis holding queues, images and results.
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,
    /// Folder holding the model files named in the registry (default: `models/` beside the
    /// registry, or `../shared/models` of the checkout when only that one holds the registry's
    /// default model).
    // Read it through `CommonConfig::models_dir`, which applies the default.
    #[arg(long = "models-dir", env = "MODELS_DIR")]
    pub models_dir: Option<PathBuf>,
    /// The model registry (default: `models/registry.toml` of the checkout).
    #[arg(long, env = "MODEL_REGISTRY")]
    pub model_registry: Option<PathBuf>,
    /// How long a finished result (and its job record) stays in Redis (bare number: seconds).
    #[arg(long, env = "RESULT_TTL", value_parser = duration_secs, default_value = "1h")]
    pub result_ttl: Duration,
    /// How long uploaded image bytes stay in Redis (bare number: seconds).
    #[arg(long, env = "IMAGE_TTL", value_parser = duration_secs, default_value = "1h")]
    pub image_ttl: Duration,
    /// Largest accepted image in pixels (width x height), checked before decoding.
    #[arg(long, env = "MAX_PIXELS", default_value_t = 40_000_000)]
    pub max_pixels: u64,
    /// Smallest accepted image side in pixels.
    #[arg(long, env = "MIN_IMAGE_SIDE", default_value_t = 16)]
    pub min_image_side: u32,
    /// Largest decoded image in bytes (width x height x channels x bytes per sample), checked
    /// from the header before decoding, by the API and again by the worker.
    #[arg(long, env = "MAX_DECODED_BYTES", default_value_t = crate::upload::DEFAULT_MAX_DECODED_BYTES)]
    pub max_decoded_bytes: u64,
    /// Most scans a JPEG may have (each is a pass over the whole frame: the decode work),
    /// checked from its markers by the API and again by the worker.
    #[arg(long, env = "MAX_JPEG_SCANS", default_value_t = crate::upload::DEFAULT_MAX_JPEG_SCANS)]
    pub max_jpeg_scans: u64,
    /// Deadline for each Redis command (bare number: seconds; old name `REDIS_TIMEOUT_MS`, in
    /// milliseconds).
    #[arg(long, env = "REDIS_TIMEOUT", value_parser = duration_secs, default_value = "2s")]
    pub redis_timeout: Duration,
    /// The models folder once resolved (see [`CommonConfig::models_dir`]).
    #[arg(skip)]
    resolved_models_dir: OnceLock<ModelsDir>,
}

/// The folder model files are read from, and why it is that one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelsDir {
    pub path: PathBuf,
    /// Set when `MODELS_DIR` was not given and the checkout's `models/` lacked the registry's
    /// default model, so `../shared/models` is used: one sentence saying so.
    pub fallback_reason: Option<String>,
}

impl CommonConfig {
    /// The upload limits the API checks before queueing and the worker before decoding.
    pub fn decode_limits(&self) -> crate::upload::DecodeLimits {
        crate::upload::DecodeLimits {
            max_pixels: self.max_pixels,
            min_side: self.min_image_side,
            max_decoded_bytes: self.max_decoded_bytes,
            max_jpeg_scans: self.max_jpeg_scans,
        }
    }

    /// Path of the registry file in use.
    pub fn registry_path(&self) -> PathBuf {
        self.model_registry
            .clone()
            .unwrap_or_else(default_registry_path)
    }

    /// Loads the registry.
    pub fn registry(&self) -> Result<Registry, RegistryError> {
        Registry::load(&self.registry_path())
    }

    /// Folder of the registry file (fallback for label files).
    pub fn registry_dir(&self) -> PathBuf {
        self.registry_path()
            .parent()
            .map(PathBuf::from)
            .unwrap_or_default()
    }

    /// Per-command Redis deadline (a method as well as the field, so callers written before
    /// the field became a `Duration` read it the same way).
    pub fn redis_timeout(&self) -> Duration {
        self.redis_timeout
    }

    /// The folder holding the model files: `MODELS_DIR` when set, else resolved once from the
    /// registry (see [`CommonConfig::models_dir_choice`]).
    pub fn models_dir(&self) -> &Path {
        &self.models_dir_choice().path
    }

    /// The models folder with the reason a fallback was taken, resolved once per config.
    pub fn models_dir_choice(&self) -> &ModelsDir {
        self.resolved_models_dir
            .get_or_init(|| match &self.models_dir {
                Some(dir) => ModelsDir {
                    path: dir.clone(),
                    fallback_reason: None,
                },
                None => {
                    let registry = self.registry().ok();
                    default_models_dir(&self.registry_dir(), registry.as_ref())
                }
            })
    }
}

/// The default models folder: `models/` beside the registry, unless it lacks the registry's
/// default model and the checkout's neighbour `../shared/models` holds servable models (a
/// machine without internet gets the models shipped there instead of none).
pub fn default_models_dir(registry_dir: &Path, registry: Option<&Registry>) -> ModelsDir {
    let primary = registry_dir.to_path_buf();
    let keep = ModelsDir {
        path: primary.clone(),
        fallback_reason: None,
    };
    let Some(registry) = registry else {
        return keep;
    };
    let Some(default) = registry.models.get(&registry.default) else {
        return keep;
    };
    if primary.join(&default.file).is_file() {
        return keep;
    }
    let fallback = registry_dir
        .join("..")
        .join("..")
        .join("shared")
        .join("models");
    let present = registry.present(&fallback);
    if present.is_empty() {
        return keep;
    }
    let fallback = fallback.canonicalize().unwrap_or(fallback);
    ModelsDir {
        fallback_reason: Some(format!(
            "MODELS_DIR is not set and {} has no {} (the registry's default model {}; `make model` downloads it), so the models of {} are used",
            primary.canonicalize().unwrap_or(primary).display(),
            default.file,
            registry.default,
            fallback.display()
        )),
        path: fallback,
    }
}

/// Parses a duration: humantime text (`30s`, `1m 30s`, `250ms`, `1h`) or a bare number of
/// `bare_unit`s, which is what the variable held before it took units (`PREDICT_TIMEOUT=30`).
pub fn parse_duration(text: &str, bare_unit: Duration) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(n) = text.parse::<u64>() {
        return u32::try_from(n)
            .ok()
            .and_then(|n| bare_unit.checked_mul(n))
            .ok_or_else(|| format!("`{text}` is too large a duration"));
    }
    if let Ok(x) = text.parse::<f64>() {
        return Duration::try_from_secs_f64(x * bare_unit.as_secs_f64())
            .map_err(|_| format!("`{text}` is not a duration: it must be positive and finite"));
    }
    humantime::parse_duration(text).map_err(|e| {
        format!("`{text}` is not a duration ({e}); write a number with a unit, e.g. 30s, 500ms, 2m")
    })
}

/// [`parse_duration`] where a bare number means seconds: the value parser of every duration
/// setting (old names in other units go through [`renamed_default`]).
pub fn duration_secs(text: &str) -> Result<Duration, String> {
    parse_duration(text, Duration::from_secs(1))
}

/// Parses a boolean setting: `1/0`, `true/false`, `yes/no`, `on/off`, in any case.
pub fn parse_bool(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(format!(
            "`{text}` is not a boolean: use 1/0, true/false, yes/no or on/off"
        )),
    }
}

/// Duration settings renamed when they took units: the variable, its old name, and the unit a
/// bare number under the old name counts in. [`conventions`] applies the table.
pub const RENAMED: &[(&str, &str, &str)] = &[
    ("REDIS_TIMEOUT", "REDIS_TIMEOUT_MS", "ms"),
    ("DB_TIMEOUT", "DB_TIMEOUT_MS", "ms"),
    ("JWT_TTL", "JWT_TTL_MINUTES", "m"),
    ("API_TIMEOUT", "API_TIMEOUT_SECS", "s"),
];

/// The conventions every binary's settings share, applied by `#[command(mut_args =
/// conventions)]` on its parser so each field declares only its name, parser and default: a
/// boolean is also a bare flag meaning true (`--fault-injection`) and takes a value only after
/// `=` (`--ort-spin=off`); a setting listed in [`RENAMED`] still reads its old variable.
pub fn conventions(arg: Arg) -> Arg {
    boolean_flag(renamed_default(arg))
}

/// A boolean setting given as a bare flag means true; a value needs `=` (`--flag=no`).
fn boolean_flag(arg: Arg) -> Arg {
    if arg.get_value_parser().type_id() == std::any::TypeId::of::<bool>() {
        arg.num_args(0..=1)
            .require_equals(true)
            .default_missing_value("true")
    } else {
        arg
    }
}

/// A setting listed in [`RENAMED`] takes its old variable's value as its default (a bare
/// number there counts in the old unit).
pub fn renamed_default(arg: Arg) -> Arg {
    renamed_default_with(arg, |var| std::env::var(var).ok())
}

/// [`renamed_default`] reading the old variable through `old_value`.
fn renamed_default_with(arg: Arg, old_value: impl Fn(&str) -> Option<String>) -> Arg {
    let renamed = arg
        .get_env()
        .and_then(|env| RENAMED.iter().find(|(new, ..)| env == *new));
    let default = arg.get_default_values().first().and_then(|d| d.to_str());
    match (renamed, default) {
        (Some((_, old, unit)), Some(default)) => {
            let value = legacy_value(old_value(old).as_deref(), unit, default);
            arg.default_value(value)
        }
        _ => arg,
    }
}

/// The default of a duration setting that was renamed when it took units: the old variable's
/// value `old` when it is set (a bare number there counts in `old_unit`, e.g. `ms` for
/// `DB_TIMEOUT_MS`), else `default`. The new variable, when set, still wins over both.
fn legacy_value(old: Option<&str>, old_unit: &str, default: &str) -> String {
    match old.map(str::trim) {
        Some(v) if !v.is_empty() && v.parse::<f64>().is_ok() => format!("{v}{old_unit}"),
        Some(v) if !v.is_empty() => v.to_owned(),
        _ => default.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_units_or_a_bare_number_in_the_old_unit() {
        assert_eq!(duration_secs("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(duration_secs("30"), Ok(Duration::from_secs(30)));
        assert_eq!(duration_secs(" 1m 30s "), Ok(Duration::from_secs(90)));
        assert_eq!(duration_secs("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(duration_secs("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(duration_secs("0.5"), Ok(Duration::from_millis(500)));
        let ms = Duration::from_millis(1);
        assert_eq!(parse_duration("2000", ms), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("2s", ms), Ok(Duration::from_secs(2)));
    }

    #[test]
    fn bad_durations_say_how_to_write_one() {
        let err = duration_secs("soon").expect_err("not a duration");
        assert!(err.contains("`soon`") && err.contains("30s"), "{err}");
        assert!(duration_secs("-3").is_err());
        assert!(duration_secs("").is_err());
        assert!(duration_secs("99999999999999999999").is_err());
    }

    #[test]
    fn booleans_have_one_spelling_set() {
        for t in ["1", "true", "TRUE", "yes", "Yes", "on", " ON "] {
            assert_eq!(parse_bool(t), Ok(true), "{t}");
        }
        for t in ["0", "false", "False", "no", "NO", "off"] {
            assert_eq!(parse_bool(t), Ok(false), "{t}");
        }
        let err = parse_bool("maybe").expect_err("not a boolean");
        assert!(err.contains("yes/no"), "{err}");
    }

    #[test]
    fn legacy_variable_keeps_its_unit() {
        assert_eq!(legacy_value(Some("2000"), "ms", "3s"), "2000ms");
        assert_eq!(legacy_value(Some("2s"), "ms", "3s"), "2s");
        assert_eq!(legacy_value(Some(" "), "ms", "3s"), "3s");
        assert_eq!(legacy_value(None, "ms", "3s"), "3s");
        let parsed = duration_secs(&legacy_value(Some("1500"), "ms", "3s"));
        assert_eq!(parsed, Ok(Duration::from_millis(1500)));
    }

    #[test]
    fn renamed_settings_default_to_their_old_variable() {
        let old = |var: &str| (var == "DB_TIMEOUT_MS").then(|| "1500".to_owned());
        let arg = |env: &'static str| Arg::new(env).long(env).env(env).default_value("3s");
        let default = |a: Arg| a.get_default_values()[0].to_str().map(str::to_owned);
        let renamed = renamed_default_with(arg("DB_TIMEOUT"), old);
        assert_eq!(default(renamed).as_deref(), Some("1500ms"));
        let unset = renamed_default_with(arg("JWT_TTL"), old);
        assert_eq!(default(unset).as_deref(), Some("3s"));
        let unlisted = renamed_default_with(arg("DB_TIMEOUT_MS"), |_| Some("9".into()));
        assert_eq!(default(unlisted).as_deref(), Some("3s"));
    }

    #[derive(Debug, clap::Parser)]
    #[command(mut_args = conventions)]
    struct Flags {
        #[arg(long, value_parser = parse_bool, default_value = "false")]
        on: bool,
    }

    #[test]
    fn a_boolean_is_a_bare_flag_or_takes_a_value_after_equals() {
        let on = |args: &[&str]| <Flags as clap::Parser>::try_parse_from(args).map(|f| f.on);
        assert_eq!(on(&["x"]).ok(), Some(false));
        assert_eq!(on(&["x", "--on"]).ok(), Some(true));
        assert_eq!(on(&["x", "--on=off"]).ok(), Some(false));
        assert!(on(&["x", "--on", "off"]).is_err(), "a value needs `=`");
        assert!(on(&["x", "--on=maybe"]).is_err());
    }

    #[derive(Debug, clap::Parser)]
    #[command(mut_args = conventions)]
    struct Cli {
        #[command(flatten)]
        common: CommonConfig,
    }

    #[test]
    fn common_config_parses_units() {
        let cli = <Cli as clap::Parser>::try_parse_from([
            "x",
            "--result-ttl",
            "90m",
            "--image-ttl",
            "120",
            "--redis-timeout",
            "500ms",
        ])
        .expect("parses");
        assert_eq!(cli.common.result_ttl, Duration::from_secs(5400));
        assert_eq!(cli.common.image_ttl, Duration::from_secs(120));
        assert_eq!(cli.common.redis_timeout(), Duration::from_millis(500));
        assert!(<Cli as clap::Parser>::try_parse_from(["x", "--result-ttl", "later"]).is_err());
    }

    fn registry_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../models")
    }

    #[test]
    fn models_dir_falls_back_to_shared_models_with_a_reason() {
        let registry = Registry::load(&registry_dir().join("registry.toml")).expect("registry");
        let tmp = tempfile::tempdir().expect("tmp");
        // <tmp>/repo/models lacks the default model; <tmp>/shared/models holds a servable one.
        let models = tmp.path().join("repo").join("models");
        let shared = tmp.path().join("shared").join("models");
        std::fs::create_dir_all(&models).expect("mkdir");
        std::fs::create_dir_all(&shared).expect("mkdir");
        let none = default_models_dir(&models, Some(&registry));
        assert_eq!(none.path, models, "nothing anywhere: keep models/");
        assert_eq!(none.fallback_reason, None);

        let lite = &registry.get("efficientnet-lite0").expect("entry").file;
        std::fs::write(shared.join(lite), b"x").expect("write");
        let fell = default_models_dir(&models, Some(&registry));
        assert_eq!(fell.path, shared.canonicalize().expect("canonical"));
        let why = fell.fallback_reason.expect("a reason");
        assert!(
            why.contains(&registry.default) && why.contains("make model"),
            "{why}"
        );

        let default_file = &registry.get(&registry.default).expect("default").file;
        std::fs::write(models.join(default_file), b"x").expect("write");
        let kept = default_models_dir(&models, Some(&registry));
        assert_eq!(kept.path, models, "the default model is here: keep models/");
        assert_eq!(kept.fallback_reason, None);
    }
}
