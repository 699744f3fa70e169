//! A database per test: a SQLite file in a temp folder, or a PostgreSQL database created with a
//! unique name through the admin URL and dropped (WITH FORCE) when the test ends, so no tables
//! are left in the machine's databases.

use std::path::PathBuf;

use sqlx::{Connection, Executor};

/// Which database engine a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A fresh SQLite file.
    Sqlite,
    /// A fresh PostgreSQL database.
    Postgres,
}

/// The PostgreSQL URL tests create their databases through: `TEST_DATABASE_URL`, default
/// `postgres://postgres@127.0.0.1:5432/test`. The one place tests learn it from; the database
/// it names is only connected to, never written.
pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A fresh database for one test; a PostgreSQL one is dropped when this goes away.
pub struct TestDb {
    /// The URL to give the api (`DATABASE_URL`).
    pub url: String,
    /// The backend.
    pub backend: Backend,
    dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

impl TestDb {
    /// A fresh database of `backend`; panics (failing the test) when PostgreSQL is unreachable.
    #[track_caller]
    pub fn new(backend: Backend) -> TestDb {
        match backend {
            Backend::Sqlite => Self::sqlite(),
            Backend::Postgres => Self::postgres(),
        }
    }

    /// A SQLite file in a temp folder removed with this value.
    #[track_caller]
    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("no temp dir: {e}"));
        TestDb {
            url: format!("sqlite://{}/app.db", dir.path().display()),
            backend: Backend::Sqlite,
            dir: Some(dir),
            pg: None,
        }
    }

    /// A SQLite file at `path` (kept: `xtask stack` under `data/`).
    pub fn sqlite_at(path: PathBuf) -> TestDb {
        TestDb {
            url: format!("sqlite://{}", path.display()),
            backend: Backend::Sqlite,
            dir: None,
            pg: None,
        }
    }

    /// A new PostgreSQL database named `t_<uuid>` on the server of [`admin_url`].
    #[track_caller]
    pub fn postgres() -> TestDb {
        Self::try_postgres().unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// [`TestDb::postgres`] returning the failure instead of panicking (for `xtask`).
    pub fn try_postgres() -> anyhow::Result<TestDb> {
        let admin = admin_url();
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        admin_sql(&admin, format!("CREATE DATABASE \"{name}\""))
            .map_err(|e| anyhow::anyhow!("PostgreSQL at {admin} is unreachable: {e}"))?;
        Ok(TestDb {
            url: with_db_name(&admin, &name),
            backend: Backend::Postgres,
            dir: None,
            pg: Some((admin, name)),
        })
    }

    /// A database that exists already (not dropped).
    pub fn external(url: String) -> TestDb {
        let backend = if url.starts_with("postgres") {
            Backend::Postgres
        } else {
            Backend::Sqlite
        };
        TestDb {
            url,
            backend,
            dir: None,
            pg: None,
        }
    }

    /// The folder of a temp SQLite database.
    pub fn dir(&self) -> Option<&std::path::Path> {
        self.dir.as_ref().map(tempfile::TempDir::path)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin, name)) = self.pg.take() {
            let _ = admin_sql(
                &admin,
                format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
            );
        }
    }
}

/// Runs one statement on the admin connection. On a thread with a runtime of its own, so it
/// works from sync code, from async tests and from `Drop`.
fn admin_sql(admin: &str, sql: String) -> Result<(), String> {
    let admin = admin.to_owned();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async {
            let mut conn = sqlx::PgConnection::connect(&admin)
                .await
                .map_err(|e| e.to_string())?;
            let r = conn.execute(sql.as_str()).await.map(|_| ());
            let _ = conn.close().await;
            r.map_err(|e| e.to_string())
        })
    })
    .join()
    .map_err(|_| "the admin connection thread panicked".to_owned())?
}

/// `url` with its database name replaced by `name` (user, host and query kept).
pub fn with_db_name(url: &str, name: &str) -> String {
    let (head, query) = split_query(url);
    let cut = authority_end(head);
    format!("{}/{name}{query}", &head[..cut])
}

/// `url` with its `host:port` replaced by `host_port` (user, database and query kept).
pub fn with_host_port(url: &str, host_port: &str) -> String {
    let (head, query) = split_query(url);
    let start = head.find("://").map_or(0, |i| i + 3);
    let cut = authority_end(head);
    let authority = &head[start..cut];
    let user = authority.rsplit_once('@').map(|(u, _)| format!("{u}@"));
    format!(
        "{}{}{host_port}{}{query}",
        &head[..start],
        user.unwrap_or_default(),
        &head[cut..]
    )
}

/// The `host:port` of `url` (port 5432 when it names none).
pub fn host_port(url: &str) -> String {
    let (head, _) = split_query(url);
    let start = head.find("://").map_or(0, |i| i + 3);
    let authority = &head[start..authority_end(head)];
    let hp = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if hp.contains(':') {
        hp.to_owned()
    } else {
        format!("{hp}:5432")
    }
}

fn split_query(url: &str) -> (&str, &str) {
    match url.find('?') {
        Some(i) => (&url[..i], &url[i..]),
        None => (url, ""),
    }
}

fn authority_end(head: &str) -> usize {
    let start = head.find("://").map_or(0, |i| i + 3);
    head[start..].find('/').map_or(head.len(), |i| start + i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_rewritten_keeping_the_rest() {
        let u = "postgres://app:pw@db.example:6543/test?sslmode=disable";
        assert_eq!(
            with_db_name(u, "t_1"),
            "postgres://app:pw@db.example:6543/t_1?sslmode=disable"
        );
        assert_eq!(
            with_host_port(u, "127.0.0.1:9"),
            "postgres://app:pw@127.0.0.1:9/test?sslmode=disable"
        );
        assert_eq!(host_port(u), "db.example:6543");
        assert_eq!(
            host_port("postgres://postgres@localhost/test"),
            "localhost:5432"
        );
        assert_eq!(with_db_name("postgres://h", "x"), "postgres://h/x");
    }
}
