//! How the video reads find their rows in ClickHouse without `FINAL` over every video (ClickHouse
//! 18.16 has no skipping indexes): `video_search` holds every fetch with its lowercased text in
//! small granules, `video_grams` indexes that text by trigram, `video_gram_counts` says how common
//! each trigram is (see the sink's schema.sql). Versions of a video that are not merged yet are
//! collapsed here, the latest fetch winning.
//!
//! Search is exact (the same answer as a scan of every video's latest fetch): the candidates are the
//! videos holding the query's rarest trigram, read newest first — those with it in the title first,
//! since every title match is among them — and checked in growing chunks against their text. A
//! chunk that yields the page, or that is the last, ends the walk. When matches are too sparse
//! among the candidates for that to end within a budget, and for queries under three characters
//! (no trigram), one pass over every text finds them instead.

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

/// Candidates the walk may check in all before a scan is cheaper: checking a candidate reads its
/// 256-row granule of `video_search`, so a few thousand of them cost about what one pass over every
/// text costs (measured on 1M videos: ~15 ms per 1,600 candidates, ~40 ms per scan). The default
/// of `VIDEO_SEARCH_WALK_BUDGET`.
pub const WALK_BUDGET: u64 = 2_000;

/// Videos whose title or description contains `q` (case-insensitive): title matches first, then
/// newest published; `offset`, then `limit` of them. `budget`: candidates the walk may check.
pub(super) async fn search(
    ch: &Client,
    q: &str,
    offset: u64,
    limit: u64,
    budget: u64,
) -> clickhouse::error::Result<Vec<VideoRow>> {
    let needle = q.to_lowercase();
    let grams = trigrams(&needle);
    let want = offset + limit;
    if grams.is_empty() {
        return rows_of(ch, page_of(scan(ch, &needle, want).await?, offset, limit)).await;
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
    let found = match walk_both(ch, &rarest, &needle, want, budget).await? {
        Some(found) => found,
        // Matches are sparse among the trigram's videos: one pass over every text is cheaper.
        None => scan(ch, &needle, want).await?,
    };
    rows_of(ch, page_of(found, offset, limit)).await
}

/// The walk over `gram`'s videos: title matches, newest first — all of them hold the trigram in
/// their title — then description-only ones. `None` when that would check more than the budget.
async fn walk_both(
    ch: &Client,
    gram: &str,
    needle: &str,
    want: u64,
    mut budget: u64,
) -> clickhouse::error::Result<Option<Vec<String>>> {
    let Some(mut found) = walk(ch, gram, needle, want, Place::Title, &mut budget).await? else {
        return Ok(None);
    };
    if (found.len() as u64) < want {
        let need = want - found.len() as u64;
        let Some(more) = walk(ch, gram, needle, need, Place::Description, &mut budget).await?
        else {
            return Ok(None);
        };
        found.extend(more);
    }
    Ok(Some(found))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    Title,
    Description,
}

/// Up to `want` ids of videos matching `needle` in `place` (for a description: and not in the
/// title), newest published first, from the candidates holding `gram`; `None` when the
/// candidates needed go past `budget` (which this spends).
async fn walk(
    ch: &Client,
    gram: &str,
    needle: &str,
    want: u64,
    place: Place,
    budget: &mut u64,
) -> clickhouse::error::Result<Option<Vec<String>>> {
    let filter = match place {
        Place::Title => "AND in_title = 1",
        Place::Description => "",
    };
    let mut chunk = first_chunk(want);
    loop {
        if chunk > *budget {
            return Ok(None);
        }
        *budget -= chunk;
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
        let found = hits.len() as u64;
        if found >= want || last {
            hits.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
            return Ok(Some(hits.into_iter().map(|(_, id)| id).collect()));
        }
        // Give up now when, at this chunk's rate of matches, the rest would not fit the budget.
        let projected = (want * chunk).checked_div(found).unwrap_or(u64::MAX);
        let next = (chunk * 8).min(*budget);
        if projected > *budget || next <= chunk {
            return Ok(None);
        }
        chunk = next;
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

/// The first `want` matching videos by one pass over every fetch's text, in the search's order.
/// Fetches that match are sorted (title match, newest published, id) and cut; a fetch counts only
/// if it is its video's latest, so the cut grows 8x until `want` of them are in it or nothing is
/// left. Exact: a video's latest fetch sorts where the video belongs, stale fetches only take
/// places.
async fn scan(ch: &Client, needle: &str, want: u64) -> clickhouse::error::Result<Vec<String>> {
    let mut cut = first_chunk(want);
    loop {
        let rows: Vec<(String, u64)> = ch
            .query(
                "SELECT video_id, fetched_at_ms FROM video_search \
                 PREWHERE position(text, ?) > 0 \
                 ORDER BY position(text, ?) <= title_bytes DESC, published_at_ms DESC, video_id, \
                          fetched_at_ms DESC \
                 LIMIT ?",
            )
            .bind(needle)
            .bind(needle)
            .bind(cut)
            .fetch_all()
            .await?;
        let ids: Vec<String> = rows.iter().map(|(id, _)| id.clone()).collect();
        let newest: HashMap<String, u64> = ch
            .query(
                "SELECT video_id, max(fetched_at_ms) FROM video_search \
                 WHERE video_id IN (SELECT arrayJoin(?)) GROUP BY video_id",
            )
            .bind(&ids)
            .fetch_all::<(String, u64)>()
            .await?
            .into_iter()
            .collect();
        let last = (rows.len() as u64) < cut;
        let mut seen = HashSet::new();
        let found: Vec<String> = rows
            .into_iter()
            .filter(|(id, fetched)| newest.get(id) == Some(fetched) && seen.insert(id.clone()))
            .map(|(id, _)| id)
            .collect();
        if found.len() as u64 >= want || last {
            return Ok(found);
        }
        cut *= 8;
    }
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
