//! The same schema on a ClickHouse cluster (`CLICKHOUSE_CLUSTER`): every table becomes a
//! Replicated table on each shard, `<table>_local` (its ZooKeeper path from the `{shard}` macro,
//! its replica from `{replica}`), plus a Distributed table with the table's own name over them,
//! sharded by the key below. Every statement runs `ON CLUSTER`. The sinks insert into and the API
//! reads from the Distributed names, so their SQL is the same as on one server; the views are
//! attached to the local tables, so each shard's views see the rows inserted on that shard, and a
//! replica receives their results by replication. See docs/clickhouse.md, "On a cluster".

/// How the rows of each table are spread over the shards. Event tables and what their views
/// derive per user go by the user (a user's events and resends land on one shard); per-movie,
/// per-video and per-trigram tables by that key. Reads aggregate over every shard, so the keys
/// decide locality, not answers; a video's versions must share a shard (its reads keep the latest
/// fetch per video with `LIMIT 1 BY`, which each shard applies to its rows).
pub const SHARDING: &[(&str, &str)] = &[
    ("playback_events", "cityHash64(toString(user_id))"),
    ("movie_viewings", "cityHash64(toString(user_id))"),
    ("playback_positions", "cityHash64(toString(user_id))"),
    ("ratings", "cityHash64(toString(user_id))"),
    (
        "user_events",
        "cityHash64(ifNull(toString(user_id), anonymous_id))",
    ),
    ("event_ids", "cityHash64(toString(event_id))"),
    ("watch_time", "cityHash64(toString(user_id))"),
    ("movie_views_daily", "cityHash64(toString(movie_id))"),
    ("last_positions", "cityHash64(toString(user_id))"),
    ("movie_watch_daily", "cityHash64(toString(movie_id))"),
    ("movie_viewers_by_day", "user_hash"),
    ("movie_keys", "movie_key"),
    ("videos", "cityHash64(video_id)"),
    ("video_search", "cityHash64(video_id)"),
    ("video_timeline", "cityHash64(video_id)"),
    ("video_grams", "cityHash64(video_id)"),
    ("video_gram_counts", "cityHash64(gram)"),
    ("video_statistics", "cityHash64(video_id)"),
    ("keyword_videos", "cityHash64(keyword)"),
    ("hourly_keyword_videos", "cityHash64(keyword)"),
    ("keyword_views", "cityHash64(keyword)"),
    ("hourly_keyword_views", "cityHash64(keyword)"),
    ("channel_statistics", "cityHash64(channel_id)"),
    ("channels", "cityHash64(channel_id)"),
    ("channel_videos", "cityHash64(video_id)"),
];

/// The name of a table's shard-local part.
pub fn local(table: &str) -> String {
    format!("{table}_local")
}

#[derive(Debug, thiserror::Error)]
#[error("no cluster form for this statement (add it to sinks/clickhouse/cluster.rs): {0}")]
pub struct NoClusterForm(pub String);

/// The statements that do on cluster `cluster` what `statement` (from schema.sql, for database
/// `db`) does on one server.
pub fn on_cluster(statement: &str, db: &str, cluster: &str) -> Result<Vec<String>, NoClusterForm> {
    let unknown = || NoClusterForm(statement.lines().next().unwrap_or_default().to_string());
    let on = format!("ON CLUSTER {cluster}");
    if let Some(name) = statement.strip_prefix("CREATE DATABASE IF NOT EXISTS ") {
        return Ok(vec![format!(
            "CREATE DATABASE IF NOT EXISTS {} {on}",
            name.trim()
        )]);
    }
    if let Some(rest) = statement.strip_prefix("DROP TABLE IF EXISTS ") {
        return Ok(vec![format!("DROP TABLE IF EXISTS {} {on}", rest.trim())]);
    }
    if let Some(rest) = statement.strip_prefix("ALTER TABLE ") {
        let (name, action) = rest.split_once(char::is_whitespace).ok_or_else(unknown)?;
        let table = name.strip_prefix(&format!("{db}.")).ok_or_else(unknown)?;
        // The local tables first: a Distributed table may not name a column they lack. 18.16
        // refuses `ALTER ... ON CLUSTER` on a table that is not replicated (the Distributed one)
        // when the shards replicate internally, so that one is created again over the altered
        // local tables (it holds no rows: inserts through it are synchronous).
        return Ok(vec![
            format!("ALTER TABLE {db}.{} {on} {}", local(table), action.trim()),
            format!("DROP TABLE IF EXISTS {name} {on}"),
            distributed(db, table, cluster, key(table).ok_or_else(unknown)?),
        ]);
    }
    if let Some(rest) = statement.strip_prefix("CREATE MATERIALIZED VIEW IF NOT EXISTS ") {
        let (name, body) = rest.split_once(char::is_whitespace).ok_or_else(unknown)?;
        return Ok(vec![format!(
            "CREATE MATERIALIZED VIEW IF NOT EXISTS {name} {on} {}",
            localise(body.trim(), db)
        )]);
    }
    if let Some(rest) = statement.strip_prefix("CREATE TABLE IF NOT EXISTS ") {
        let (name, body) = rest.split_once(char::is_whitespace).ok_or_else(unknown)?;
        let table = name.strip_prefix(&format!("{db}.")).ok_or_else(unknown)?;
        let key = key(table).ok_or_else(unknown)?;
        let engine_at = body.find("ENGINE = ").ok_or_else(unknown)? + "ENGINE = ".len();
        let (columns, engine) = body.split_at(engine_at);
        let open = engine.find('(').ok_or_else(unknown)?;
        let close = open + engine[open..].find(')').ok_or_else(unknown)?;
        let (kind, args, tail) = (
            &engine[..open],
            &engine[open + 1..close],
            &engine[close + 1..],
        );
        if !kind.ends_with("MergeTree") {
            return Err(unknown());
        }
        let local_name = local(table);
        let mut replicated =
            format!("'/clickhouse/tables/{{shard}}/{db}/{local_name}', '{{replica}}'");
        if !args.trim().is_empty() {
            replicated = format!("{replicated}, {}", args.trim());
        }
        return Ok(vec![
            format!(
                "CREATE TABLE IF NOT EXISTS {db}.{local_name} {on} {}Replicated{kind}({replicated}){tail}",
                columns.trim_start()
            ),
            distributed(db, table, cluster, key),
        ]);
    }
    Err(unknown())
}

fn distributed(db: &str, table: &str, cluster: &str, key: &str) -> String {
    let local_name = local(table);
    format!(
        "CREATE TABLE IF NOT EXISTS {db}.{table} ON CLUSTER {cluster} AS {db}.{local_name} \
         ENGINE = Distributed({cluster}, {db}, {local_name}, {key})"
    )
}

fn key(table: &str) -> Option<&'static str> {
    SHARDING.iter().find(|(t, _)| *t == table).map(|(_, k)| *k)
}

/// A view's body with every table it names replaced by its shard-local part (`TO` target and
/// `FROM` source): a view attached to a Distributed table would fire on the server the INSERT
/// was sent to, not on the shard that stores the rows.
fn localise(body: &str, db: &str) -> String {
    let prefix = format!("{db}.");
    let mut out = String::with_capacity(body.len() + 32);
    let mut rest = body;
    while let Some(at) = rest.find(&prefix) {
        let after = &rest[at + prefix.len()..];
        let end = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        let name = &after[..end];
        out.push_str(&rest[..at + prefix.len()]);
        out.push_str(name);
        if key(name).is_some() {
            out.push_str("_local");
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_statement_has_a_cluster_form() {
        let single = super::super::migrations("db");
        let mut tables = Vec::new();
        for s in &single {
            let forms = on_cluster(s, "db", "c").unwrap();
            assert!(forms
                .iter()
                .all(|f| f.contains(" ON CLUSTER c ") || f.ends_with(" ON CLUSTER c")));
            assert!(forms.iter().all(|f| !f.contains('?')));
            if let Some(rest) = s.strip_prefix("CREATE TABLE IF NOT EXISTS db.") {
                tables.push(rest.split_whitespace().next().unwrap().to_string());
                assert_eq!(forms.len(), 2);
                assert!(forms[0].contains("ENGINE = Replicated"), "{}", forms[0]);
                assert!(forms[0].contains("'/clickhouse/tables/{shard}/db/"));
                assert!(forms[1].contains("ENGINE = Distributed(c, db, "));
            }
            if s.starts_with("CREATE MATERIALIZED VIEW") {
                // Target and source are shard-local.
                let f = &forms[0];
                let (target, select) = f.split_once(" AS").unwrap();
                assert!(target.ends_with("_local"), "{f}");
                let mut words = select.split_whitespace().skip_while(|w| *w != "FROM");
                assert!(words.nth(1).unwrap().ends_with("_local"), "{f}");
            }
        }
        // Every table has a sharding key and every key names a table.
        let mut keyed: Vec<&str> = SHARDING.iter().map(|(t, _)| *t).collect();
        keyed.sort_unstable();
        tables.sort_unstable();
        assert_eq!(keyed, tables);
    }

    #[test]
    fn engines_keep_their_arguments() {
        let forms = on_cluster(
            "CREATE TABLE IF NOT EXISTS db.videos\n(\n    video_id String\n)\nENGINE = ReplacingMergeTree(fetched_at_ms)\nORDER BY video_id",
            "db",
            "c",
        )
        .unwrap();
        assert_eq!(
            forms[0],
            "CREATE TABLE IF NOT EXISTS db.videos_local ON CLUSTER c (\n    video_id String\n)\nENGINE = \
             ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/db/videos_local', '{replica}', fetched_at_ms)\nORDER BY video_id"
        );
        assert_eq!(
            forms[1],
            "CREATE TABLE IF NOT EXISTS db.videos ON CLUSTER c AS db.videos_local \
             ENGINE = Distributed(c, db, videos_local, cityHash64(video_id))"
        );
        assert_eq!(
            localise(
                "TO db.event_ids AS SELECT 'x' AS stream FROM db.videos WHERE a",
                "db"
            ),
            "TO db.event_ids_local AS SELECT 'x' AS stream FROM db.videos_local WHERE a"
        );
        assert!(on_cluster(
            "CREATE TABLE IF NOT EXISTS db.unknown (a UInt8) ENGINE = MergeTree() ORDER BY a",
            "db",
            "c"
        )
        .is_err());
    }
}
