//! The Mongo collections and unique indexes, created on the real MongoDB-wire server.

use mongodb::bson::{doc, Document};
use stores::mongo::{
    migrate, FAVOURITES, FOLLOWS, RATINGS, YOUTUBE_CHANNELS, YOUTUBE_KEYS, YOUTUBE_QUERIES,
    YOUTUBE_VIDEOS,
};

#[tokio::test]
async fn collections_and_unique_indexes_are_created_idempotently() {
    let stack = common::config::StackConfig::from_env();
    let client = mongodb::Client::with_uri_str(&stack.mongo_url)
        .await
        .unwrap();
    let db_name = format!("test_{}", uuid::Uuid::new_v4().simple());
    assert_eq!(migrate(&client, &db_name).await.unwrap(), 14);
    assert_eq!(
        migrate(&client, &db_name).await.unwrap(),
        14,
        "a second run changes nothing"
    );
    let db = client.database(&db_name);
    let mut names = db.list_collection_names().await.unwrap();
    names.sort();
    assert_eq!(
        names,
        [
            FAVOURITES,
            FOLLOWS,
            RATINGS,
            "resize_jobs",
            YOUTUBE_CHANNELS,
            YOUTUBE_KEYS,
            YOUTUBE_QUERIES,
            YOUTUBE_VIDEOS
        ]
    );

    // The unique compound keys hold: the second rating of the same (user, movie) is refused.
    let ratings = db.collection::<Document>(RATINGS);
    ratings
        .insert_one(doc! {"user_id": "u1", "movie_id": "m1", "score": 7})
        .await
        .unwrap();
    ratings
        .insert_one(doc! {"user_id": "u1", "movie_id": "m2", "score": 7})
        .await
        .unwrap();
    let err = ratings
        .insert_one(doc! {"user_id": "u1", "movie_id": "m1", "score": 9})
        .await
        .unwrap_err();
    assert!(is_duplicate_key(&err), "{err}");
    let follows = db.collection::<Document>(FOLLOWS);
    follows
        .insert_one(doc! {"follower_id": "a", "followee_id": "b"})
        .await
        .unwrap();
    let err = follows
        .insert_one(doc! {"follower_id": "a", "followee_id": "b"})
        .await
        .unwrap_err();
    assert!(is_duplicate_key(&err), "{err}");
    db.drop().await.unwrap();
}

/// Duplicate key, by code (11000) as every MongoDB server reports it; the message text differs.
fn is_duplicate_key(err: &mongodb::error::Error) -> bool {
    use mongodb::error::{ErrorKind, WriteFailure};
    matches!(&*err.kind, ErrorKind::Write(WriteFailure::WriteError(e)) if e.code == 11000)
}
