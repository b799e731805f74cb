//! The MongoDB sink: ratings, favourites and follows as last-writer-wins documents (see
//! `stores::mongo` for the shapes and why removals mark rather than delete).
//!
//! One batch is one `update` command per collection (up to [`STATEMENTS_PER_COMMAND`] statements):
//! each statement is a conditional upsert "replace the pair's document if mine is newer". When the
//! stored version is newer or equal, the filter does not match, the upsert tries to insert a second
//! document for the pair and the unique index refuses it (code 11000): that refusal *is* the "stale,
//! ignore" outcome. So a replayed batch, a duplicate event or a late older event leaves the
//! documents as they are, in any batch split and any order.

mod sink;

pub use sink::{MongoDoc, MongoSink, STATEMENTS_PER_COMMAND};
