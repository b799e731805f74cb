use std::collections::HashMap;
use std::marker::PhantomData;

use mongodb::bson::{doc, Bson, Document};
use mongodb::Database;
use schemas::events::{Favourite, FavouriteAction, Follow, FollowAction, Rating};
use schemas::Event;
use stores::mongo::{ACTIVE, EVENT_ID, FAVOURITES, FOLLOWS, RATINGS, UPDATED_AT};

use crate::{Record, Sink, SinkError};

/// Statements per `update` command: well under the server's limits (100,000 statements, 48 MB).
pub const STATEMENTS_PER_COMMAND: usize = 1_000;

/// Duplicate key: how a conditional upsert reports "the stored document is newer".
const DUPLICATE_KEY: i64 = 11000;

/// An event that sets the state of one document.
pub trait MongoDoc: Event {
    const COLLECTION: &'static str;
    /// The fields that identify the document (its unique index).
    fn identity(&self) -> Document;
    /// The state it sets (besides the version).
    fn state(&self) -> Document;
    /// Its version: (occurred_at in epoch ms, event_id). Newer wins.
    fn version(&self) -> (i64, String);
}

impl MongoDoc for Rating {
    const COLLECTION: &'static str = RATINGS;
    fn identity(&self) -> Document {
        doc! {"user_id": self.user_id.to_string(), "movie_id": self.movie_id.to_string()}
    }
    fn state(&self) -> Document {
        doc! {"score": i32::from(self.score.get())}
    }
    fn version(&self) -> (i64, String) {
        (self.occurred_at.millis(), self.event_id.to_string())
    }
}

impl MongoDoc for Favourite {
    const COLLECTION: &'static str = FAVOURITES;
    fn identity(&self) -> Document {
        doc! {"user_id": self.user_id.to_string(), "movie_id": self.movie_id.to_string()}
    }
    fn state(&self) -> Document {
        doc! {ACTIVE: self.action == FavouriteAction::Added}
    }
    fn version(&self) -> (i64, String) {
        (self.occurred_at.millis(), self.event_id.to_string())
    }
}

impl MongoDoc for Follow {
    const COLLECTION: &'static str = FOLLOWS;
    fn identity(&self) -> Document {
        doc! {"follower_id": self.follower_id.to_string(), "followee_id": self.followee_id.to_string()}
    }
    fn state(&self) -> Document {
        doc! {ACTIVE: self.action == FollowAction::Follow}
    }
    fn version(&self) -> (i64, String) {
        (self.occurred_at.millis(), self.event_id.to_string())
    }
}

/// Writes batches of `E` into `E::COLLECTION` as conditional upserts.
pub struct MongoSink<E> {
    db: Database,
    _event: PhantomData<fn() -> E>,
}

impl<E: MongoDoc> MongoSink<E> {
    pub fn new(db: Database) -> Self {
        Self {
            db,
            _event: PhantomData,
        }
    }

    /// The `update` statements for a batch: one per document, from the newest event for it (the
    /// server need not apply a batch's statements in order, so the batch is reduced first).
    pub fn statements<'a>(events: impl IntoIterator<Item = &'a E>) -> Vec<Document> {
        let mut newest: HashMap<String, (&E, (i64, String))> = HashMap::new();
        let mut order = Vec::new();
        for e in events {
            let key = e.identity().to_string();
            let v = e.version();
            match newest.get_mut(&key) {
                Some(slot) if slot.1 >= v => {}
                Some(slot) => *slot = (e, v),
                None => {
                    order.push(key.clone());
                    newest.insert(key, (e, v));
                }
            }
        }
        order
            .iter()
            .map(|k| {
                let (e, (at, id)) = &newest[k];
                // Every condition spelled out in `$and`: the local MongoDB-wire server's update
                // path mis-groups a top-level `$or` next to sibling fields (STACK.md lists the
                // server's quirks); real MongoDB reads both forms the same.
                let mut all: Vec<Document> =
                    e.identity().into_iter().map(|(k, v)| doc! {k: v}).collect();
                all.push(doc! {"$or": [
                    {UPDATED_AT: {"$lt": at}},
                    {"$and": [{UPDATED_AT: at}, {EVENT_ID: {"$lt": id.as_str()}}]},
                ]});
                let filter = doc! {"$and": all};
                let mut set = e.identity();
                set.extend(e.state());
                set.insert(UPDATED_AT, *at);
                set.insert(EVENT_ID, id.as_str());
                doc! {"q": filter, "u": {"$set": set}, "upsert": true}
            })
            .collect()
    }

    /// Runs the statements; duplicate-key refusals are stale events and fine, anything else fails
    /// the batch (retried whole: every statement is idempotent).
    pub async fn apply(db: &Database, statements: Vec<Document>) -> Result<(), SinkError> {
        for chunk in statements.chunks(STATEMENTS_PER_COMMAND) {
            let reply = db
                .run_command(doc! {"update": E::COLLECTION, "updates": chunk, "ordered": false})
                .await
                .map_err(|e| SinkError::Retriable(format!("mongodb: {e}")))?;
            if let Ok(errors) = reply.get_array("writeErrors") {
                let other: Vec<&Bson> = errors
                    .iter()
                    .filter(|e| {
                        e.as_document()
                            .and_then(|d| stores::mongo::number(d, "code"))
                            .map(|c| c as i64)
                            != Some(DUPLICATE_KEY)
                    })
                    .collect();
                if !other.is_empty() {
                    return Err(SinkError::Retriable(format!(
                        "mongodb write errors: {other:?}"
                    )));
                }
            }
            if let Ok(e) = reply.get_document("writeConcernError") {
                return Err(SinkError::Retriable(format!("mongodb write concern: {e}")));
            }
        }
        Ok(())
    }
}

impl<E: MongoDoc> Sink for MongoSink<E> {
    type Event = E;

    fn name(&self) -> &'static str {
        E::COLLECTION
    }

    async fn write(&self, batch: &[Record<E>]) -> Result<(), SinkError> {
        Self::apply(&self.db, Self::statements(batch.iter().map(|r| &r.event))).await
    }
}
