use std::collections::HashMap;
use std::marker::PhantomData;

use mongodb::bson::{doc, Document};
use mongodb::Database;
use schemas::events::{Favourite, FavouriteAction, Follow, FollowAction, Rating};
use schemas::Event;
use stores::mongo::{ACTIVE, EVENT_ID, FAVOURITES, FOLLOWS, RATINGS, UPDATED_AT};

use crate::{Record, Sink, SinkError, Written};

/// Statements per `update` command: well under the server's limits (100,000 statements, 48 MB).
pub const STATEMENTS_PER_COMMAND: usize = 1_000;

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
        Self::plan(events).into_iter().map(|(_, s)| s).collect()
    }

    /// The statements, each with the index (in `events`) of the event it writes.
    fn plan<'a>(events: impl IntoIterator<Item = &'a E>) -> Vec<(usize, Document)> {
        let mut newest: HashMap<String, (usize, &E, (i64, String))> = HashMap::new();
        let mut order = Vec::new();
        for (i, e) in events.into_iter().enumerate() {
            let key = e.identity().to_string();
            let v = e.version();
            match newest.get_mut(&key) {
                Some(slot) if slot.2 >= v => {}
                Some(slot) => *slot = (i, e, v),
                None => {
                    order.push(key.clone());
                    newest.insert(key, (i, e, v));
                }
            }
        }
        order
            .iter()
            .map(|k| {
                let (i, e, (at, id)) = &newest[k];
                // Every condition spelled out in `$and`: the local MongoDB-wire server's update
                // path mis-groups a top-level `$or` next to sibling fields; real MongoDB reads
                // both forms the same.
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
                (*i, doc! {"q": filter, "u": {"$set": set}, "upsert": true})
            })
            .collect()
    }

    /// Runs the statements. Duplicate-key refusals are stale events and fine; a document the server
    /// refuses for what it is (see [`classify`]) is returned as `Rejected` with the statement's index
    /// and the server's message; anything else fails the whole batch as transient (every statement
    /// is idempotent, so it is retried whole).
    pub async fn apply(db: &Database, statements: Vec<Document>) -> Result<(), SinkError> {
        let mut rejected = Vec::new();
        for (c, chunk) in statements.chunks(STATEMENTS_PER_COMMAND).enumerate() {
            let reply = db
                .run_command(doc! {"update": E::COLLECTION, "updates": chunk, "ordered": false})
                .await
                .map_err(|e| match e.kind.as_ref() {
                    mongodb::error::ErrorKind::Command(c)
                        if classify(c.code) == Class::Permanent =>
                    {
                        SinkError::Permanent(format!("mongodb: {e}"))
                    }
                    _ => SinkError::Transient(format!("mongodb: {e}")),
                })?;
            for error in reply.get_array("writeErrors").into_iter().flatten() {
                let Some(d) = error.as_document() else {
                    continue;
                };
                let code = stores::mongo::number(d, "code").map_or(0, |c| c as i32);
                match classify(code) {
                    Class::Stale => {}
                    Class::Transient => {
                        return Err(SinkError::Transient(format!("mongodb write error: {d}")))
                    }
                    Class::Permanent => {
                        let index = stores::mongo::number(d, "index").map_or(0, |i| i as usize);
                        let message = d.get_str("errmsg").unwrap_or_default();
                        rejected.push((
                            c * STATEMENTS_PER_COMMAND + index,
                            format!("mongodb error {code}: {message}"),
                        ));
                    }
                }
            }
            if let Ok(e) = reply.get_document("writeConcernError") {
                return Err(SinkError::Transient(format!("mongodb write concern: {e}")));
            }
        }
        if rejected.is_empty() {
            Ok(())
        } else {
            Err(SinkError::Rejected(rejected))
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Class {
    /// The stored document is newer (the conditional upsert's duplicate key).
    Stale,
    /// The server's state: retry.
    Transient,
    /// The document itself is refused and would be again.
    Permanent,
}

/// MongoDB's error codes (src/mongo/base/error_codes.yml) that a write of ours can meet. Codes of
/// a server that is busy, stepping down, shutting down or unreachable are transient; codes about the
/// document itself are permanent. Unknown codes are transient: a stalled partition is visible in
/// the lag and recoverable, a wrongly dead-lettered record is only recoverable by replay.
pub fn classify(code: i32) -> Class {
    match code {
        11000 => Class::Stale,
        2          // BadValue
        | 9        // FailedToParse
        | 14       // TypeMismatch
        | 17       // DocumentTooLarge (internal)
        | 28       // PathNotViable
        | 40       // ConflictingUpdateOperators
        | 52       // DollarPrefixedFieldName
        | 55       // InvalidDBRef
        | 56       // EmptyFieldName
        | 57       // DottedFieldName
        | 66       // ImmutableField
        | 121      // DocumentValidationFailure
        | 10334    // BSONObjectTooLarge
        | 17280    // KeyTooLong
        | 17419    // document too large after update
        | 17420 => Class::Permanent,
        _ => Class::Transient,
    }
}

impl<E: MongoDoc> Sink for MongoSink<E> {
    type Event = E;

    fn name(&self) -> &'static str {
        E::COLLECTION
    }

    /// A resent event is a statement whose condition no longer matches: it changes nothing, and
    /// the server does not say which statements matched, so it is not counted as a duplicate.
    async fn write(&self, batch: &[Record<E>]) -> Result<Written, SinkError> {
        let (events, statements): (Vec<usize>, Vec<Document>) =
            Self::plan(batch.iter().map(|r| &r.event))
                .into_iter()
                .unzip();
        match Self::apply(&self.db, statements).await {
            // Statement indexes -> the batch's: the refused document's newest event. Older events
            // for the same document in the batch were superseded by it.
            Err(SinkError::Rejected(items)) => Err(SinkError::Rejected(
                items
                    .into_iter()
                    .map(|(s, reason)| (events[s], reason))
                    .collect(),
            )),
            other => other.map(|()| Written::default()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_errors_are_classified_as_real_mongodb_reports_them() {
        assert_eq!(classify(11000), Class::Stale);
        // A document over 16 MiB, a $jsonSchema validator's refusal, a bad field name.
        for code in [10334, 17419, 121, 52, 56, 2] {
            assert_eq!(classify(code), Class::Permanent, "{code}");
        }
        // Not primary / stepping down / shutting down / timeouts / network.
        for code in [10107, 189, 91, 11600, 50, 262, 6, 89, 9001, 112] {
            assert_eq!(classify(code), Class::Transient, "{code}");
        }
    }
}
