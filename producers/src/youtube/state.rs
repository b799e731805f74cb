//! The fetchers' shared state in MongoDB (`stores::mongo::YOUTUBE_KEYS`, `YOUTUBE_QUERIES`): which
//! keys are out of quota until when, and how far each query has been fetched. Every fetcher
//! instance reads it before each call, so a key exhausted by one is skipped by all.

use futures::TryStreamExt;
use mongodb::bson::{doc, Document};
use mongodb::options::UpdateOptions;
use mongodb::Database;
use stores::mongo::{YOUTUBE_KEYS, YOUTUBE_QUERIES};

#[derive(Clone)]
pub struct SharedState {
    db: Database,
}

/// An epoch-ms field.
fn millis(d: &Document, key: &str) -> Option<i64> {
    stores::mongo::number(d, key).map(|n| n as i64)
}

impl SharedState {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// (key name, exhausted until) of every key still out of quota at `now_ms`.
    pub async fn exhausted_keys(
        &self,
        now_ms: i64,
    ) -> Result<Vec<(String, i64)>, mongodb::error::Error> {
        let docs: Vec<Document> = self
            .db
            .collection::<Document>(YOUTUBE_KEYS)
            .find(doc! {"exhausted_until": {"$gt": now_ms}})
            .await?
            .try_collect()
            .await?;
        Ok(docs
            .iter()
            .filter_map(|d| {
                Some((
                    d.get_str("name").ok()?.to_string(),
                    millis(d, "exhausted_until")?,
                ))
            })
            .collect())
    }

    pub async fn mark_exhausted(
        &self,
        name: &str,
        until_ms: i64,
    ) -> Result<(), mongodb::error::Error> {
        self.db
            .collection::<Document>(YOUTUBE_KEYS)
            .update_one(
                doc! {"name": name},
                doc! {"$set": {"name": name, "exhausted_until": until_ms}},
            )
            .with_options(UpdateOptions::builder().upsert(true).build())
            .await?;
        Ok(())
    }

    /// The newest published time fetched for `query` (epoch ms).
    pub async fn cursor(&self, query: &str) -> Result<Option<i64>, mongodb::error::Error> {
        Ok(self
            .db
            .collection::<Document>(YOUTUBE_QUERIES)
            .find_one(doc! {"query": query})
            .await?
            .and_then(|d| millis(&d, "last_published_at")))
    }

    /// Moves the query's cursor forward (never back).
    pub async fn advance_cursor(
        &self,
        query: &str,
        published_ms: i64,
    ) -> Result<(), mongodb::error::Error> {
        let collection = self.db.collection::<Document>(YOUTUBE_QUERIES);
        let current = self.cursor(query).await?;
        if current.is_some_and(|c| c >= published_ms) {
            return Ok(());
        }
        collection
            .update_one(
                doc! {"query": query},
                doc! {"$set": {"query": query, "last_published_at": published_ms}},
            )
            .with_options(UpdateOptions::builder().upsert(true).build())
            .await?;
        Ok(())
    }
}
