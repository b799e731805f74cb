//! `make bench`, the videos part: the video reads over 1,000,000 videos (BENCH_VIDEOS) seeded
//! straight into ClickHouse through the sink's row type, each re-fetched once for 10 % of them;
//! then 30 statistics snapshots of each (BENCH_SNAPSHOTS) and of their 2,000 channels, the
//! YouTube analytics reads over them, and the views prediction through Kafka. Writes two sections
//! of docs/benchmarks.md (see scripts/bench.sh).
//!
//!     cargo run --release -p api --example videos_bench   (with `make services` running)

use std::collections::HashMap;
use std::time::Instant;

use consumers::sinks::clickhouse::{ClickHouseConfig, Table};
use schemas::domain::{EventId, Timestamp};
use schemas::events::VideoFetched;

mod bench;
use bench::{start_api, time_reads, write_section, PathFor};

const WORDS: &[&str] = &[
    "travel",
    "trailer",
    "review",
    "music",
    "cooking",
    "street",
    "food",
    "guide",
    "city",
    "night",
    "mountain",
    "river",
    "ocean",
    "island",
    "history",
    "science",
    "space",
    "football",
    "tennis",
    "cinema",
    "festival",
    "interview",
    "tutorial",
    "camera",
    "drone",
    "winter",
    "summer",
    "market",
];
const PLACES: &[&str] = &[
    "Sri Lanka",
    "Tokyo",
    "Lisbon",
    "Iceland",
    "Peru",
    "Kenya",
    "Oslo",
    "Hanoi",
    "Chile",
    "Malta",
];

fn video(i: usize, now_ms: i64) -> VideoFetched {
    let w = |k: usize| WORDS[(i * 7 + k * 13) % WORDS.len()];
    VideoFetched {
        event_id: EventId::new_random(),
        video_id: format!("vid{i:08}"),
        title: format!(
            "{} {} in {} {}",
            w(0),
            w(1),
            PLACES[i % PLACES.len()],
            i % 1000
        ),
        description: format!(
            "A {} about {} and {}, filmed in {}.",
            w(2),
            w(3),
            w(4),
            PLACES[(i / 10) % PLACES.len()]
        ),
        channel_id: format!("UC{:04}", i % 2000),
        channel_title: format!("Channel {}", i % 2000),
        published_at: Timestamp::from_millis("t", now_ms - (i as i64 * 2_591) % (30 * 86_400_000))
            .unwrap(),
        thumbnails: HashMap::from([(
            "default".to_string(),
            format!("https://i.ytimg.com/vi/vid{i:08}/default.jpg"),
        )]),
        query: w(0).to_string(),
        fetched_at: Timestamp::from_millis("t", now_ms).unwrap(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::var("BENCH_VIDEOS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    // BENCH_VIDEOS_DB keeps the seeded database (and reuses it when it is already full), for
    // measuring one change after another without seeding again.
    let kept = std::env::var("BENCH_VIDEOS_DB").ok();
    let db = kept
        .clone()
        .unwrap_or_else(|| format!("bench_videos_{}", uuid::Uuid::new_v4().simple()));
    let ch = ClickHouseConfig::from_env()?.with_database(&db);
    // As ugc-init does: a kept database gets the tables added since, filled from their sources.
    consumers::init::migrate_clickhouse(&ch).await?;
    let client = ch.client();
    let seeded: u64 = client
        .query("SELECT count() FROM videos")
        .fetch_one()
        .await?;
    let now = match seeded {
        0 => Timestamp::now().millis(),
        _ => {
            client
                .query("SELECT max(fetched_at_ms) FROM videos")
                .fetch_one::<u64>()
                .await? as i64
        }
    };
    let started = Instant::now();
    // Inserts of 20,000 (the sink's batches are at most BATCH_MAX_ROWS): the views expand each
    // video into ~70 trigram rows per insert block.
    let total = if seeded == 0 { n + n / 10 } else { 0 };
    for start in (0..total).step_by(20_000) {
        let mut insert = client
            .insert::<<VideoFetched as Table>::Row>(VideoFetched::TABLE)
            .await?;
        for i in start..(start + 20_000).min(total) {
            // The last tenth re-fetches videos already written: one row per video in the reads.
            let v = video(if i < n { i } else { (i - n) * 10 }, now);
            insert.write(&v.row(0, i as i64)).await?;
        }
        insert.end().await?;
    }
    let seed_secs = started.elapsed().as_secs_f64();
    eprintln!("[bench] seeded {n} videos in {seed_secs:.0} s");

    let (base, stop_api) = start_api(|s| s.stack.clickhouse_database = db.clone()).await?;
    let endpoints: Vec<(&str, PathFor<'_>)> = vec![
        (
            "newest videos, page 1 (`/videos?limit=20`)",
            Box::new(|_| "/api/v1/videos?limit=20".into()),
        ),
        (
            "search a place (`/videos/search?q=lan`)",
            Box::new(|_| "/api/v1/videos/search?q=lan".into()),
        ),
        (
            "search a word and a number, varying (`q=<word> <n>`: mostly a trigram no video has)",
            Box::new(|i| {
                format!(
                    "/api/v1/videos/search?q={}%20{}",
                    WORDS[i % WORDS.len()],
                    i % 1000
                )
            }),
        ),
        (
            "search a place and a number, varying, mostly no match (`q=<place> <n>`)",
            Box::new(|i| {
                format!(
                    "/api/v1/videos/search?q={}%20{}",
                    PLACES[i % PLACES.len()].replace(' ', "%20"),
                    (i * 37) % 1000
                )
            }),
        ),
        (
            "search two letters (`q=ky`: no trigram, one pass)",
            Box::new(|_| "/api/v1/videos/search?q=ky".into()),
        ),
        (
            "trending keywords, 24 h",
            Box::new(|_| "/api/v1/videos/trending-keywords?period=24h".into()),
        ),
        (
            "a channel's videos per day, 30 days",
            Box::new(move |i| {
                let fmt = |ms: i64| {
                    time::OffsetDateTime::from_unix_timestamp(ms / 1000)
                        .unwrap()
                        .format(&time::format_description::well_known::Rfc3339)
                        .unwrap()
                };
                format!(
                    "/api/v1/channels/UC{:04}/stats?from={}&to={}",
                    i % 2000,
                    fmt(now - 30 * 86_400_000),
                    fmt(now)
                )
            }),
        ),
    ];
    let goal = |name: &str| match name.starts_with("search") {
        true => "p99 < 100 ms",
        false => "",
    };
    let rows = time_reads(&base, &endpoints, 100, goal).await?;
    let analytics = youtube_part(&base, &db, &client, n, seeded, now).await?;
    let seeding = match seeded {
        0 => format!("{seed_secs:.0} s"),
        _ => format!("seeded earlier into `{db}`"),
    };
    let md = format!(
        "\n## Video reads\n\n\
{n} videos (plus {refetch} re-fetches of them) seeded straight into ClickHouse's `videos` table \
({seeding}, with the views that fill `video_search`, `video_timeline`, `video_grams` and \
`video_gram_counts`); reads through the API, 100 sequential requests each. Every search is exact (the \
latest fetch of each video): a query whose rarest trigram is in at most `VIDEO_SEARCH_WALK_BUDGET` \
videos checks those; otherwise, and under three characters, the texts are read newest first in \
publish-time slices. The bench's titles carry a number 0-999, so `<place> <n>` rarely matches and \
reads every text once.\n\n| endpoint | p50 / p99 | goal |\n|---|---|---|\n{rows}\n\
Command: `cargo run --release -p api --example videos_bench` (BENCH_VIDEOS={n}).\n",
        refetch = n / 10,
    );
    write_section("25-videos", &md)?;
    write_section("26-youtube", &analytics)?;
    let _ = stop_api.send(());
    if kept.is_none() {
        let admin = ch.clone().with_database("default").client();
        let _ = admin.query(&format!("DROP DATABASE {db}")).execute().await;
    }
    Ok(())
}

/// Seeds the snapshots (unless the kept database has them), times the analytics reads and the
/// prediction; the section's markdown.
async fn youtube_part(
    base: &str,
    db: &str,
    client: &clickhouse::Client,
    n: usize,
    seeded: u64,
    now: i64,
) -> anyhow::Result<String> {
    let snapshots: usize = std::env::var("BENCH_SNAPSHOTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let have: u64 = client
        .query("SELECT count() FROM video_statistics")
        .fetch_one()
        .await?;
    let started = Instant::now();
    let rows = if have == 0 {
        let titles: Vec<String> = (0..n).map(|i| video(i, now).title).collect();
        let published: Vec<i64> = (0..n)
            .map(|i| video(i, now).published_at.millis())
            .collect();
        bench::youtube::seed_statistics(
            client,
            n,
            2_000,
            snapshots,
            now,
            |i| titles[i].clone(),
            |i| published[i],
        )
        .await?
    } else {
        have
    };
    let seed_secs = started.elapsed().as_secs_f64();
    eprintln!("[bench] seeded {rows} snapshots in {seed_secs:.0} s");
    let day = |ms: i64| {
        time::OffsetDateTime::from_unix_timestamp(ms / 1000)
            .unwrap()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let endpoints: Vec<(&str, PathFor<'_>)> = vec![
        (
            "a video with its views per day (`/videos/{id}`), varying",
            Box::new(|i| format!("/api/v1/videos/vid{:08}", (i * 7_919) % n)),
        ),
        (
            "channels by name (`/channels?q=channel 1<n>`), varying",
            Box::new(|i| format!("/api/v1/channels?q=channel%201{}", i % 100)),
        ),
        (
            "a channel with its latest videos (`/channels/{id}`), varying",
            Box::new(|i| format!("/api/v1/channels/UC{:04}", (i * 37) % 2_000)),
        ),
        (
            "a channel's videos, views and subscribers per day, 30 days",
            Box::new(move |i| {
                format!(
                    "/api/v1/channels/UC{:04}/stats?from={}&to={}",
                    (i * 41) % 2_000,
                    day(now - 30 * 86_400_000),
                    day(now + 3_600_000)
                )
            }),
        ),
        (
            "a keyword over 7 days with related words (`/keywords/<word>`), varying",
            Box::new(|i| format!("/api/v1/keywords/{}?period=7d", WORDS[i % WORDS.len()])),
        ),
        (
            "a keyword over 30 days (`/keywords/<word>?period=30d`), varying",
            Box::new(|i| format!("/api/v1/keywords/{}?period=30d", WORDS[i % WORDS.len()])),
        ),
        (
            "top keywords by views, 7 days",
            Box::new(|_| "/api/v1/keywords/top?period=7d&by=views".into()),
        ),
        (
            "top keywords by videos, 7 days",
            Box::new(|_| "/api/v1/keywords/top?period=7d&by=videos".into()),
        ),
    ];
    let reads = time_reads(base, &endpoints, 100, |_| "p99 < 100 ms").await?;
    // The keyword tables right after seeding hold many parts (the keyword views one change row
    // per snapshot, word and hour); ClickHouse merges them in the background. Here that is
    // forced, and the reads are timed again.
    let merging = Instant::now();
    for table in [
        "keyword_videos",
        "hourly_keyword_videos",
        "keyword_views",
        "hourly_keyword_views",
    ] {
        client
            .query(&format!("OPTIMIZE TABLE {table} FINAL"))
            .execute()
            .await?;
    }
    let merge_secs = merging.elapsed().as_secs_f64();
    let merged: Vec<(&str, PathFor<'_>)> = vec![
        (
            "a keyword over 30 days, after merges",
            Box::new(|i| format!("/api/v1/keywords/{}?period=30d", WORDS[i % WORDS.len()])),
        ),
        (
            "top keywords by views, 7 days, after merges",
            Box::new(|_| "/api/v1/keywords/top?period=7d&by=views".into()),
        ),
        (
            "top keywords by videos, 7 days, after merges",
            Box::new(|_| "/api/v1/keywords/top?period=7d&by=videos".into()),
        ),
    ];
    let reads = reads + &time_reads(base, &merged, 100, |_| "p99 < 100 ms").await?;
    // The baseline: the top keywords by views as an analyst would ask ClickHouse for them from
    // the snapshots (each video's latest, its title split into words), straight to the server.
    let since = (now - 7 * 86_400_000) as u64;
    let mut plain = Vec::new();
    for _ in 0..10 {
        let t = Instant::now();
        client
            .query(
                "SELECT w, sum(v) AS total FROM ( \
                   SELECT video_id, argMax(view_count, fetched_at_ms) AS v, \
                          argMax(title, fetched_at_ms) AS t \
                   FROM video_statistics WHERE published_at_ms >= ? GROUP BY video_id) \
                 ARRAY JOIN arrayDistinct(extractAll(lowerUTF8(t), '[\\p{L}\\p{N}]+')) AS w \
                 WHERE lengthUTF8(w) >= 3 GROUP BY w ORDER BY total DESC LIMIT 10",
            )
            .bind(since)
            .fetch_all::<(String, u64)>()
            .await?;
        plain.push(t.elapsed().as_secs_f64() * 1e3);
    }
    plain.sort_by(f64::total_cmp);
    let plain_p50 = plain[plain.len() / 2];
    let (p50, p99, version, alone_us, train_secs) =
        bench::youtube::prediction_latency(base, db, 200).await?;
    let seeding = match seeded {
        0 => format!("{seed_secs:.0} s"),
        _ => format!("seeded earlier into `{db}`"),
    };
    Ok(format!(
        "\n## YouTube analytics reads and the views prediction\n\n\
The same {n} videos, each with {snapshots} daily statistics snapshots, and 2,000 channels with \
{snapshots} each: {rows} rows written straight into `video_statistics` and `channel_statistics` \
({seeding}, with the views that fill `channels`, `event_ids` and the keyword tables). Reads through \
the API, 100 sequential requests each; the last three rows after `OPTIMIZE TABLE ... FINAL` of the \
four keyword tables ({merge_secs:.0} s), which merges their parts as ClickHouse does in the \
background over time.\n\n| endpoint | p50 / p99 | goal |\n|---|---|---|\n{reads}\n\
The same top 10 by views asked plainly of ClickHouse from the snapshots (each video's latest \
by `argMax`, its title split into words; 10 runs straight to the server): p50 {plain_p50:.0} ms.\n\n\
The views prediction: the model trained from those snapshots in {train_secs:.1} s (`{version}`, \
`PREDICTOR_MAX_TRAINING_VIDEOS` of them), the predictor in-process on the shared consumer runtime \
(`BATCH_MAX_WAIT_MS`=1), 200 sequential `POST /api/v1/videos/views-prediction` through Kafka and \
back (request produced and acknowledged, consumed, answered, the reply produced, consumed by the \
API): p50 {p50:.1} ms, p99 {p99:.1} ms. The model's own `predict` (31 days, in-process): \
{alone_us:.1} µs median.\n\n\
Command: `cargo run --release -p api --example videos_bench` (BENCH_VIDEOS={n}, BENCH_SNAPSHOTS={snapshots}).\n"
    ))
}
