//! The home feed and fan-out progress reads, over Redis seeded the way the fan-out consumers write it
//! (the consumers' own tests drive the planner and workers).

use reqwest::Method;
use serde_json::{json, Value};
use stores::feeds::{Feeds, FollowChange, Post};

use crate::helpers::{new_id, spawn_app_with, test_settings, API_KEY};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_merges_celebrities_and_pages_by_cursor() {
    let mut settings = test_settings();
    settings.feeds.prefix = format!("test_{}:", uuid::Uuid::new_v4().simple());
    let feeds = Feeds::connect(settings.feeds.clone()).await.unwrap();
    let app = spawn_app_with(settings).await;
    let (reader, friend, star) = (new_id(), new_id(), new_id());
    let change = |followee: &str| FollowChange {
        follower: reader.clone(),
        followee: followee.to_string(),
        active: true,
        at_ms: 1,
        event_id: new_id(),
    };
    feeds
        .apply_follows(&[change(&friend), change(&star)])
        .await
        .unwrap();
    let mut posts = Vec::new();
    for i in 0..5 {
        let p = Post {
            post_id: new_id(),
            author_id: if i % 2 == 0 {
                friend.clone()
            } else {
                star.clone()
            },
            text: format!("post {i}"),
            created_at: 1_790_000_000_000 + i * 1000,
        };
        feeds.save_post(&p).await.unwrap();
        if p.author_id == star {
            feeds.add_celebrity_post(&p, 5_000_000).await.unwrap();
        } else {
            let followers = [reader.clone()];
            feeds
                .deliver(&[(&p.post_id, p.created_at, 0, &followers)])
                .await
                .unwrap();
            feeds
                .record_progress(&p.post_id, 1, 1, Some(&reader), true)
                .await
                .unwrap();
        }
        posts.push(p);
    }
    let get = |path: String| {
        let app = &app;
        let reader = reader.clone();
        async move {
            let resp = app
                .as_user(Method::GET, &path, &reader)
                .send()
                .await
                .unwrap();
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
        }
    };
    let (status, page1) = get("/api/v1/feed?limit=2".into()).await;
    assert_eq!(status, 200, "{page1}");
    assert_eq!(page1["items"][0]["post_id"], posts[4].post_id.as_str());
    assert_eq!(page1["items"][0]["author_id"], friend.as_str());
    assert_eq!(page1["items"][0]["text"], "post 4");
    assert_eq!(
        page1["items"][1]["post_id"],
        posts[3].post_id.as_str(),
        "the star's post, merged"
    );
    let cursor = page1["next_cursor"].as_str().unwrap();
    let (_, page2) = get(format!("/api/v1/feed?limit=2&before={cursor}")).await;
    let (_, page3) = get(format!(
        "/api/v1/feed?limit=2&before={}",
        page2["next_cursor"].as_str().unwrap()
    ))
    .await;
    assert_eq!(page3["items"].as_array().unwrap().len(), 1);
    assert_eq!(page3["next_cursor"], Value::Null);
    assert_eq!(page3["items"][0]["post_id"], posts[0].post_id.as_str());

    // A service names the user; validation; progress.
    let resp = app
        .client
        .get(app.url(&format!("/api/v1/feed?user_id={reader}")))
        .header("x-api-key", API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = app
        .client
        .get(app.url("/api/v1/feed"))
        .header("x-api-key", API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    for bad in [
        "/api/v1/feed?limit=0",
        "/api/v1/feed?before=nonsense",
        "/api/v1/feed?before=12:abc",
    ] {
        assert_eq!(get(bad.into()).await.0, 400, "{bad}");
    }
    assert_eq!(get(format!("/api/v1/feed?user_id={friend}")).await.0, 403);
    let (status, progress) = get(format!("/api/v1/posts/{}/fanout", posts[0].post_id)).await;
    assert_eq!(status, 200);
    assert_eq!(
        progress,
        json!({"post_id": posts[0].post_id, "state": "done", "followers": 1, "pages_emitted": 1,
               "pages_done": 1, "pages_total": 1})
    );
    let (_, progress) = get(format!("/api/v1/posts/{}/fanout", posts[1].post_id)).await;
    assert_eq!(progress["state"], "celebrity");
    let (status, body) = get(format!("/api/v1/posts/{}/fanout", new_id())).await;
    assert_eq!(status, 404);
    assert!(body["error"].is_string());
    assert_eq!(get("/api/v1/posts/nope/fanout".into()).await.0, 400);
    feeds.delete_all().await.unwrap();
}
