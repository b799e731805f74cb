-- Tables owned by the ClickHouse sink. `{db}` is the database (CLICKHOUSE_DATABASE, default ugc).
-- Written for ClickHouse 18.16 (Debian) and current ClickHouse alike: no DateTime64, no TTL, no CODEC,
-- no Map type (properties are two parallel arrays).
--
-- Every event table keeps the Kafka partition and offset each row came from: on (re)gaining a
-- partition the sink reads max(kafka_offset) and skips what is already written, so a batch inserted
-- just before a crash is not inserted again (nor counted twice by the materialized views below).
-- ReplacingMergeTree on keys ending in event_id also collapses a client's resend of an event_id.

CREATE DATABASE IF NOT EXISTS {db};

CREATE TABLE IF NOT EXISTS {db}.playback_events
(
    event_id        UUID,
    user_id         UUID,
    movie_id        UUID,
    event_type      Enum8('play' = 1, 'pause' = 2, 'stop' = 3, 'fast_forward' = 4, 'rewind' = 5),
    position_ms     UInt64,
    occurred_at     DateTime,
    occurred_at_ms  UInt64,
    kafka_partition UInt32,
    kafka_offset    UInt64,
    inserted_at     DateTime DEFAULT now()
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (user_id, movie_id, occurred_at, event_id);

CREATE TABLE IF NOT EXISTS {db}.movie_viewings
(
    event_id        UUID,
    user_id         UUID,
    movie_id        UUID,
    viewed_seconds  UInt32,
    occurred_at     DateTime,
    occurred_at_ms  UInt64,
    kafka_partition UInt32,
    kafka_offset    UInt64,
    inserted_at     DateTime DEFAULT now()
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (user_id, movie_id, occurred_at, event_id);

CREATE TABLE IF NOT EXISTS {db}.playback_positions
(
    event_id        UUID,
    user_id         UUID,
    movie_id        UUID,
    position_ms     UInt64,
    duration_ms     Nullable(UInt64),
    occurred_at     DateTime,
    occurred_at_ms  UInt64,
    kafka_partition UInt32,
    kafka_offset    UInt64,
    inserted_at     DateTime DEFAULT now()
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (user_id, movie_id, occurred_at, event_id);

CREATE TABLE IF NOT EXISTS {db}.ratings
(
    event_id        UUID,
    user_id         UUID,
    movie_id        UUID,
    score           UInt8,
    occurred_at     DateTime,
    occurred_at_ms  UInt64,
    kafka_partition UInt32,
    kafka_offset    UInt64,
    inserted_at     DateTime DEFAULT now()
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (movie_id, user_id, occurred_at, event_id);

CREATE TABLE IF NOT EXISTS {db}.user_events
(
    event_id          UUID,
    user_id           Nullable(UUID),
    anonymous_id      String,
    event_type        String,
    properties_keys   Array(String),
    properties_values Array(String),
    occurred_at       DateTime,
    occurred_at_ms    UInt64,
    kafka_partition   UInt32,
    kafka_offset      UInt64,
    inserted_at       DateTime DEFAULT now()
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (event_type, occurred_at, event_id);

-- Watch time per (user, movie): summed on insert, merged by SummingMergeTree; read with sum().
CREATE TABLE IF NOT EXISTS {db}.watch_time
(
    user_id        UUID,
    movie_id       UUID,
    viewed_seconds UInt64
)
ENGINE = SummingMergeTree()
ORDER BY (user_id, movie_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.watch_time_mv TO {db}.watch_time AS
SELECT user_id, movie_id, toUInt64(sum(viewed_seconds)) AS viewed_seconds
FROM {db}.movie_viewings
GROUP BY user_id, movie_id;

-- Views (play events) per movie per day.
CREATE TABLE IF NOT EXISTS {db}.movie_views_daily
(
    day      Date,
    movie_id UUID,
    views    UInt64
)
ENGINE = SummingMergeTree()
PARTITION BY toYYYYMM(day)
ORDER BY (movie_id, day);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.movie_views_daily_mv TO {db}.movie_views_daily AS
SELECT toDate(occurred_at) AS day, movie_id, count() AS views
FROM {db}.playback_events
WHERE event_type = 'play'
GROUP BY day, movie_id;

-- The last position per (user, movie): the row with the newest occurred_at_ms wins.
CREATE TABLE IF NOT EXISTS {db}.last_positions
(
    user_id        UUID,
    movie_id       UUID,
    position_ms    UInt64,
    duration_ms    Nullable(UInt64),
    occurred_at_ms UInt64
)
ENGINE = ReplacingMergeTree(occurred_at_ms)
ORDER BY (user_id, movie_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.last_positions_mv TO {db}.last_positions AS
SELECT user_id, movie_id, position_ms, duration_ms, occurred_at_ms
FROM {db}.playback_positions;

-- Top movies over a period, pre-aggregated per UTC day (the raw tables are ordered by user, so a
-- period scan would read every row). Watch time per (day, movie) is summed; distinct viewers keep one
-- row per (day, movie, viewer hash) and are counted with uniqExact over the period's days. On 18.16,
-- merging uniqExact states is slower than this, and uniqExact over UUIDs 20x slower than over hashes.
CREATE TABLE IF NOT EXISTS {db}.movie_watch_daily
(
    day            Date,
    movie_id       UUID,
    viewed_seconds UInt64
)
ENGINE = SummingMergeTree()
PARTITION BY toYYYYMM(day)
ORDER BY (day, movie_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.movie_watch_daily_mv TO {db}.movie_watch_daily AS
SELECT toDate(occurred_at) AS day, movie_id, toUInt64(sum(viewed_seconds)) AS viewed_seconds
FROM {db}.movie_viewings
GROUP BY day, movie_id;

CREATE TABLE IF NOT EXISTS {db}.movie_viewers_daily
(
    day       Date,
    movie_id  UUID,
    user_hash UInt64
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(day)
ORDER BY (day, movie_id, user_hash);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.movie_viewers_daily_mv TO {db}.movie_viewers_daily AS
SELECT toDate(occurred_at) AS day, movie_id, cityHash64(toString(user_id)) AS user_hash
FROM {db}.movie_viewings
GROUP BY day, movie_id, user_hash;

-- Videos found by the YouTube fetcher: one row per fetch, collapsed per video_id with the latest
-- fetch winning (ReplacingMergeTree by fetched_at_ms); reads use FINAL. Field names follow the
-- YouTube Data API's snippet.
CREATE TABLE IF NOT EXISTS {db}.videos
(
    video_id         String,
    title            String,
    description      String,
    channel_id       String,
    channel_title    String,
    published_at     DateTime,
    published_at_ms  UInt64,
    thumbnails_keys  Array(String),
    thumbnails_urls  Array(String),
    query            String,
    fetched_at_ms    UInt64,
    kafka_partition  UInt32,
    kafka_offset     UInt64
)
ENGINE = ReplacingMergeTree(fetched_at_ms)
ORDER BY video_id;
