//! Likes, favourites and follows end to end: API write -> Kafka -> Mongo sink -> MongoDB -> API read,
//! on the real MongoDB-wire server, including late (older) and repeated events.

use std::time::Duration;

use consumers::sinks::mongo::{MongoDoc, MongoSink};
use consumers::RuntimeConfig;
use reqwest::Method;
use schemas::events::{Favourite, Follow, Rating};
use serde_json::{json, Value};

use crate::helpers::{new_id, spawn_app_with, test_settings, TestApp};

struct Docs {
    app: TestApp,
    db: mongodb::Database,
    stop: tokio::sync::watch::Sender<bool>,
    sinks: tokio::task::JoinSet<()>,
}

/// The app and the three Mongo sinks (in-process, fresh consumer groups starting at the topics'
/// ends) on a database of their own.
async fn docs() -> Docs {
    let mut settings = test_settings();
    settings.stack.mongo_database = format!("test_docs_{}", uuid::Uuid::new_v4().simple());
    let client = mongodb::Client::with_uri_str(&settings.stack.mongo_url)
        .await
        .unwrap();
    stores::mongo::migrate(&client, &settings.stack.mongo_database)
        .await
        .unwrap();
    let db = client.database(&settings.stack.mongo_database);
    let app = spawn_app_with(settings).await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut sinks = tokio::task::JoinSet::new();
    spawn_sink::<Rating>(&app, &db, &stopped, &mut sinks);
    spawn_sink::<Favourite>(&app, &db, &stopped, &mut sinks);
    spawn_sink::<Follow>(&app, &db, &stopped, &mut sinks);
    Docs {
        app,
        db,
        stop,
        sinks,
    }
}

fn spawn_sink<E: MongoDoc>(
    app: &TestApp,
    db: &mongodb::Database,
    stopped: &tokio::sync::watch::Receiver<bool>,
    sinks: &mut tokio::task::JoinSet<()>,
) {
    let mut runtime = RuntimeConfig::from_env("unused").unwrap();
    runtime.group_id = format!("test-docs-{}", uuid::Uuid::new_v4());
    runtime.max_wait = Duration::from_millis(50);
    consumers::groups::commit_at_end(
        &app.settings.stack.kafka_brokers,
        &runtime.group_id,
        E::TOPIC,
    )
    .unwrap();
    let codec = schemas::Codec::new(&app.settings.stack.schema_registry_url).unwrap();
    let sink = MongoSink::<E>::new(db.clone());
    let mut stop = stopped.clone();
    sinks.spawn(async move {
        consumers::run(
            runtime,
            codec,
            sink,
            common::shutdown::Shutdown::when(async move {
                let _ = stop.wait_for(|s| *s).await;
            }),
        )
        .await
        .unwrap();
    });
}

impl Docs {
    /// A write as `user`; 202 expected.
    async fn write(&self, method: Method, path: &str, user: &str, body: Value) {
        let resp = self
            .app
            .as_user(method, path, user)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 202, "{path}: {}", resp.text().await.unwrap());
    }

    async fn get(&self, path: &str, user: &str) -> (u16, Value) {
        let resp = self
            .app
            .as_user(Method::GET, path, user)
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap())
    }

    /// Reads `path` until `done` holds for the body (the sink is asynchronous), up to 30 s.
    async fn eventually(&self, path: &str, user: &str, done: impl Fn(&Value) -> bool) -> Value {
        let mut last = Value::Null;
        for _ in 0..300 {
            let (status, body) = self.get(path, user).await;
            assert_eq!(status, 200, "{path}: {body}");
            if done(&body) {
                return body;
            }
            last = body;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{path} did not reach the expected state in 30 s; last answer: {last}");
    }

    async fn drop(mut self) {
        let _ = self.stop.send(true);
        while self.sinks.join_next().await.is_some() {}
        self.db.drop().await.unwrap();
    }
}

/// Versions a day ago plus `ms` (inside the time bounds, in order).
fn at(ms: i64) -> Value {
    static DAY_AGO: std::sync::LazyLock<i64> =
        std::sync::LazyLock::new(|| schemas::domain::Timestamp::now().millis() - 86_400_000);
    json!(*DAY_AGO + ms)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn likes_favourites_and_follows_reach_the_reads() {
    let d = docs().await;
    let (u, v) = (new_id(), new_id());
    let mut movies: Vec<String> = (0..3).map(|_| new_id()).collect();
    movies.sort();
    let (m1, m2, m3) = (&movies[0], &movies[1], &movies[2]);
    for (i, (m, score)) in [(m1, 10), (m2, 0), (m3, 7)].into_iter().enumerate() {
        d.write(
            Method::POST,
            &format!("/api/v1/likes/users/{u}/movies/{m}"),
            &u,
            json!({"score": score, "occurred_at": at(i as i64)}),
        )
        .await;
    }
    d.write(
        Method::POST,
        &format!("/api/v1/likes/users/{v}/movies/{m1}"),
        &v,
        json!({"score": 6}),
    )
    .await;
    for (i, m) in [m1, m2].into_iter().enumerate() {
        d.write(
            Method::POST,
            &format!("/api/v1/favorites/users/{u}/movies/{m}"),
            &u,
            json!({"occurred_at": at(i as i64)}),
        )
        .await;
    }
    d.write(
        Method::DELETE,
        &format!("/api/v1/favorites/users/{u}/movies/{m2}"),
        &u,
        json!({"occurred_at": at(5)}),
    )
    .await;
    let mut followees: Vec<String> = (0..3).map(|_| new_id()).collect();
    followees.sort();
    for f in &followees {
        d.write(
            Method::POST,
            &format!("/api/v1/follows/{f}"),
            &u,
            json!({"occurred_at": at(1)}),
        )
        .await;
    }
    d.write(
        Method::DELETE,
        &format!("/api/v1/follows/{}", followees[1]),
        &u,
        json!({"occurred_at": at(2)}),
    )
    .await;

    // A user's ratings, newest first, paginated.
    let likes = d
        .eventually(&format!("/api/v1/likes/users/{u}?size=2"), &u, |b| {
            b["total"] == 3
        })
        .await;
    assert_eq!(likes["pages"], 2);
    assert_eq!(likes["page"], 1);
    assert_eq!(likes["size"], 2);
    let scores: Vec<(&str, i64)> = likes["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["movie_id"].as_str().unwrap(),
                i["score"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(scores, [(m3.as_str(), 7), (m2.as_str(), 0)]);
    assert!(likes["last_applied_at"].is_string(), "{likes}");
    let (_, page2) = d
        .get(&format!("/api/v1/likes/users/{u}?size=2&page=2"), &u)
        .await;
    assert_eq!(page2["items"][0]["movie_id"], m1.as_str());
    assert_eq!(page2["items"].as_array().unwrap().len(), 1);

    // A movie's summary, with the caller's own score.
    let rating = d
        .eventually(&format!("/api/v1/movies/{m1}/rating"), &u, |b| {
            b["votes"] == 2
        })
        .await;
    assert_eq!(
        rating,
        json!({"movie_id": m1, "average": 8.0, "votes": 2, "likes": 1, "dislikes": 0, "your_score": 10})
    );
    let (_, unrated) = d
        .get(&format!("/api/v1/movies/{}/rating", new_id()), &u)
        .await;
    assert_eq!(unrated["votes"], 0);
    assert_eq!(unrated["average"], Value::Null);
    assert_eq!(unrated["your_score"], Value::Null);

    // Top rated, with a vote threshold. (Every test's sinks read the whole topic, so this database
    // may also hold other tests' and benchmarks' ratings: only ours are compared.)
    let (_, top) = d.get("/api/v1/movies/top-rated?limit=100", &u).await;
    let top_ids: Vec<&str> = top
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["movie_id"].as_str().unwrap())
        .filter(|m| movies.iter().any(|x| x == m))
        .collect();
    assert_eq!(top_ids, [m1.as_str(), m3.as_str(), m2.as_str()]);
    let (_, top) = d.get("/api/v1/movies/top-rated?min_votes=2", &u).await;
    let ours: Vec<&Value> = top
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| movies.iter().any(|x| t["movie_id"] == x.as_str()))
        .collect();
    assert_eq!(ours, [&json!({"movie_id": m1, "average": 8.0, "votes": 2})]);

    // Favourites: m2 was added then removed.
    let favs = d
        .eventually(&format!("/api/v1/favorites/users/{u}"), &u, |b| {
            b["total"] == 1 && b["items"][0]["movie_id"] == m1.as_str()
        })
        .await;
    assert_eq!(favs["pages"], 1);
    assert!(favs["items"][0]["event_id"].is_string());

    // Follows, walked by cursor; the unfollowed one is gone.
    let following_path = format!("/api/v1/users/{u}/following?limit=1");
    let first = d
        .eventually(&following_path, &u, |b| {
            b["items"][0]["user_id"] == followees[0].as_str()
        })
        .await;
    let cursor = first["next_cursor"].as_str().unwrap().to_string();
    let second = d
        .eventually(&format!("{following_path}&cursor={cursor}"), &u, |b| {
            b["items"][0]["user_id"] == followees[2].as_str()
        })
        .await;
    assert_eq!(second["next_cursor"], Value::Null);
    let (_, followers) = d
        .get(&format!("/api/v1/users/{}/followers", followees[2]), &u)
        .await;
    assert_eq!(followers["items"].as_array().unwrap().len(), 1);
    assert_eq!(followers["items"][0]["user_id"], u.as_str());
    let (_, followers) = d
        .get(&format!("/api/v1/users/{}/followers", followees[1]), &u)
        .await;
    assert_eq!(followers["items"], json!([]));

    // A user reads only their own lists; parameters are validated.
    assert_eq!(
        d.get(&format!("/api/v1/favorites/users/{u}"), &v).await.0,
        403
    );
    assert_eq!(d.get(&format!("/api/v1/likes/users/{u}"), &v).await.0, 403);
    for bad in [
        format!("/api/v1/favorites/users/{u}?page=0"),
        format!("/api/v1/likes/users/{u}?size=101"),
        "/api/v1/likes/users/not-a-uuid".to_string(),
        "/api/v1/movies/not-a-uuid/rating".to_string(),
        "/api/v1/movies/top-rated?limit=0".to_string(),
        "/api/v1/movies/top-rated?min_votes=0".to_string(),
        format!("/api/v1/users/{u}/followers?cursor=nope"),
        format!("/api/v1/users/{u}/following?limit=1001"),
    ] {
        let (status, body) = d.get(&bad, &u).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body["error"].is_string());
    }
    d.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_older_events_and_duplicates_change_nothing() {
    let d = docs().await;
    let u = new_id();
    let (kept, gone, marker) = (new_id(), new_id(), new_id());
    let fav = |m: &str| format!("/api/v1/favorites/users/{u}/movies/{m}");
    // The removal (newer) arrives before the add (older) it supersedes: stays removed.
    d.write(
        Method::DELETE,
        &fav(&gone),
        &u,
        json!({"occurred_at": at(20)}),
    )
    .await;
    d.write(
        Method::POST,
        &fav(&gone),
        &u,
        json!({"occurred_at": at(10)}),
    )
    .await;
    // The add (newer) arrives before an older removal: stays added.
    d.write(
        Method::POST,
        &fav(&kept),
        &u,
        json!({"occurred_at": at(20)}),
    )
    .await;
    d.write(
        Method::DELETE,
        &fav(&kept),
        &u,
        json!({"occurred_at": at(10)}),
    )
    .await;
    // The same rating event twice, then an older score delivered late.
    let movie = new_id();
    let event_id = new_id();
    let rate = format!("/api/v1/likes/users/{u}/movies/{movie}");
    for _ in 0..2 {
        d.write(
            Method::POST,
            &rate,
            &u,
            json!({"score": 9, "event_id": event_id, "occurred_at": at(30)}),
        )
        .await;
    }
    d.write(
        Method::POST,
        &rate,
        &u,
        json!({"score": 2, "occurred_at": at(25)}),
    )
    .await;
    // Unfollow (newer) before the follow (older): not following.
    let star = new_id();
    d.write(
        Method::DELETE,
        &format!("/api/v1/follows/{star}"),
        &u,
        json!({"occurred_at": at(20)}),
    )
    .await;
    d.write(
        Method::POST,
        &format!("/api/v1/follows/{star}"),
        &u,
        json!({"occurred_at": at(10)}),
    )
    .await;
    // A last write on each topic: once it is visible, everything before it (same user, same
    // partition) has been applied.
    d.write(
        Method::POST,
        &fav(&marker),
        &u,
        json!({"occurred_at": at(40)}),
    )
    .await;
    d.write(
        Method::POST,
        &format!("/api/v1/likes/users/{u}/movies/{marker}"),
        &u,
        json!({"score": 1, "occurred_at": at(40)}),
    )
    .await;
    let marker_followee = new_id();
    d.write(
        Method::POST,
        &format!("/api/v1/follows/{marker_followee}"),
        &u,
        json!({"occurred_at": at(40)}),
    )
    .await;

    let favs = d
        .eventually(&format!("/api/v1/favorites/users/{u}"), &u, |b| {
            b["total"] == 2
        })
        .await;
    let ids: Vec<&str> = favs["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["movie_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [marker.as_str(), kept.as_str()], "{favs}");

    d.eventually(&format!("/api/v1/likes/users/{u}"), &u, |b| b["total"] == 2)
        .await;
    let (_, rating) = d.get(&format!("/api/v1/movies/{movie}/rating"), &u).await;
    assert_eq!(rating["votes"], 1);
    assert_eq!(rating["your_score"], 9);

    let following = d
        .eventually(&format!("/api/v1/users/{u}/following"), &u, |b| {
            b["items"].as_array().is_some_and(|i| !i.is_empty())
        })
        .await;
    assert_eq!(following["items"].as_array().unwrap().len(), 1);
    assert_eq!(following["items"][0]["user_id"], marker_followee.as_str());
    d.drop().await;
}
