//! Per-user listings: any table a user owns rows of, one page at a time, newest first.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::Db;

/// A per-user list: which table, which columns, newest first by what, and how a row reads.
pub struct UserListing<T> {
    pub(super) table: &'static str,
    pub(super) cols: &'static str,
    pub(super) order: &'static str,
    pub(super) from_row: fn(&AnyRow) -> Result<T, sqlx::Error>,
}

impl Db {
    /// One page of a user's rows of `list` and how many the user has in all.
    pub async fn user_page<T>(
        &self,
        list: &UserListing<T>,
        user_id: i64,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<T>, i64), sqlx::Error> {
        let UserListing {
            table,
            cols,
            order,
            from_row,
        } = list;
        let rows = sqlx::query(&format!(
            "SELECT {cols} FROM {table} WHERE user_id = $1 ORDER BY {order} LIMIT $2 OFFSET $3"
        ))
        .bind(user_id)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?;
        let total: i64 = sqlx::query(&format!(
            "SELECT COUNT(*) AS n FROM {table} WHERE user_id = $1"
        ))
        .bind(user_id)
        .fetch_one(&self.pool)
        .await?
        .try_get("n")?;
        Ok((rows.iter().map(from_row).collect::<Result<_, _>>()?, total))
    }
}
