//! What the frontend's list reads share: page-numbered lists (`{items, total, page, size, pages}`),
//! cursor-paginated lists, and the read-your-writes marker.
//!
//! Writes are asynchronous (202 once Kafka has the event, then the sink applies it), so every list
//! says how far the sink has got for it: `last_applied_at` is the newest applied event time among
//! the user's documents of that kind (removals included), and each item carries the `event_id` that
//! set it. A client that wrote at time T (or with event id E) knows its write is visible once
//! `last_applied_at >= T` (or the item shows E, or a newer change).

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;
use schemas::domain::DomainError;

/// A page of a page-numbered list.
#[derive(Debug, Serialize, ToSchema)]
pub struct Paged<T> {
    pub items: Vec<T>,
    /// Items in the whole list.
    pub total: u64,
    pub page: u64,
    pub size: u64,
    /// Pages in the whole list (`ceil(total / size)`).
    pub pages: u64,
    /// RFC 3339: the newest change of this list the sink has applied (null: none yet).
    pub last_applied_at: Option<String>,
}

impl<T> Paged<T> {
    pub fn new(items: Vec<T>, total: u64, page: u64, size: u64, last: Option<i64>) -> Self {
        Self {
            items,
            total,
            page,
            size,
            pages: total.div_ceil(size),
            last_applied_at: last.map(iso_millis),
        }
    }
}

/// A page of a cursor-paginated list.
#[derive(Debug, Serialize, ToSchema)]
pub struct CursorPage<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct CursorQuery {
    /// `next_cursor` of the previous page; absent for the first page.
    pub cursor: Option<String>,
    /// 1..=1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

impl CursorQuery {
    /// The validated limit.
    pub fn limit(&self) -> Result<i64, ApiError> {
        let limit = self.limit.unwrap_or(100);
        if (1..=1000).contains(&limit) {
            Ok(limit)
        } else {
            Err(DomainError::new("limit", "must be 1 to 1000").into())
        }
    }
}

/// Epoch milliseconds as RFC 3339 with milliseconds.
pub fn iso_millis(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// The newest `updated_at` among the documents matching `filter` (removed ones included).
pub async fn last_applied(
    collection: mongodb::Collection<mongodb::bson::Document>,
    filter: mongodb::bson::Document,
) -> Result<Option<i64>, ApiError> {
    use stores::mongo::UPDATED_AT;
    let newest = collection
        .find_one(filter)
        .sort(mongodb::bson::doc! {UPDATED_AT: -1})
        .projection(mongodb::bson::doc! {UPDATED_AT: 1, "_id": 0})
        .await?;
    Ok(newest
        .as_ref()
        .and_then(|d| stores::mongo::number(d, UPDATED_AT))
        .map(|n| n as i64))
}

/// One page of a user's documents, newest change first, with the list's total and its
/// `last_applied_at` (the newest change among `all_of_user`, which may include removed ones); the
/// three queries run at once.
pub async fn page_of<T>(
    db: &mongodb::Database,
    collection: &str,
    filter: mongodb::bson::Document,
    all_of_user: mongodb::bson::Document,
    (page, size): (u64, u64),
) -> Result<(u64, Vec<T>, Option<i64>), ApiError>
where
    T: serde::de::DeserializeOwned + Send + Sync,
{
    use futures::TryStreamExt;
    use stores::mongo::UPDATED_AT;
    let typed = db.collection::<T>(collection);
    let (total, docs, last) = futures::try_join!(
        async { Ok::<_, ApiError>(typed.count_documents(filter.clone()).await?) },
        async {
            let cursor = typed
                .find(filter.clone())
                .sort(mongodb::bson::doc! {UPDATED_AT: -1, "movie_id": 1})
                .skip((page - 1) * size)
                .limit(size as i64)
                .await?;
            Ok::<Vec<T>, ApiError>(cursor.try_collect().await?)
        },
        last_applied(db.collection(collection), all_of_user),
    )?;
    Ok((total, docs, last))
}
