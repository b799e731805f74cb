-- Tables owned by the ClickHouse sink. `{db}` is the database (CLICKHOUSE_DATABASE, default ugc).
-- Written for ClickHouse 18.16 (Debian) and current ClickHouse alike: no DateTime64, no TTL, no CODEC,
-- no Map type (properties are two parallel arrays).
--
-- Every event table keeps the Kafka partition and offset each row came from (lineage only).
-- An event is written once: before each INSERT the sink looks the batch up in `event_ids` (filled
-- by a view of each event table, in the same INSERT) and leaves out what is already there, so a
-- client's resend, a batch read again after a crash and a retried INSERT add no row and are not
-- counted again by the views that sum on insert. See docs/clickhouse.md, "A resend counts once".

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

-- The payload with its JSON types, one JSON object per row (second UserEvent contract; '' for rows
-- of first-version producers, whose properties are in the arrays above). Analysts read it with
-- JSONExtract* on current ClickHouse, e.g. JSONExtractFloat(properties_json, 'filters', 'rating_gte')
-- (visitParamExtract* by key name on 18.16, which has no JSONExtract). ugc-init adds the
-- column to a table created by an earlier release (and skips this when the column is there).
ALTER TABLE {db}.user_events ADD COLUMN properties_json String DEFAULT '' AFTER properties_values;

-- The events each table has, by the time they say they occurred (a resend says the same): the
-- sink's lookups for a batch of recent events read the last granules only. Partitioned like the
-- event tables; a month older than EVENT_MAX_AGE can be dropped (no resend of it is accepted).
CREATE TABLE IF NOT EXISTS {db}.event_ids
(
    stream         String,
    occurred_at    DateTime,
    occurred_at_ms UInt64,
    event_id       UUID
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (stream, occurred_at_ms, event_id)
SETTINGS index_granularity = 256;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.playback_events_ids_mv TO {db}.event_ids AS
SELECT 'playback_events' AS stream, occurred_at, occurred_at_ms, event_id FROM {db}.playback_events;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.movie_viewings_ids_mv TO {db}.event_ids AS
SELECT 'movie_viewings' AS stream, occurred_at, occurred_at_ms, event_id FROM {db}.movie_viewings;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.playback_positions_ids_mv TO {db}.event_ids AS
SELECT 'playback_positions' AS stream, occurred_at, occurred_at_ms, event_id FROM {db}.playback_positions;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.ratings_ids_mv TO {db}.event_ids AS
SELECT 'ratings' AS stream, occurred_at, occurred_at_ms, event_id FROM {db}.ratings;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.user_events_ids_mv TO {db}.event_ids AS
SELECT 'user_events' AS stream, occurred_at, occurred_at_ms, event_id FROM {db}.user_events;

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
-- row per (day, movie key, viewer hash) and are counted with uniqExact over the period's days. On 18.16,
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

-- Distinct viewers: one row per (day, movie key, viewer hash), movie key = cityHash64 of the movie
-- id (grouping 1M rows by a UInt64 took ~40 ms on 18.16, by the UUID ~50); `movie_keys` maps keys back.
CREATE TABLE IF NOT EXISTS {db}.movie_viewers_by_day
(
    day       Date,
    movie_key UInt64,
    user_hash UInt64
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(day)
ORDER BY (day, movie_key, user_hash);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.movie_viewers_by_day_mv TO {db}.movie_viewers_by_day AS
SELECT toDate(occurred_at) AS day, cityHash64(toString(movie_id)) AS movie_key,
       cityHash64(toString(user_id)) AS user_hash
FROM {db}.movie_viewings
GROUP BY day, movie_key, user_hash;

CREATE TABLE IF NOT EXISTS {db}.movie_keys
(
    movie_key UInt64,
    movie_id  UUID
)
ENGINE = ReplacingMergeTree()
ORDER BY movie_key;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.movie_keys_mv TO {db}.movie_keys AS
SELECT cityHash64(toString(movie_id)) AS movie_key, movie_id
FROM {db}.movie_viewings
GROUP BY movie_key, movie_id;

-- The table the two above replace (keyed by the UUID); derived data, refilled from movie_viewings.
DROP TABLE IF EXISTS {db}.movie_viewers_daily_mv;
DROP TABLE IF EXISTS {db}.movie_viewers_daily;

-- Videos found by the YouTube fetcher: one row per fetch, collapsed per video_id with the latest
-- fetch winning (ReplacingMergeTree by fetched_at_ms). Field names follow the YouTube Data API's
-- snippet. The API reads the tables below, which views fill from this one.
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

-- What the API reads videos from (search p99 < 100 ms over 1M videos on 18.16, which has no
-- skipping indexes): every fetch of every video again, plus its lowercased text (title, newline,
-- description) and the title's byte length, so one `position(text, q)` says whether and where it
-- matches (at <= title_bytes: in the title). Small granules make "these 200 ids" cheap to read.
-- Versions of a video collapse on merges; until then the API keeps the latest fetch per id.
CREATE TABLE IF NOT EXISTS {db}.video_search
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
    title_bytes      UInt32,
    text             String
)
ENGINE = ReplacingMergeTree(fetched_at_ms)
ORDER BY video_id
SETTINGS index_granularity = 256;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.video_search_mv TO {db}.video_search AS
SELECT video_id, title, description, channel_id, channel_title, published_at, published_at_ms, thumbnails_keys,
       thumbnails_urls, query, fetched_at_ms, toUInt32(length(lowerUTF8(title))) AS title_bytes,
       concat(lowerUTF8(title), '\n', lowerUTF8(description)) AS text
FROM {db}.videos;

-- The same text by publish time, for reads that go newest first over a time range: the newest
-- list, one pass over the texts when the trigram index does not narrow a search. `title_words`
-- is no longer read (the keyword tables below replaced it); it stays until a migration can
-- recreate this table's view without it.
CREATE TABLE IF NOT EXISTS {db}.video_timeline
(
    published_at_ms  UInt64,
    video_id         String,
    fetched_at_ms    UInt64,
    title_bytes      UInt32,
    text             String,
    title_words      Array(String)
)
ENGINE = ReplacingMergeTree(fetched_at_ms)
ORDER BY (published_at_ms, video_id)
SETTINGS index_granularity = 1024;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.video_timeline_mv TO {db}.video_timeline AS
SELECT published_at_ms, video_id, fetched_at_ms, toUInt32(length(lowerUTF8(title))) AS title_bytes,
       concat(lowerUTF8(title), '\n', lowerUTF8(description)) AS text,
       arrayDistinct(extractAll(lowerUTF8(title), '[\\p{L}\\p{N}]+')) AS title_words
FROM {db}.videos;

-- A trigram index of the same text: a search reads the rows of its query's rarest trigram, newest
-- first (title trigrams first), and checks only those candidates against `video_search`.
-- 18.16's substringUTF8 needs a constant offset, so the trigrams starting at every position are
-- the non-overlapping ones of the text from offsets 1, 2 and 3.
CREATE TABLE IF NOT EXISTS {db}.video_grams
(
    gram             String,
    video_id         String,
    published_at_ms  UInt64,
    fetched_at_ms    UInt64,
    in_title         UInt8
)
ENGINE = ReplacingMergeTree(fetched_at_ms)
ORDER BY (gram, video_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.video_grams_mv TO {db}.video_grams AS
SELECT arrayJoin(arrayDistinct(arrayConcat(
           arrayConcat(extractAll(lowerUTF8(title), '[\\s\\S]{3}'), extractAll(substringUTF8(lowerUTF8(title), 2, 1000000), '[\\s\\S]{3}'),
            extractAll(substringUTF8(lowerUTF8(title), 3, 1000000), '[\\s\\S]{3}')),
           arrayConcat(extractAll(lowerUTF8(description), '[\\s\\S]{3}'), extractAll(substringUTF8(lowerUTF8(description), 2, 1000000), '[\\s\\S]{3}'),
            extractAll(substringUTF8(lowerUTF8(description), 3, 1000000), '[\\s\\S]{3}'))))) AS gram,
       video_id, published_at_ms, fetched_at_ms,
       toUInt8(has(arrayConcat(extractAll(lowerUTF8(title), '[\\s\\S]{3}'), extractAll(substringUTF8(lowerUTF8(title), 2, 1000000), '[\\s\\S]{3}'),
            extractAll(substringUTF8(lowerUTF8(title), 3, 1000000), '[\\s\\S]{3}')), gram)) AS in_title
FROM {db}.videos;

-- Videos per trigram, to pick a query's rarest one (18.16 does not cascade views, so this reads
-- `videos` again). Counts only grow (re-fetches add), which only makes the choice less sharp.
CREATE TABLE IF NOT EXISTS {db}.video_gram_counts
(
    gram  String,
    n     UInt64
)
ENGINE = SummingMergeTree(n)
ORDER BY gram;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.video_gram_counts_mv TO {db}.video_gram_counts AS
SELECT arrayJoin(arrayDistinct(arrayConcat(
           arrayConcat(extractAll(lowerUTF8(title), '[\\s\\S]{3}'), extractAll(substringUTF8(lowerUTF8(title), 2, 1000000), '[\\s\\S]{3}'),
            extractAll(substringUTF8(lowerUTF8(title), 3, 1000000), '[\\s\\S]{3}')),
           arrayConcat(extractAll(lowerUTF8(description), '[\\s\\S]{3}'), extractAll(substringUTF8(lowerUTF8(description), 2, 1000000), '[\\s\\S]{3}'),
            extractAll(substringUTF8(lowerUTF8(description), 3, 1000000), '[\\s\\S]{3}'))))) AS gram,
       count() AS n
FROM {db}.videos
GROUP BY gram;

-- Snapshots of videos' statistics (the fetcher's videos.list calls): one row per video per
-- snapshot, the series a video's daily views history and the views predictor read. A snapshot
-- written twice (a resend, a batch read again after a crash) has the same (video_id,
-- fetched_at_ms) and collapses on merges; until then every read takes max() or argMax() per video
-- and day, so a duplicate changes no answer.
CREATE TABLE IF NOT EXISTS {db}.video_statistics
(
    video_id         String,
    channel_id       String,
    title            String,
    published_at_ms  UInt64,
    view_count       UInt64,
    like_count       Nullable(UInt64),
    comment_count    Nullable(UInt64),
    duration         String,
    duration_seconds UInt32,
    fetched_at       DateTime,
    fetched_at_ms    UInt64,
    kafka_partition  UInt32,
    kafka_offset     UInt64
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(fetched_at)
ORDER BY (video_id, fetched_at_ms);

-- Keyword analytics (the API's /keywords reads). A keyword is a lowercased title word (letters
-- and digits); periods are whole hours of publish time (`hour`: epoch ms / 3,600,000). The
-- tables come in pairs, keyword first (one keyword's days) and hour first (every keyword of a
-- period's hours, for the top lists).

-- Each fetched video under each word of its title, with the title's words (related keywords are
-- the words of the same titles). A video fetched again writes the same rows, which collapse on
-- merges (the last fetch's words stay); reads count with FINAL. A video whose title was edited
-- counts under the words of every title it was fetched with.
CREATE TABLE IF NOT EXISTS {db}.keyword_videos
(
    keyword     String,
    hour        UInt32,
    video_key   UInt64,
    title_words Array(String)
)
ENGINE = ReplacingMergeTree()
ORDER BY (keyword, hour, video_key);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.keyword_videos_mv TO {db}.keyword_videos AS
SELECT keyword, toUInt32(intDiv(published_at_ms, 3600000)) AS hour, cityHash64(video_id) AS video_key,
       arrayDistinct(extractAll(lowerUTF8(title), '[\\p{L}\\p{N}]+')) AS title_words
FROM {db}.videos
ARRAY JOIN arrayDistinct(extractAll(lowerUTF8(title), '[\\p{L}\\p{N}]+')) AS keyword;

CREATE TABLE IF NOT EXISTS {db}.hourly_keyword_videos
(
    hour      UInt32,
    keyword   String,
    video_key UInt64
)
ENGINE = ReplacingMergeTree()
ORDER BY (hour, keyword, video_key);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.hourly_keyword_videos_mv TO {db}.hourly_keyword_videos AS
SELECT toUInt32(intDiv(published_at_ms, 3600000)) AS hour, keyword, cityHash64(video_id) AS video_key
FROM {db}.videos
ARRAY JOIN arrayDistinct(extractAll(lowerUTF8(title), '[\\p{L}\\p{N}]+')) AS keyword;

-- Snapshots carry their event id and the view count and title of the snapshot before them (NULL in
-- snapshots written before they did; 0 and '' for a video's first). ugc-init adds the columns to a
-- table created by an earlier release.
ALTER TABLE {db}.video_statistics ADD COLUMN previous_view_count Nullable(UInt64) AFTER fetched_at_ms;
ALTER TABLE {db}.video_statistics ADD COLUMN previous_title String DEFAULT '' AFTER previous_view_count;

-- The summing tables below count a snapshot once: the sink looks snapshots up in `event_ids` (by
-- the time they were taken) and leaves out the ones written before.
ALTER TABLE {db}.video_statistics ADD COLUMN event_id UUID AFTER video_id;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.video_statistics_ids_mv TO {db}.event_ids AS
SELECT 'video_statistics' AS stream, fetched_at AS occurred_at, fetched_at_ms AS occurred_at_ms, event_id
FROM {db}.video_statistics;

-- Views per keyword and publish hour: the sum of the latest view counts of the videos published
-- in that hour with the keyword in their latest title, kept by summing on insert. Each snapshot
-- adds its view count under its title's words and takes its previous snapshot's away from that
-- title's words, so the sums come to each video's latest snapshot without a read of any video's
-- history. Exact while every snapshot is written once and names the one before it: the fetcher
-- keeps a snapshot in its outbox and sends it again, same event id, until it has recorded it, and
-- the sink writes an event id once (`event_ids`). Snapshots naming none (NULL: written before the
-- chain) are left out; a video counts again from its next snapshot.
CREATE TABLE IF NOT EXISTS {db}.keyword_views
(
    keyword String,
    hour    UInt32,
    views   Int64
)
ENGINE = SummingMergeTree()
ORDER BY (keyword, hour);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.keyword_views_mv TO {db}.keyword_views AS
SELECT keyword, toUInt32(intDiv(published_at_ms, 3600000)) AS hour,
       sum(if(added = 1, toInt64(view_count), -toInt64(assumeNotNull(previous_view_count)))) AS views
FROM {db}.video_statistics
ARRAY JOIN arrayConcat(arrayDistinct(extractAll(lowerUTF8(title), '[\\p{L}\\p{N}]+')), arrayDistinct(extractAll(lowerUTF8(previous_title), '[\\p{L}\\p{N}]+'))) AS keyword,
           arrayConcat(arrayMap(w -> 1, arrayDistinct(extractAll(lowerUTF8(title), '[\\p{L}\\p{N}]+'))), arrayMap(w -> 0, arrayDistinct(extractAll(lowerUTF8(previous_title), '[\\p{L}\\p{N}]+')))) AS added
WHERE previous_view_count IS NOT NULL
GROUP BY keyword, hour;

CREATE TABLE IF NOT EXISTS {db}.hourly_keyword_views
(
    hour    UInt32,
    keyword String,
    views   Int64
)
ENGINE = SummingMergeTree()
ORDER BY (hour, keyword);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.hourly_keyword_views_mv TO {db}.hourly_keyword_views AS
SELECT toUInt32(intDiv(published_at_ms, 3600000)) AS hour, keyword,
       sum(if(added = 1, toInt64(view_count), -toInt64(assumeNotNull(previous_view_count)))) AS views
FROM {db}.video_statistics
ARRAY JOIN arrayConcat(arrayDistinct(extractAll(lowerUTF8(title), '[\\p{L}\\p{N}]+')), arrayDistinct(extractAll(lowerUTF8(previous_title), '[\\p{L}\\p{N}]+'))) AS keyword,
           arrayConcat(arrayMap(w -> 1, arrayDistinct(extractAll(lowerUTF8(title), '[\\p{L}\\p{N}]+'))), arrayMap(w -> 0, arrayDistinct(extractAll(lowerUTF8(previous_title), '[\\p{L}\\p{N}]+')))) AS added
WHERE previous_view_count IS NOT NULL
GROUP BY hour, keyword;

-- What the tables above replace (the latest snapshot of every video, read per video), and its
-- shard-local part on a cluster.
DROP TABLE IF EXISTS {db}.video_views_latest_mv;
DROP TABLE IF EXISTS {db}.video_views_latest;
DROP TABLE IF EXISTS {db}.video_views_latest_local;

-- Snapshots of channels (the fetcher's channels.list calls): details and statistics, one row per
-- channel per snapshot; growth per day is the difference of the days' latest figures.
CREATE TABLE IF NOT EXISTS {db}.channel_statistics
(
    channel_id       String,
    title            String,
    description      String,
    custom_url       String,
    published_at_ms  UInt64,
    thumbnails_keys  Array(String),
    thumbnails_urls  Array(String),
    subscriber_count Nullable(UInt64),
    view_count       UInt64,
    video_count      UInt64,
    fetched_at       DateTime,
    fetched_at_ms    UInt64,
    kafka_partition  UInt32,
    kafka_offset     UInt64
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(fetched_at)
ORDER BY (channel_id, fetched_at_ms);

-- The latest snapshot of each channel (collapsed on merges; reads keep the latest with
-- LIMIT 1 BY), with its lowercased title and handle for the channel search.
CREATE TABLE IF NOT EXISTS {db}.channels
(
    channel_id       String,
    title            String,
    description      String,
    custom_url       String,
    published_at_ms  UInt64,
    thumbnails_keys  Array(String),
    thumbnails_urls  Array(String),
    subscriber_count Nullable(UInt64),
    view_count       UInt64,
    video_count      UInt64,
    fetched_at_ms    UInt64,
    search_text      String
)
ENGINE = ReplacingMergeTree(fetched_at_ms)
ORDER BY channel_id;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.channels_mv TO {db}.channels AS
SELECT channel_id, title, description, custom_url, published_at_ms, thumbnails_keys, thumbnails_urls,
       subscriber_count, view_count, video_count, fetched_at_ms,
       concat(lowerUTF8(title), '\n', lowerUTF8(custom_url)) AS search_text
FROM {db}.channel_statistics;

-- Fetched videos by channel, newest published first: a channel's latest videos.
CREATE TABLE IF NOT EXISTS {db}.channel_videos
(
    channel_id       String,
    published_at_ms  UInt64,
    video_id         String,
    title            String,
    thumbnails_keys  Array(String),
    thumbnails_urls  Array(String),
    fetched_at_ms    UInt64
)
ENGINE = ReplacingMergeTree(fetched_at_ms)
ORDER BY (channel_id, published_at_ms, video_id)
SETTINGS index_granularity = 1024;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.channel_videos_mv TO {db}.channel_videos AS
SELECT channel_id, published_at_ms, video_id, title, thumbnails_keys, thumbnails_urls, fetched_at_ms
FROM {db}.videos;
