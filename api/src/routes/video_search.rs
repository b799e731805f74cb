//! How the video reads find their rows in ClickHouse without `FINAL` over every video (ClickHouse
//! 18.16 has no skipping indexes): `video_search` holds every fetch with its lowercased text in
//! small granules, `video_grams` indexes that text by trigram, `video_gram_counts` says how common
//! each trigram is (see the sink's schema.sql). Versions of a video that are not merged yet are
//! collapsed here, the latest fetch winning.
//!
//! Search is exact (the same answer as a scan of every video's latest fetch): the candidates are the
//! videos holding the query's rarest trigram, read newest first — those with it in the title first,
//! since every title match is among them — and checked in growing chunks against their text. A
//! chunk that yields the page, or that is the last, ends the walk. Queries under three characters
//! have no trigram and scan `video_search`.

use std::collections::{HashMap, HashSet};

use clickhouse::Client;
use serde::Deserialize;

#[derive(Debug, clickhouse::Row, Deserialize)]
pub(super) struct VideoRow {
    pub video_id: String,
    pub title: String,
    pub description: String,
    pub channel_id: String,
    pub channel_title: String,
    pub published_at_ms: u64,
    pub thumbnails_keys: Vec<String>,
    pub thumbnails_urls: Vec<String>,
    pub query: String,
    pub fetched_at_ms: u64,
}

const COLUMNS: &str = "video_id, title, description, channel_id, channel_title, published_at_ms, \
                       thumbnails_keys, thumbnails_urls, query, fetched_at_ms";

/// Candidates read per chunk: a few pages' worth at first, growing 8x per chunk.
fn first_chunk(want: u64) -> u64 {
    (want * 4).max(200)
}

/// Videos newest published first: `offset`, then `limit` of them.
pub(super) async fn newest(
    ch: &Client,
    offset: u64,
    limit: u64,
) -> clickhouse::error::Result<Vec<VideoRow>> {
    let want = offset + limit;
    let mut chunk = first_chunk(want);
    loop {
        // Versions of one video share its publish time, so they sit together in this order.
        let rows: Vec<(String, u64)> = ch
            .query(
                "SELECT video_id, published_at_ms FROM video_search \
                 ORDER BY published_at_ms DESC, video_id LIMIT ?",
            )
            .bind(chunk)
            .fetch_all()
            .await?;
        let mut seen = HashSet::new();
        let ids: Vec<String> = rows
            .iter()
            .filter(|(id, _)| seen.insert(id.as_str()))
            .map(|(id, _)| id.clone())
            .collect();
        if ids.len() as u64 >= want || (rows.len() as u64) < chunk {
            return rows_of(ch, page_of(ids, offset, limit)).await;
        }
        chunk *= 8;
    }
}

/// Videos whose title or description contains `q` (case-insensitive): title matches first, then
/// newest published; `offset`, then `limit` of them.
pub(super) async fn search(
    ch: &Client,
    q: &str,
    offset: u64,
    limit: u64,
) -> clickhouse::error::Result<Vec<VideoRow>> {
    let needle = q.to_lowercase();
    let grams = trigrams(&needle);
    let want = offset + limit;
    if grams.is_empty() {
        return scan(ch, &needle, offset, limit).await;
    }
    let counts: Vec<(String, u64)> = ch
        .query(
            "SELECT gram, sum(n) FROM video_gram_counts \
             WHERE gram IN (SELECT arrayJoin(?)) GROUP BY gram",
        )
        .bind(&grams)
        .fetch_all()
        .await?;
    if counts.len() < grams.len() {
        return Ok(Vec::new()); // a trigram no video has
    }
    let Some((rarest, _)) = counts.into_iter().min_by_key(|(_, n)| *n) else {
        return Ok(Vec::new());
    };
    // Title matches, newest first: all of them hold the trigram in their title.
    let titles = walk(ch, &rarest, &needle, want, Place::Title).await?;
    let mut found = titles.clone();
    if (titles.len() as u64) < want {
        let need = want - titles.len() as u64;
        found.extend(walk(ch, &rarest, &needle, need, Place::Description).await?);
    }
    rows_of(ch, page_of(found, offset, limit)).await
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    Title,
    Description,
}

/// Up to `want` ids of videos matching `needle` in `place` (for a description: and not in the
/// title), newest published first, from the candidates holding `gram`.
async fn walk(
    ch: &Client,
    gram: &str,
    needle: &str,
    want: u64,
    place: Place,
) -> clickhouse::error::Result<Vec<String>> {
    let filter = match place {
        Place::Title => "AND in_title = 1",
        Place::Description => "",
    };
    let mut chunk = first_chunk(want);
    loop {
        let candidates: Vec<String> = ch
            .query(&format!(
                "SELECT video_id FROM video_grams WHERE gram = ? {filter} \
                 ORDER BY published_at_ms DESC, video_id LIMIT ?"
            ))
            .bind(gram)
            .bind(chunk)
            .fetch_all()
            .await?;
        let last = (candidates.len() as u64) < chunk;
        let mut unique = HashSet::new();
        let candidates: Vec<String> = candidates
            .into_iter()
            .filter(|id| unique.insert(id.clone()))
            .collect();
        let matches = check(ch, &candidates, needle).await?;
        let mut hits: Vec<(u64, String)> = candidates
            .into_iter()
            .filter_map(|id| {
                let m = matches.get(&id)?;
                let in_title = m.at > 0 && m.at <= u64::from(m.title_bytes);
                let wanted = match place {
                    Place::Title => in_title,
                    Place::Description => m.at > 0 && !in_title,
                };
                wanted.then_some((m.published_at_ms, id))
            })
            .collect();
        if hits.len() as u64 >= want || last {
            hits.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
            return Ok(hits.into_iter().map(|(_, id)| id).collect());
        }
        chunk *= 8;
    }
}

#[derive(Debug, clickhouse::Row, Deserialize)]
struct Match {
    video_id: String,
    /// 1-based byte position of the needle in the lowercased text, 0 when absent.
    at: u64,
    title_bytes: u32,
    published_at_ms: u64,
    fetched_at_ms: u64,
}

/// Where `needle` is in the latest fetch of each of `ids`.
async fn check(
    ch: &Client,
    ids: &[String],
    needle: &str,
) -> clickhouse::error::Result<HashMap<String, Match>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<Match> = ch
        .query(
            "SELECT video_id, position(text, ?) AS at, title_bytes, published_at_ms, fetched_at_ms \
             FROM video_search WHERE video_id IN (SELECT arrayJoin(?))",
        )
        .bind(needle)
        .bind(ids)
        .fetch_all()
        .await?;
    Ok(latest(rows, |m| (&m.video_id, m.fetched_at_ms)))
}

/// No trigram to look up (one or two characters): every video's latest fetch is searched. Exact,
/// but it reads the whole table.
async fn scan(
    ch: &Client,
    needle: &str,
    offset: u64,
    limit: u64,
) -> clickhouse::error::Result<Vec<VideoRow>> {
    let ids: Vec<String> = ch
        .query(
            "SELECT video_id FROM ( \
               SELECT video_id, argMax(position(text, ?), fetched_at_ms) AS at, \
                      argMax(title_bytes, fetched_at_ms) AS title_len, max(published_at_ms) AS published \
               FROM video_search GROUP BY video_id) \
             WHERE at > 0 ORDER BY at <= title_len DESC, published DESC, video_id LIMIT ?, ?",
        )
        .bind(needle)
        .bind(offset)
        .bind(limit)
        .fetch_all()
        .await?;
    rows_of(ch, ids).await
}

fn page_of(ids: Vec<String>, offset: u64, limit: u64) -> Vec<String> {
    ids.into_iter()
        .skip(offset as usize)
        .take(limit as usize)
        .collect()
}

/// The latest fetch of each of `ids`, in that order.
async fn rows_of(ch: &Client, ids: Vec<String>) -> clickhouse::error::Result<Vec<VideoRow>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<VideoRow> = ch
        .query(&format!(
            "SELECT {COLUMNS} FROM video_search WHERE video_id IN (SELECT arrayJoin(?))"
        ))
        .bind(&ids)
        .fetch_all()
        .await?;
    let mut latest = latest(rows, |r| (&r.video_id, r.fetched_at_ms));
    Ok(ids.iter().filter_map(|id| latest.remove(id)).collect())
}

/// One row per video id: its latest fetch (versions not merged yet by ClickHouse).
fn latest<T>(rows: Vec<T>, key: impl Fn(&T) -> (&String, u64)) -> HashMap<String, T> {
    let mut latest: HashMap<String, T> = HashMap::new();
    for row in rows {
        let (id, fetched) = key(&row);
        if latest.get(id).is_some_and(|old| key(old).1 >= fetched) {
            continue;
        }
        latest.insert(id.clone(), row);
    }
    latest
}

/// The distinct three-character windows of `s`, as the index stores them.
fn trigrams(s: &str) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    let mut seen = HashSet::new();
    chars
        .windows(3)
        .map(|w| w.iter().collect::<String>())
        .filter(|g| seen.insert(g.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::trigrams;

    #[test]
    fn trigrams_are_character_windows() {
        assert_eq!(trigrams("lan"), ["lan"]);
        assert_eq!(trigrams("la"), Vec::<String>::new());
        assert_eq!(trigrams("ааа б"), ["ааа", "аа ", "а б"]);
        assert_eq!(trigrams("abab"), ["aba", "bab"]);
    }
}
