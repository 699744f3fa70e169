//! The `collections`, `collection_items` and `collection_labels` tables: a user's named sets of
//! images. Counts and the top-1 histogram are kept as outcomes are recorded
//! ([`Db::finish_prediction`] calls [`count_outcome`] in its transaction), never counted from the
//! items on a read.

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use api_types::{CollectionCounts, LabelCount};

use super::listings::UserListing;
use super::Db;

/// A collection row as the API reads it (the view adds times and rates).
#[derive(Debug, Clone, PartialEq)]
pub struct CollectionRow {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    pub model: String,
    pub top_k: i64,
    pub min_confidence: f64,
    pub created_ms: i64,
    pub first_activity_ms: Option<i64>,
    pub last_activity_ms: Option<i64>,
    pub counts: CollectionCounts,
}

/// A new collection.
pub struct NewCollection<'a> {
    pub user_id: i64,
    pub name: &'a str,
    pub model: &'a str,
    pub top_k: i64,
    pub min_confidence: f64,
    pub created_ms: i64,
}

/// A new item: `job_id` classifies it (for a duplicate, the earlier item's job).
pub struct NewItem<'a> {
    pub collection_id: i64,
    pub path: &'a str,
    pub sha256: &'a str,
    pub job_id: &'a str,
    pub duplicate: bool,
    pub created_ms: i64,
}

/// An item as the listings and the export read it, with its job's history row and the
/// owner's feedback.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemRow {
    pub id: i64,
    pub path: String,
    pub sha256: String,
    pub job_id: String,
    pub duplicate: bool,
    pub status: String,
    pub model: String,
    pub result: Option<String>,
    pub error: Option<String>,
    pub top_label: Option<String>,
    pub top_score: Option<f64>,
    pub finished_ms: Option<i64>,
    pub is_correct: Option<bool>,
    pub correct_label: Option<String>,
}

const COLLECTION_COLS: &str = "id, user_id, name, model, top_k, min_confidence, created_ms, first_activity_ms, last_activity_ms, items, duplicates, done, failed, uncertain";

fn collection_from(row: &AnyRow) -> Result<CollectionRow, sqlx::Error> {
    let n = |c: &str| -> Result<u64, sqlx::Error> { Ok(row.try_get::<i64, _>(c)?.max(0) as u64) };
    let (items, duplicate, done, failed) =
        (n("items")?, n("duplicates")?, n("done")?, n("failed")?);
    Ok(CollectionRow {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        name: row.try_get("name")?,
        model: row.try_get("model")?,
        top_k: row.try_get("top_k")?,
        min_confidence: row.try_get("min_confidence")?,
        created_ms: row.try_get("created_ms")?,
        first_activity_ms: row.try_get("first_activity_ms")?,
        last_activity_ms: row.try_get("last_activity_ms")?,
        counts: CollectionCounts {
            items,
            queued: items.saturating_sub(duplicate + done + failed),
            done,
            failed,
            duplicate,
            uncertain: n("uncertain")?,
        },
    })
}

/// The caller's collections, newest first.
pub const COLLECTIONS: UserListing<CollectionRow> = UserListing {
    table: "collections",
    cols: COLLECTION_COLS,
    order: "created_ms DESC, id DESC",
    from_row: collection_from,
};

/// An item with its job (`i` the item, `p` its history row, `f` the owner's feedback).
const ITEM_SELECT: &str = "SELECT i.id, i.path, i.sha256, i.job_id, i.duplicate, p.status, p.model, p.result, p.error, p.top_label, p.top_score, p.finished_ms, f.is_correct, f.correct_label FROM collection_items i JOIN predictions p ON p.job_id = i.job_id LEFT JOIN feedback f ON f.job_id = p.job_id AND f.user_id = p.user_id";

fn item_from(row: &AnyRow) -> Result<ItemRow, sqlx::Error> {
    Ok(ItemRow {
        id: row.try_get("id")?,
        path: row.try_get("path")?,
        sha256: row.try_get("sha256")?,
        job_id: row.try_get("job_id")?,
        duplicate: row.try_get::<i64, _>("duplicate")? != 0,
        status: row.try_get("status")?,
        model: row.try_get("model")?,
        result: row.try_get("result")?,
        error: row.try_get("error")?,
        top_label: row.try_get("top_label")?,
        top_score: row.try_get("top_score")?,
        finished_ms: row.try_get("finished_ms")?,
        is_correct: row.try_get::<Option<i64>, _>("is_correct")?.map(|v| v != 0),
        correct_label: row.try_get("correct_label")?,
    })
}

/// Which items a listing shows.
#[derive(Debug, Clone, Default)]
pub struct ItemFilter {
    /// `queued` (also processing), `done`, `failed` or `duplicate`.
    pub state: Option<String>,
    /// Exact top-1 label, case-insensitive.
    pub label: Option<String>,
    pub uncertain: Option<bool>,
}

impl ItemFilter {
    /// The WHERE conditions after the collection's, binding from `$2` on, and their values.
    fn sql(&self, min_confidence: f64) -> (String, Vec<SqlValue>) {
        let mut cond = String::new();
        let mut binds = Vec::new();
        let next = |v: SqlValue, binds: &mut Vec<SqlValue>| {
            binds.push(v);
            format!("${}", binds.len() + 1)
        };
        match self.state.as_deref() {
            Some("duplicate") => cond.push_str(" AND i.duplicate = 1"),
            Some("queued") => {
                cond.push_str(" AND i.duplicate = 0 AND p.status IN ('queued', 'processing')")
            }
            Some(s) => {
                let at = next(SqlValue::Text(s.to_owned()), &mut binds);
                cond.push_str(&format!(" AND i.duplicate = 0 AND p.status = {at}"));
            }
            None => {}
        }
        if let Some(label) = &self.label {
            let at = next(SqlValue::Text(label.to_lowercase()), &mut binds);
            cond.push_str(&format!(" AND LOWER(p.top_label) = {at}"));
        }
        if let Some(u) = self.uncertain {
            let at = next(SqlValue::Real(min_confidence), &mut binds);
            let test = if u { "<" } else { ">=" };
            cond.push_str(&format!(
                " AND p.status = 'done' AND p.top_score {test} {at}"
            ));
        }
        (cond, binds)
    }
}

/// A value bound to a built query.
#[derive(Debug, Clone)]
enum SqlValue {
    Text(String),
    Real(f64),
}

fn bind_all<'q>(
    mut q: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>,
    values: &'q [SqlValue],
) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>> {
    for v in values {
        q = match v {
            SqlValue::Text(t) => q.bind(t.as_str()),
            SqlValue::Real(r) => q.bind(*r),
        };
    }
    q
}

/// Collections and their items.
impl Db {
    /// Creates a collection; `None` when the user already has one of that name.
    pub async fn create_collection(
        &self,
        c: &NewCollection<'_>,
    ) -> Result<Option<CollectionRow>, sqlx::Error> {
        let inserted = sqlx::query(
            "INSERT INTO collections (user_id, name, model, top_k, min_confidence, created_ms) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (user_id, name) DO NOTHING",
        )
        .bind(c.user_id)
        .bind(c.name)
        .bind(c.model)
        .bind(c.top_k)
        .bind(c.min_confidence)
        .bind(c.created_ms)
        .execute(&self.pool)
        .await?;
        if inserted.rows_affected() == 0 {
            return Ok(None);
        }
        self.collection_named(c.user_id, c.name).await
    }

    pub async fn collection(&self, id: i64) -> Result<Option<CollectionRow>, sqlx::Error> {
        let row = sqlx::query(&format!(
            "SELECT {COLLECTION_COLS} FROM collections WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(collection_from).transpose()
    }

    pub async fn collection_named(
        &self,
        user_id: i64,
        name: &str,
    ) -> Result<Option<CollectionRow>, sqlx::Error> {
        let row = sqlx::query(&format!(
            "SELECT {COLLECTION_COLS} FROM collections WHERE user_id = $1 AND name = $2"
        ))
        .bind(user_id)
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(collection_from).transpose()
    }

    /// Deletes a collection with its items and histogram (the jobs stay in the history).
    pub async fn delete_collection(&self, id: i64) -> Result<bool, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        for table in ["collection_labels", "collection_items"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE collection_id = $1"))
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        let n = sqlx::query("DELETE FROM collections WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(n.rows_affected() > 0)
    }

    /// The collection's top-1 classes, most frequent first.
    pub async fn collection_histogram(&self, id: i64) -> Result<Vec<LabelCount>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT label, n FROM collection_labels WHERE collection_id = $1 AND n > 0 ORDER BY n DESC, label",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(LabelCount {
                    label: r.try_get("label")?,
                    count: r.try_get::<i64, _>("n")?.max(0) as u64,
                })
            })
            .collect()
    }

    /// The item at `path`, if the collection has one: its SHA-256 and job.
    pub async fn item_at(
        &self,
        collection_id: i64,
        path: &str,
    ) -> Result<Option<(String, String)>, sqlx::Error> {
        let row = sqlx::query(
            "SELECT sha256, job_id FROM collection_items WHERE collection_id = $1 AND path = $2",
        )
        .bind(collection_id)
        .bind(path)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((r.try_get("sha256")?, r.try_get("job_id")?)))
            .transpose()
    }

    /// The first item with these bytes that is not itself a duplicate: its path and job.
    pub async fn item_with_bytes(
        &self,
        collection_id: i64,
        sha256: &str,
    ) -> Result<Option<(String, String)>, sqlx::Error> {
        let row = sqlx::query(
            "SELECT path, job_id FROM collection_items WHERE collection_id = $1 AND sha256 = $2 AND duplicate = 0 ORDER BY id LIMIT 1",
        )
        .bind(collection_id)
        .bind(sha256)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((r.try_get("path")?, r.try_get("job_id")?)))
            .transpose()
    }

    /// Adds an item and counts it; false when the path is taken (a concurrent upload won).
    pub async fn insert_item(&self, it: &NewItem<'_>) -> Result<bool, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query(
            "INSERT INTO collection_items (collection_id, path, sha256, job_id, duplicate, created_ms) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (collection_id, path) DO NOTHING",
        )
        .bind(it.collection_id)
        .bind(it.path)
        .bind(it.sha256)
        .bind(it.job_id)
        .bind(i64::from(it.duplicate))
        .bind(it.created_ms)
        .execute(&mut *tx)
        .await?;
        if n.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE collections SET items = items + 1, duplicates = duplicates + $1, first_activity_ms = COALESCE(first_activity_ms, $2), last_activity_ms = $2 WHERE id = $3",
        )
        .bind(i64::from(it.duplicate))
        .bind(it.created_ms)
        .bind(it.collection_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Takes back an item whose job could not be queued after all.
    pub async fn remove_item(&self, collection_id: i64, path: &str) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query(
            "DELETE FROM collection_items WHERE collection_id = $1 AND path = $2 AND duplicate = 0 AND finished = 0",
        )
        .bind(collection_id)
        .bind(path)
        .execute(&mut *tx)
        .await?;
        if n.rows_affected() > 0 {
            sqlx::query("UPDATE collections SET items = items - 1 WHERE id = $1")
                .bind(collection_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await
    }

    /// One page of items (path order) matching `filter`, and how many match.
    pub async fn items_page(
        &self,
        c: &CollectionRow,
        filter: &ItemFilter,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<ItemRow>, i64), sqlx::Error> {
        let (cond, binds) = filter.sql(c.min_confidence);
        let n = binds.len();
        let sql = format!(
            "{ITEM_SELECT} WHERE i.collection_id = $1{cond} ORDER BY i.path LIMIT ${} OFFSET ${}",
            n + 2,
            n + 3
        );
        let rows = bind_all(sqlx::query(&sql).bind(c.id), &binds)
            .bind(limit)
            .bind(offset)
            .fetch_all(&self.pool)
            .await?;
        let count = format!(
            "SELECT COUNT(*) AS n FROM collection_items i JOIN predictions p ON p.job_id = i.job_id WHERE i.collection_id = $1{cond}"
        );
        let total: i64 = bind_all(sqlx::query(&count).bind(c.id), &binds)
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?;
        Ok((rows.iter().map(item_from).collect::<Result<_, _>>()?, total))
    }

    /// Up to `limit` items after item id `after`, in id order: the export reads a collection
    /// this way, a bounded batch at a time.
    pub async fn items_after(
        &self,
        collection_id: i64,
        after: i64,
        limit: i64,
    ) -> Result<Vec<ItemRow>, sqlx::Error> {
        let rows = sqlx::query(&format!(
            "{ITEM_SELECT} WHERE i.collection_id = $1 AND i.id > $2 ORDER BY i.id LIMIT $3"
        ))
        .bind(collection_id)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(item_from).collect()
    }
}

/// Counts a finished job in every collection holding it as its own (not duplicate) item, once:
/// done or failed, uncertain below the collection's threshold, its top-1 class in the
/// histogram. Runs in the recorder's transaction; a redelivered outcome finds the item
/// finished and counts nothing.
pub(super) async fn count_outcome(
    tx: &mut Transaction<'_, Any>,
    job_id: &str,
    done: bool,
    top: Option<(&str, f64)>,
    at_ms: i64,
) -> Result<(), sqlx::Error> {
    let rows = sqlx::query(
        "SELECT collection_id FROM collection_items WHERE job_id = $1 AND duplicate = 0 AND finished = 0",
    )
    .bind(job_id)
    .fetch_all(&mut **tx)
    .await?;
    for row in rows {
        let id: i64 = row.try_get("collection_id")?;
        sqlx::query("UPDATE collection_items SET finished = 1 WHERE job_id = $1 AND collection_id = $2 AND duplicate = 0")
            .bind(job_id)
            .bind(id)
            .execute(&mut **tx)
            .await?;
        let score = top.map_or(1.0, |(_, s)| s);
        sqlx::query(
            "UPDATE collections SET done = done + $1, failed = failed + $2, uncertain = uncertain + (CASE WHEN $1 = 1 AND $3 < min_confidence THEN 1 ELSE 0 END), last_activity_ms = $4 WHERE id = $5",
        )
        .bind(i64::from(done))
        .bind(i64::from(!done))
        .bind(score)
        .bind(at_ms)
        .bind(id)
        .execute(&mut **tx)
        .await?;
        if let (true, Some((label, _))) = (done, top) {
            sqlx::query(
                "INSERT INTO collection_labels (collection_id, label, n) VALUES ($1, $2, 1) ON CONFLICT (collection_id, label) DO UPDATE SET n = collection_labels.n + 1",
            )
            .bind(id)
            .bind(label)
            .execute(&mut **tx)
            .await?;
        }
    }
    Ok(())
}
