//! The Lua scripts of the job transitions, compiled into the binary from `lua/*.lua` and
//! hashed once per process (`EVALSHA`, loaded on the first `NOSCRIPT`). Each script takes its
//! many arguments as one JSON document in `ARGV[1]`; field/value pairs, which may be binary
//! (thumbnails), follow as plain arguments that the document points at by index.

use std::sync::LazyLock;

use redis::Script;
use serde_json::{json, Value};

/// `lua/start.lua`: queued -> processing, counting the attempt.
pub(crate) static START: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/start.lua")));
/// `lua/finish.lua`: processing -> done or failed, once, for one or more jobs.
pub(crate) static FINISH: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/finish.lua")));
/// `lua/requeue.lua`: processing -> queued, at the end of the queue.
pub(crate) static REQUEUE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/requeue.lua")));

/// `lua/live_workers.lua`: the live heartbeats, pruning the index of expired ones.
pub(crate) static LIVE_WORKERS: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/live_workers.lua")));

/// Builds a script's `ARGV`: the JSON document first, then the binary pairs it refers to.
#[derive(Default)]
pub(crate) struct Argv {
    pairs: Vec<Vec<u8>>,
}

impl Argv {
    /// Appends field/value pairs; returns their `[first, last]` range in Lua's 1-based `ARGV`
    /// (`ARGV[1]` is the document, so the pairs start at 2).
    pub(crate) fn pairs<K: AsRef<[u8]>>(&mut self, pairs: Vec<(K, Vec<u8>)>) -> Value {
        let first = self.pairs.len() + 2;
        for (k, v) in pairs {
            self.pairs.push(k.as_ref().to_vec());
            self.pairs.push(v);
        }
        json!([first, self.pairs.len() + 1])
    }

    /// Invokes `script` with `keys`, the document and the pairs.
    pub(crate) fn invocation<'a>(
        self,
        script: &'a Script,
        keys: &[String],
        doc: &Value,
    ) -> redis::ScriptInvocation<'a> {
        let mut inv = script.prepare_invoke();
        for k in keys {
            inv.key(k);
        }
        inv.arg(doc.to_string());
        for p in self.pairs {
            inv.arg(p);
        }
        inv
    }
}

#[cfg(test)]
mod tests {
    use super::super::keys::{field, quota_field, stream};

    /// The scripts name hash fields only where the state machine reads them; whatever they
    /// name must be a field the Rust side defines.
    #[test]
    fn scripts_name_only_known_fields() {
        let commands = [
            "HGET", "HSET", "HINCRBY", "XACK", "XDEL", "XADD", "EXPIRE", "PUBLISH", "MAXLEN", "~",
            "*", "done", "failed", "STRLEN", "DECR", "DEL",
        ];
        for (name, src) in [
            ("start", include_str!("lua/start.lua")),
            ("finish", include_str!("lua/finish.lua")),
            ("requeue", include_str!("lua/requeue.lua")),
        ] {
            let code: String = src
                .lines()
                .filter(|l| !l.trim_start().starts_with("--"))
                .collect::<Vec<_>>()
                .join("\n");
            for literal in code.split('\'').skip(1).step_by(2) {
                assert!(
                    commands.contains(&literal)
                        || field::ALL.contains(&literal)
                        || [stream::JOB, stream::FINISHED].contains(&literal)
                        || [quota_field::JOBS, quota_field::BYTES].contains(&literal),
                    "{name}.lua names `{literal}`, which is no known command or field"
                );
            }
            assert!(src.starts_with("-- "), "{name}.lua has no header");
            assert!(
                src.contains("KEYS[1]") && src.contains("ARGV[1]"),
                "{name}.lua's header must name its KEYS and ARGV"
            );
        }
    }
}
