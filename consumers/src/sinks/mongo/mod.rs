//! MongoDB: the collections the Mongo sink writes (likes/ratings, favourites, follows) and their
//! indexes. The sink itself is the MongoDB issue's; the definitions live here, beside it, and the
//! initialiser applies them.
//!
//! Ids are stored as strings (the local MongoDB-wire server cannot store every BSON type; see
//! STACK.md), and every unique key is a compound of the two ids that identify a document.

use mongodb::bson::{doc, Document};
use mongodb::options::IndexOptions;
use mongodb::{Client, IndexModel};

pub const RATINGS: &str = "ratings";
pub const FAVOURITES: &str = "favourites";
pub const FOLLOWS: &str = "follows";

/// (collection, index keys, unique, index name) for every index the sink relies on.
pub fn indexes() -> Vec<(&'static str, Document, bool, &'static str)> {
    vec![
        (
            RATINGS,
            doc! {"user_id": 1, "movie_id": 1},
            true,
            "ratings_user_movie",
        ),
        (RATINGS, doc! {"movie_id": 1}, false, "ratings_movie"),
        (
            FAVOURITES,
            doc! {"user_id": 1, "movie_id": 1},
            true,
            "favourites_user_movie",
        ),
        (
            FOLLOWS,
            doc! {"follower_id": 1, "followee_id": 1},
            true,
            "follows_follower_followee",
        ),
        (
            FOLLOWS,
            doc! {"followee_id": 1, "follower_id": 1},
            false,
            "follows_followee_follower",
        ),
    ]
}

#[derive(Debug, thiserror::Error)]
#[error("mongodb: {0}")]
pub struct MongoError(#[from] mongodb::error::Error);

/// Creates the collections and indexes in `database` (idempotent: existing ones are left alone).
pub async fn migrate(client: &Client, database: &str) -> Result<usize, MongoError> {
    let db = client.database(database);
    let existing = db.list_collection_names().await?;
    for name in [RATINGS, FAVOURITES, FOLLOWS] {
        if !existing.iter().any(|c| c == name) {
            db.create_collection(name).await?;
        }
    }
    let all = indexes();
    for (collection, keys, unique, name) in &all {
        let model = IndexModel::builder()
            .keys(keys.clone())
            .options(
                IndexOptions::builder()
                    .unique(*unique)
                    .name(name.to_string())
                    .build(),
            )
            .build();
        db.collection::<Document>(collection)
            .create_index(model)
            .await?;
    }
    Ok(all.len())
}
