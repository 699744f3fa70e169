//! History search: one page of a user's predictions narrowed by label, model, status,
//! feedback or time, in a query built at run time from the filter.

use sqlx::Row;

use super::predictions::{job_from, PRED_COLS, PRED_FROM};
use super::Db;
use shared::Job;

/// What `GET /predictions` may narrow the history to; every field is optional.
#[derive(Debug, Clone, Default)]
pub struct HistoryFilter {
    /// Substring of any of the top-k labels, case-insensitive.
    pub label: Option<String>,
    pub model: Option<String>,
    /// Unix ms, inclusive.
    pub from_ms: Option<i64>,
    /// Unix ms, exclusive.
    pub until_ms: Option<i64>,
    pub feedback: Option<FeedbackFilter>,
}

/// Jobs by the feedback their owner gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedbackFilter {
    /// Any feedback given.
    Given,
    /// None given.
    None,
    /// Marked wrong.
    Wrong,
    /// Marked right.
    Right,
}

/// A bound value of a query built at run time.
enum Arg {
    Int(i64),
    Text(String),
}

/// `sql` with `args` bound in order.
fn bind_args<'q>(
    sql: &'q str,
    args: &[Arg],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    let mut q = sqlx::query(sql);
    for a in args {
        q = match a {
            Arg::Int(i) => q.bind(*i),
            Arg::Text(t) => q.bind(t.clone()),
        };
    }
    q
}

impl Db {
    /// One page of a user's history narrowed by `filter`, newest first, and how many match.
    pub async fn history_page(
        &self,
        user_id: i64,
        filter: &HistoryFilter,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<Job>, i64), sqlx::Error> {
        let mut args = vec![Arg::Int(user_id)];
        let mut cond = String::from("p.user_id = $1");
        let mut push = |args: &mut Vec<Arg>, sql: &str, arg: Arg| {
            args.push(arg);
            cond.push_str(&sql.replace('?', &format!("${}", args.len())));
        };
        if let Some(label) = filter.label.as_deref() {
            // LIKE with the pattern characters escaped: the text is matched literally.
            let escaped = label
                .to_lowercase()
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            push(
                &mut args,
                " AND p.labels LIKE ? ESCAPE '\\'",
                Arg::Text(format!("%{escaped}%")),
            );
        }
        if let Some(m) = filter.model.as_deref() {
            push(&mut args, " AND p.model = ?", Arg::Text(m.to_owned()));
        }
        if let Some(ms) = filter.from_ms {
            push(&mut args, " AND p.created_ms >= ?", Arg::Int(ms));
        }
        if let Some(ms) = filter.until_ms {
            push(&mut args, " AND p.created_ms < ?", Arg::Int(ms));
        }
        match filter.feedback {
            Some(FeedbackFilter::Given) => cond.push_str(" AND f.id IS NOT NULL"),
            Some(FeedbackFilter::None) => cond.push_str(" AND f.id IS NULL"),
            Some(FeedbackFilter::Wrong) => cond.push_str(" AND f.is_correct = 0"),
            Some(FeedbackFilter::Right) => cond.push_str(" AND f.is_correct = 1"),
            None => {}
        }
        let n = args.len();
        let sql = format!(
            "SELECT {PRED_COLS} FROM {PRED_FROM} WHERE {cond} ORDER BY p.created_ms DESC, p.job_id DESC LIMIT ${} OFFSET ${}",
            n + 1,
            n + 2
        );
        let rows = bind_args(&sql, &args)
            .bind(limit)
            .bind(offset)
            .fetch_all(&self.pool)
            .await?;
        let count = format!("SELECT COUNT(*) AS n FROM {PRED_FROM} WHERE {cond}");
        let total: i64 = bind_args(&count, &args)
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?;
        Ok((rows.iter().map(job_from).collect::<Result<_, _>>()?, total))
    }
}
