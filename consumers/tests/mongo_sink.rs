//! The Mongo sink's writes on the real MongoDB-wire server: the same events in any batch split and
//! any order, with duplicates and late older events, leave the same documents — the newest per pair.

use consumers::sinks::mongo::MongoSink;
use mongodb::bson::{doc, Document};
use schemas::domain::{EventId, MovieId, Timestamp, UserId};
use schemas::events::{Favourite, FavouriteAction};
use stores::mongo::{FavouriteDoc, FAVOURITES};

fn events() -> Vec<Favourite> {
    let users: Vec<UserId> = (0..3)
        .map(|_| UserId::from_uuid(uuid::Uuid::new_v4()))
        .collect();
    let movies: Vec<MovieId> = (0..4)
        .map(|_| MovieId::from_uuid(uuid::Uuid::new_v4()))
        .collect();
    let mut out = Vec::new();
    // 60 events over 12 pairs, times colliding on purpose (ties are broken by event id).
    for i in 0..60u64 {
        let x = i.wrapping_mul(2_654_435_761) % 1_000;
        out.push(Favourite {
            event_id: EventId::new_random(),
            user_id: users[(x % 3) as usize],
            movie_id: movies[(x / 3 % 4) as usize],
            action: if x % 2 == 0 {
                FavouriteAction::Added
            } else {
                FavouriteAction::Removed
            },
            occurred_at: Timestamp::from_millis("t", 1_790_000_000_000 + (x % 7) as i64).unwrap(),
        });
    }
    out
}

/// The expected documents: per pair, the event with the greatest (time, event id).
fn expected(events: &[Favourite]) -> Vec<(String, String, bool, i64, String)> {
    let mut best: std::collections::BTreeMap<(String, String), &Favourite> = Default::default();
    for e in events {
        let key = (e.user_id.to_string(), e.movie_id.to_string());
        let newer = best.get(&key).is_none_or(|b| {
            (e.occurred_at.millis(), e.event_id.to_string())
                > (b.occurred_at.millis(), b.event_id.to_string())
        });
        if newer {
            best.insert(key, e);
        }
    }
    best.into_iter()
        .map(|((u, m), e)| {
            (
                u,
                m,
                e.action == FavouriteAction::Added,
                e.occurred_at.millis(),
                e.event_id.to_string(),
            )
        })
        .collect()
}

async fn stored(db: &mongodb::Database) -> Vec<(String, String, bool, i64, String)> {
    use futures::TryStreamExt;
    let docs: Vec<FavouriteDoc> = db
        .collection::<FavouriteDoc>(FAVOURITES)
        .find(doc! {})
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let mut out: Vec<_> = docs
        .into_iter()
        .map(|d| (d.user_id, d.movie_id, d.active, d.updated_at, d.event_id))
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn any_split_any_order_with_replays_gives_the_newest_per_pair() {
    let stack = common::config::StackConfig::from_env();
    let client = mongodb::Client::with_uri_str(&stack.mongo_url)
        .await
        .unwrap();
    let events = events();
    let want = expected(&events);
    assert!(want.iter().any(|w| w.2) && want.iter().any(|w| !w.2));

    // (batch size, reversed?, replay the whole stream a second time?)
    for (split, reversed, replay) in [
        (60, false, false),
        (1, false, true),
        (7, true, true),
        (13, false, true),
    ] {
        let name = format!("test_{}", uuid::Uuid::new_v4().simple());
        stores::mongo::migrate(&client, &name).await.unwrap();
        let db = client.database(&name);
        let mut order = events.clone();
        if reversed {
            order.reverse();
        }
        let rounds = if replay { 2 } else { 1 };
        for _ in 0..rounds {
            for batch in order.chunks(split) {
                MongoSink::<Favourite>::apply(&db, MongoSink::<Favourite>::statements(batch))
                    .await
                    .unwrap();
            }
        }
        assert_eq!(
            stored(&db).await,
            want,
            "split {split}, reversed {reversed}"
        );
        let _: Document = db.run_command(doc! {"dropDatabase": 1}).await.unwrap();
    }
}
