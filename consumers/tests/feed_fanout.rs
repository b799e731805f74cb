//! The feed fan-out on the real broker and Redis: a post by an author with 25,000 followers reaches
//! every follower's feed exactly once through the planner and three worker processes, one of them
//! SIGKILLed mid-stream; celebrities are merged at read time; feed pages stay stable while new
//! posts arrive; unfollowing stops new posts.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "support/children.rs"]
mod children;
use children::{free_port, scrape};

use consumers::sinks::feed::{Planner, Worker};
use consumers::RuntimeConfig;
use producers::{EventProducer, ProducerConfig};
use schemas::domain::{EventId, PostId, Timestamp, UserId};
use schemas::events::{FanoutBatch, PostCreated};
use schemas::Event;
use stores::feeds::{Cursor, FeedConfig, Feeds, FollowChange};

fn config(prefix: &str, page_size: usize, celebrity_followers: u64) -> FeedConfig {
    let mut c = FeedConfig::from_env().unwrap();
    c.prefix = prefix.to_string();
    c.page_size = page_size;
    c.celebrity_followers = celebrity_followers;
    c
}

fn follow(follower: &str, followee: &str, active: bool, at_ms: i64) -> FollowChange {
    FollowChange {
        follower: follower.to_string(),
        followee: followee.to_string(),
        active,
        at_ms,
        event_id: uuid::Uuid::new_v4().to_string(),
    }
}

fn post(author: UserId, at_ms: i64) -> PostCreated {
    PostCreated {
        event_id: EventId::new_random(),
        post_id: PostId::from_uuid(uuid::Uuid::new_v4()),
        author_id: author,
        text: format!("post at {at_ms}"),
        occurred_at: Timestamp::from_millis("t", at_ms).unwrap(),
    }
}

/// Topics and schemas exist (a fresh stack may not have run `ugc-init` yet).
async fn initialised() {
    let stack = common::config::StackConfig::from_env();
    let specs = consumers::init::topic_specs().unwrap();
    producers::admin::ensure_topics(&stack.kafka_brokers, &specs)
        .await
        .unwrap();
    schemas::Codec::new(&stack.schema_registry_url)
        .unwrap()
        .register_all()
        .await
        .unwrap();
}

fn producer() -> EventProducer {
    let stack = common::config::StackConfig::from_env();
    let codec = schemas::Codec::new(&stack.schema_registry_url).unwrap();
    EventProducer::new(
        &ProducerConfig::from_env(&stack.kafka_brokers).unwrap(),
        codec,
    )
    .unwrap()
}

async fn wait_done(feeds: &Feeds, post: &str, secs: u64) -> stores::feeds::Progress {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(p) = feeds.progress(post).await.unwrap() {
            if p.celebrity || (p.planned && p.pages_done >= p.pages_emitted) {
                return p;
            }
        }
        assert!(
            Instant::now() < deadline,
            "post {post} not fanned out in {secs} s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A feed-fanout process; `metrics` is the port of its metrics endpoint (none when `None`).
fn process(role: &str, group: &str, prefix: &str, page_size: usize, metrics: Option<u16>) -> Child {
    Command::new(env!("CARGO_BIN_EXE_feed-fanout"))
        .arg(role)
        .env(
            "METRICS_ADDR",
            metrics.map_or("off".to_string(), |p| format!("127.0.0.1:{p}")),
        )
        .env("FANOUT_PROGRESS_INTERVAL_MS", "200")
        .env("CONSUMER_GROUP", group)
        .env("FEED_KEY_PREFIX", prefix)
        .env("FANOUT_PAGE_SIZE", page_size.to_string())
        .env("BATCH_MAX_ROWS", "2")
        .env("BATCH_MAX_WAIT_MS", "20")
        .env("KAFKA_SESSION_TIMEOUT_MS", "3000")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_reaches_25000_followers_exactly_once_with_a_worker_killed() {
    initialised().await;
    let stack = common::config::StackConfig::from_env();
    let id = uuid::Uuid::new_v4().simple().to_string();
    let (prefix, group) = (format!("test_{id}:"), format!("test-feed-{id}"));
    let page_size = 1_000;
    let feeds = Feeds::connect(config(&prefix, page_size, 1_000_000))
        .await
        .unwrap();
    let author = UserId::from_uuid(uuid::Uuid::new_v4());
    let followers: Vec<String> = (0..25_000)
        .map(|_| uuid::Uuid::new_v4().to_string())
        .collect();
    let changes: Vec<FollowChange> = followers
        .iter()
        .map(|f| follow(f, &author.to_string(), true, 1))
        .collect();
    for chunk in changes.chunks(5_000) {
        feeds.apply_follows(chunk).await.unwrap();
    }
    assert_eq!(
        feeds.follower_count(&author.to_string()).await.unwrap(),
        25_000
    );
    for (role, topic) in [
        ("planner", PostCreated::TOPIC),
        ("worker", FanoutBatch::TOPIC),
    ] {
        consumers::groups::commit_at_end(&stack.kafka_brokers, &format!("{group}.{role}"), topic)
            .unwrap();
    }
    let metrics_port = free_port();
    let planner = process("planner", &group, &prefix, page_size, Some(metrics_port));
    let mut workers: Vec<Child> = (0..3)
        .map(|_| process("worker", &group, &prefix, page_size, None))
        .collect();

    let p = post(author, Timestamp::now().millis());
    let post_id = p.post_id.to_string();
    producer().send(&p, &[]).await.unwrap();

    // Kill one worker once some pages are written (mid-stream), then start a replacement.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let done = feeds
            .progress(&post_id)
            .await
            .unwrap()
            .map_or(0, |p| p.pages_done);
        if done >= 3 {
            break;
        }
        assert!(Instant::now() < deadline, "no pages written in 60 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    workers[0].kill().unwrap();
    workers[0].wait().unwrap();
    workers[0] = process("worker", &group, &prefix, page_size, None);

    let progress = wait_done(&feeds, &post_id, 120).await;
    assert_eq!(progress.pages_emitted, 25);
    assert_eq!(progress.pages_done, 25);
    assert!(!progress.celebrity);

    // The planner publishes the post's progress on its metrics endpoint.
    let series =
        |state: &str| format!("fanout_post_pages{{post_id=\"{post_id}\",state=\"{state}\"}} 25");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = scrape(metrics_port).await;
        if ["emitted", "done", "total"]
            .iter()
            .all(|s| text.contains(&series(s)))
        {
            assert!(
                text.contains("fanout_posts_total{path=\"fanout\"} 1"),
                "{text}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "progress never reached 25/25:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A resend of the same PostCreated: the planner takes it (its duplicate counter says so) and
    // emits no page: the walk is over.
    producer().send(&p, &[]).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = scrape(metrics_port).await;
        if text.contains("consumer_records_duplicates_total{sink=\"feed-planner\"} 1") {
            assert!(text.contains("fanout_pages_emitted_total 25"), "{text}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the planner never took the resend:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        feeds
            .progress(&post_id)
            .await
            .unwrap()
            .unwrap()
            .pages_emitted,
        25
    );

    // Every follower's feed holds the post, once, and nothing else.
    let client = redis::Client::open(stack.redis_url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut pipe = redis::pipe();
    for f in &followers {
        pipe.cmd("ZRANGE")
            .arg(format!("{prefix}feed:{f}"))
            .arg(0)
            .arg(-1);
    }
    let feeds_of: Vec<Vec<String>> = pipe.query_async(&mut conn).await.unwrap();
    let wrong = feeds_of
        .iter()
        .filter(|f| f.as_slice() != [post_id.clone()])
        .count();
    assert_eq!(
        wrong, 0,
        "{wrong} of 25000 feeds are not exactly [the post]"
    );

    workers.push(planner);
    for mut c in workers {
        let _ = c.kill();
        let _ = c.wait();
    }
    feeds.delete_all().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn celebrities_merge_at_read_time_pages_stay_stable_and_unfollow_stops_new_posts() {
    initialised().await;
    let stack = common::config::StackConfig::from_env();
    let id = uuid::Uuid::new_v4().simple().to_string();
    let prefix = format!("test_{id}:");
    let feeds = Feeds::connect(config(&prefix, 2, 3)).await.unwrap();
    let (reader, other) = (
        uuid::Uuid::new_v4().to_string(),
        uuid::Uuid::new_v4().to_string(),
    );
    let (star, friend) = (
        UserId::from_uuid(uuid::Uuid::new_v4()),
        UserId::from_uuid(uuid::Uuid::new_v4()),
    );
    let mut changes = vec![
        follow(&reader, &star.to_string(), true, 1),
        follow(&other, &star.to_string(), true, 1),
        follow(&reader, &friend.to_string(), true, 1),
        follow(&other, &friend.to_string(), true, 1),
    ];
    for _ in 0..3 {
        changes.push(follow(
            &uuid::Uuid::new_v4().to_string(),
            &star.to_string(),
            true,
            1,
        ));
    }
    // A late, older unfollow changes nothing.
    changes.push(follow(&reader, &friend.to_string(), false, 0));
    feeds.apply_follows(&changes).await.unwrap();

    // Planner and one worker in-process.
    let codec = schemas::Codec::new(&stack.schema_registry_url).unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    for role in ["planner", "worker"] {
        let mut runtime = RuntimeConfig::from_env("unused").unwrap();
        runtime.group_id = format!("test-feed-{id}.{role}");
        runtime.max_wait = Duration::from_millis(20);
        let mut stop = stopped.clone();
        let shutdown = common::shutdown::Shutdown::when(async move {
            let _ = stop.wait_for(|s| *s).await;
        });
        let codec = codec.clone();
        if role == "planner" {
            consumers::groups::commit_at_end(
                &stack.kafka_brokers,
                &runtime.group_id,
                PostCreated::TOPIC,
            )
            .unwrap();
            let sink = Planner::new(feeds.clone(), producer(), Default::default());
            tasks.spawn(async move {
                consumers::run(runtime, codec, sink, shutdown)
                    .await
                    .unwrap()
            });
        } else {
            consumers::groups::commit_at_end(
                &stack.kafka_brokers,
                &runtime.group_id,
                FanoutBatch::TOPIC,
            )
            .unwrap();
            let sink = Worker::new(feeds.clone());
            tasks.spawn(async move {
                consumers::run(runtime, codec, sink, shutdown)
                    .await
                    .unwrap()
            });
        }
    }

    // Five posts by the friend and two by the star, interleaved in time.
    let t0 = Timestamp::now().millis() - 60_000;
    let producer = producer();
    let mut posts = Vec::new();
    for (i, author) in [friend, star, friend, friend, star, friend, friend]
        .into_iter()
        .enumerate()
    {
        let p = post(author, t0 + i as i64 * 1_000);
        producer.send(&p, &[]).await.unwrap();
        posts.push(p);
    }
    for p in &posts {
        let progress = wait_done(&feeds, &p.post_id.to_string(), 60).await;
        assert_eq!(progress.celebrity, p.author_id == star, "{progress:?}");
    }
    let newest_first: Vec<String> = posts.iter().rev().map(|p| p.post_id.to_string()).collect();
    let ids = |v: &[stores::feeds::Post]| v.iter().map(|p| p.post_id.clone()).collect::<Vec<_>>();

    // The reader sees both authors merged; the star's posts were never fanned out.
    assert_eq!(
        ids(&feeds.read(&reader, None, 100).await.unwrap()),
        newest_first
    );
    let client = redis::Client::open(stack.redis_url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let fanned: Vec<String> = redis::cmd("ZRANGE")
        .arg(format!("{prefix}feed:{reader}"))
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(fanned.len(), 5, "only the friend's posts are fanned out");

    // Pages of 3, with a new post arriving between pages: no item repeated or skipped.
    let page1 = feeds.read(&reader, None, 3).await.unwrap();
    let cursor = Cursor {
        at_ms: page1[2].created_at,
        post_id: page1[2].post_id.clone(),
    };
    let newer = post(friend, Timestamp::now().millis());
    producer.send(&newer, &[]).await.unwrap();
    wait_done(&feeds, &newer.post_id.to_string(), 60).await;
    let page2 = feeds.read(&reader, Some(&cursor), 3).await.unwrap();
    let last = Cursor {
        at_ms: page2[2].created_at,
        post_id: page2[2].post_id.clone(),
    };
    let page3 = feeds.read(&reader, Some(&last), 3).await.unwrap();
    let walked: Vec<String> = [ids(&page1), ids(&page2), ids(&page3)].concat();
    assert_eq!(walked, newest_first);
    assert_eq!(
        feeds.read(&reader, None, 1).await.unwrap()[0].post_id,
        newer.post_id.to_string()
    );

    // Unfollow (newer): older posts stay, new ones stop.
    feeds
        .apply_follows(&[follow(&reader, &friend.to_string(), false, 2)])
        .await
        .unwrap();
    let after = post(friend, Timestamp::now().millis() + 1);
    producer.send(&after, &[]).await.unwrap();
    wait_done(&feeds, &after.post_id.to_string(), 60).await;
    let feed = ids(&feeds.read(&reader, None, 100).await.unwrap());
    assert!(!feed.contains(&after.post_id.to_string()));
    assert!(feed.contains(&newer.post_id.to_string()));
    let other_feed = ids(&feeds.read(&other, None, 100).await.unwrap());
    assert_eq!(other_feed[0], after.post_id.to_string());

    let _ = stop.send(true);
    while tasks.join_next().await.is_some() {}
    feeds.delete_all().await.unwrap();
}

/// Redis refuses a follow whose key holds another type (something else wrote there): the mirror
/// says permanent (the runtime dead-letters the record); Redis unreachable is transient (retried).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follow_redis_refuses_is_permanent_an_unreachable_redis_transient() {
    use consumers::sinks::feed::FollowMirror;
    use consumers::{Record, Sink, SinkError};
    use schemas::events::{Follow, FollowAction};
    let stack = common::config::StackConfig::from_env();
    let prefix = format!("test_{}:", uuid::Uuid::new_v4().simple());
    let feeds = Feeds::connect(config(&prefix, 100, 1_000_000))
        .await
        .unwrap();
    let (follower, followee) = (
        UserId::from_uuid(uuid::Uuid::new_v4()),
        UserId::from_uuid(uuid::Uuid::new_v4()),
    );
    let batch = vec![Record {
        event: Follow {
            event_id: EventId::new_random(),
            follower_id: follower,
            followee_id: followee,
            action: FollowAction::Follow,
            occurred_at: Timestamp::now(),
        },
        partition: 0,
        offset: 0,
    }];
    let client = redis::Client::open(stack.redis_url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("SET")
        .arg(format!("{prefix}followers:{followee}"))
        .arg("not a sorted set")
        .query_async(&mut conn)
        .await
        .unwrap();
    match FollowMirror::new(feeds.clone()).write(&batch).await {
        Err(SinkError::Permanent(e)) => assert!(e.contains("WRONGTYPE"), "{e}"),
        other => panic!("expected a permanent refusal, got {other:?}"),
    }
    feeds.delete_all().await.unwrap();

    // A Redis that goes away: a private server on a free port, stopped before the write.
    let port = free_port();
    let mut server = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server (installed by make services)");
    let mut own = config(&prefix, 100, 1_000_000);
    own.redis_url = format!("redis://127.0.0.1:{port}");
    own.timeout = Duration::from_secs(1);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mirror = loop {
        match Feeds::connect(own.clone()).await {
            Ok(f) => break FollowMirror::new(f),
            Err(e) => assert!(Instant::now() < deadline, "private redis: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    mirror.write(&batch).await.unwrap();
    server.kill().unwrap();
    server.wait().unwrap();
    let started = Instant::now();
    match mirror.write(&batch).await {
        Err(SinkError::Transient(_)) => {}
        other => panic!("expected a transient failure, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "a Redis that is down is an error, not a hang"
    );
}

/// The planner never takes over a post: a PostCreated (straight to Kafka, past the API's check)
/// reusing another author's post id is refused with the reason (dead-lettered by the runtime), and
/// the post keeps its author and text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_planner_never_overwrites_another_authors_post() {
    use consumers::{Record, Sink, SinkError};
    initialised().await;
    let stack = common::config::StackConfig::from_env();
    let prefix = format!("test_{}:", uuid::Uuid::new_v4().simple());
    let feeds = Feeds::connect(config(&prefix, 100, 1_000_000))
        .await
        .unwrap();
    let producer = EventProducer::new(
        &ProducerConfig::from_env(&stack.kafka_brokers).unwrap(),
        schemas::Codec::new(&stack.schema_registry_url).unwrap(),
    )
    .unwrap();
    let planner = Planner::new(feeds.clone(), producer, Default::default());
    let alice = post(
        UserId::from_uuid(uuid::Uuid::new_v4()),
        Timestamp::now().millis(),
    );
    let mut mallory = post(
        UserId::from_uuid(uuid::Uuid::new_v4()),
        Timestamp::now().millis(),
    );
    mallory.post_id = alice.post_id;
    mallory.text = "spam".into();
    let record = |e: &PostCreated| Record {
        event: e.clone(),
        partition: 0,
        offset: 0,
    };
    planner.write(&[record(&alice)]).await.unwrap();
    match planner.write(&[record(&mallory)]).await {
        Err(SinkError::Rejected(items)) => {
            assert_eq!(items.len(), 1);
            assert!(items[0].1.contains("belongs to author"), "{}", items[0].1);
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let client = redis::Client::open(stack.redis_url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let (author, text): (String, String) = redis::cmd("HMGET")
        .arg(format!("{prefix}post:{}", alice.post_id))
        .arg("author_id")
        .arg("text")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        (author, text),
        (alice.author_id.to_string(), alice.text.clone())
    );
    feeds.delete_all().await.unwrap();
}

/// Feeds are trimmed to `FEED_MAX_ITEMS` by the posts that trim (one in eight), newest kept.
#[tokio::test]
async fn a_trimming_post_cuts_every_feed_it_reaches_to_the_newest_max_items() {
    let prefix = format!("t{}:", uuid::Uuid::new_v4().simple());
    let mut c = config(&prefix, 100, 1_000_000);
    c.max_items = 5;
    let feeds = Feeds::connect(c).await.unwrap();
    let followers = vec!["f1".to_string(), "f2".to_string()];
    let post_where = |trim: bool| loop {
        let id = uuid::Uuid::new_v4().to_string();
        if stores::feeds::trims(&id) == trim {
            return id;
        }
    };
    let mut posts = Vec::new();
    for at in 0..20i64 {
        let id = post_where(false);
        feeds
            .deliver(&[(id.as_str(), 1_000 + at, 0, followers.as_slice())])
            .await
            .unwrap();
        posts.push(id);
    }
    let redis = redis::Client::open(common::config::StackConfig::from_env().redis_url).unwrap();
    let mut conn = redis.get_multiplexed_async_connection().await.unwrap();
    for f in &followers {
        let n: usize = redis::cmd("ZCARD")
            .arg(format!("{prefix}feed:{f}"))
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(n, 20, "posts that do not trim leave the feed as it is");
    }
    // Delivered, the trimming post was attempted on both feeds and cut each to the newest five.
    let id = post_where(true);
    feeds
        .deliver(&[(id.as_str(), 2_000, 1, followers.as_slice())])
        .await
        .unwrap();
    for f in &followers {
        let kept: Vec<String> = redis::cmd("ZRANGE")
            .arg(format!("{prefix}feed:{f}"))
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await
            .unwrap();
        let mut newest = posts[16..].to_vec();
        newest.push(id.clone());
        assert_eq!(kept, newest, "{f}");
    }
    feeds.delete_all().await.unwrap();
}
