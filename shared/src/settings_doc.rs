//! The settings tables of `docs/configuration.md`, generated from each binary's clap
//! definitions, so the documentation cannot drift from the code: each binary has a test that
//! compares its table with the file ([`check`]) and `make config-docs` rewrites them.

use std::path::Path;

/// The environment variable `make config-docs` sets so [`check`] rewrites the file's table.
pub const REWRITE: &str = "UPDATE_CONFIG_DOCS";

/// Every setting of `cmd` and of its subcommands with an environment variable, one row each:
/// the variable, the flag, the default and the doc comment.
pub fn table(cmd: &clap::Command) -> String {
    let mut out = String::from("| variable | flag | default | what |\n|---|---|---|---|\n");
    rows(cmd, &mut Vec::new(), &mut out);
    out
}

fn rows(cmd: &clap::Command, path: &mut Vec<String>, out: &mut String) {
    for arg in cmd.get_arguments() {
        let Some(env) = arg.get_env() else {
            continue;
        };
        let flag = arg.get_long().map_or_else(String::new, |l| {
            let sub = path.join(" ");
            let sub = if sub.is_empty() { sub } else { sub + " " };
            format!("`{sub}--{l}`")
        });
        let defaults: Vec<_> = arg
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy().into_owned())
            .collect();
        let default = match defaults.join(",") {
            d if d.is_empty() => "—".to_owned(),
            d => format!("`{d}`"),
        };
        let help = arg
            .get_long_help()
            .or_else(|| arg.get_help())
            .map(|h| h.to_string())
            .unwrap_or_default();
        let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
        let help = help.replace('|', "\\|");
        let env = env.to_string_lossy();
        out.push_str(&format!("| `{env}` | {flag} | {default} | {help} |\n"));
    }
    for sub in cmd.get_subcommands() {
        path.push(sub.get_name().to_owned());
        rows(sub, path, out);
        path.pop();
    }
}

/// The markers around `binary`'s table in the file.
fn markers(binary: &str) -> (String, String) {
    (
        format!("<!-- {binary} settings: generated from its clap definitions by `make config-docs` -->\n"),
        format!("<!-- end of {binary} settings -->"),
    )
}

/// The file the tables live in.
pub fn doc_path() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/configuration.md")
}

/// [`check`] against [`doc_path`], panicking with what differs: the test each binary runs.
pub fn assert_documented(binary: &str, cmd: &clap::Command) {
    if let Err(e) = check(binary, cmd, &doc_path()) {
        panic!("{e}");
    }
}

/// Compares `binary`'s table in `doc` with [`table`] of `cmd`; with [`REWRITE`] set, writes it
/// there instead. `Err` says what differs.
pub fn check(binary: &str, cmd: &clap::Command, doc: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(doc).map_err(|e| format!("{}: {e}", doc.display()))?;
    let (start, end) = markers(binary);
    let (Some(i), Some(j)) = (text.find(&start), text.find(&end)) else {
        return Err(format!(
            "{} has no {binary} settings markers",
            doc.display()
        ));
    };
    let written = &text[i + start.len()..j];
    let wanted = table(cmd);
    if written == wanted {
        return Ok(());
    }
    if std::env::var_os(REWRITE).is_some() {
        let new = format!("{}{wanted}{}", &text[..i + start.len()], &text[j..]);
        return std::fs::write(doc, new).map_err(|e| format!("{}: {e}", doc.display()));
    }
    let first = written
        .lines()
        .zip(wanted.lines())
        .find(|(a, b)| a != b)
        .map_or_else(
            || "a row was added or removed".to_owned(),
            |(a, b)| format!("documented:\n{a}\nin the code:\n{b}"),
        );
    Err(format!(
        "the {binary} settings in {} differ from its clap definitions ({first}); run `make config-docs`",
        doc.display()
    ))
}
