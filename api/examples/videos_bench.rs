//! `make bench`, the videos part: the video reads over 1,000,000 videos (BENCH_VIDEOS) seeded
//! straight into ClickHouse through the sink's row type, each re-fetched once for 10 % of them.
//! Writes its section of docs/benchmarks.md (see scripts/bench.sh).
//!
//!     cargo run --release -p api --example videos_bench   (with `make services` running)

use std::collections::HashMap;
use std::time::Instant;

use consumers::sinks::clickhouse::{migrations, ClickHouseConfig, Table};
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
    let admin = ch.clone().with_database("default").client();
    for s in migrations(&db) {
        admin.query(&s).execute().await?;
    }
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
    let _ = stop_api.send(());
    if kept.is_none() {
        let _ = admin.query(&format!("DROP DATABASE {db}")).execute().await;
    }
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
    write_section("25-videos", &md)
}
