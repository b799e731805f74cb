-- Tables owned by the ClickHouse sink. `{db}` is the database (CLICKHOUSE_DATABASE, default ugc).
-- Written for ClickHouse 18.16 (Debian) and current ClickHouse alike: no DateTime64, no TTL, no CODEC.

CREATE DATABASE IF NOT EXISTS {db};

-- One row per player action. Duplicates of one event (a batch written again after a crash) share the
-- whole sorting key and collapse on merge; read with FINAL for exact counts.
CREATE TABLE IF NOT EXISTS {db}.playback_events
(
    event_id       UUID,
    user_id        UUID,
    movie_id       UUID,
    event_type     Enum8('play' = 1, 'pause' = 2, 'stop' = 3, 'fast_forward' = 4, 'rewind' = 5),
    position_ms    UInt64,
    occurred_at    DateTime,
    occurred_at_ms UInt64,
    inserted_at    DateTime DEFAULT now()
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (user_id, movie_id, occurred_at, event_id);
