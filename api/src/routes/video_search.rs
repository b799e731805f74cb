//! How the video reads find their rows in ClickHouse without `FINAL` over every video (ClickHouse
//! 18.16 has no skipping indexes): `video_search` holds every fetch with its lowercased text in
//! small granules, `video_grams` indexes that text by trigram, `video_gram_counts` says how common
//! each trigram is, `video_timeline` holds the text again by publish time (see the sink's
//! schema.sql). Versions of a video that are not merged yet are collapsed here, the latest fetch
//! winning.
//!
//! Search is exact (the same answer as a scan of every video's latest fetch): the candidates are the
//! videos holding the query's rarest trigram, read newest first — those with it in the title first,
//! since every title match is among them — and checked in growing chunks against their text. A
//! chunk that yields the page, or that is the last, ends the walk. When matches are too sparse
//! among the candidates for that to end within a budget, and for queries under three characters
//! (no trigram), a pass over the texts newest first (publish-time slices) finds them instead.

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

/// Publish-time slices `[from, to)`, newest first: the last hour, then each 8x longer back, then
/// everything before. Reads that go newest first stop at the first slice that completes them.
fn slices(now_ms: u64) -> Vec<(u64, u64)> {
    const HOUR_MS: u64 = 3_600_000;
    let mut out = Vec::new();
    let mut to = u64::MAX;
    for hours in [1, 8, 64, 512, 4_096, 32_768] {
        let from = now_ms.saturating_sub(hours * HOUR_MS);
        if from < to {
            out.push((from, to));
            to = from;
        }
    }
    if to > 0 {
        out.push((0, to));
    }
    out
}

fn now_ms() -> u64 {
    u64::try_from(schemas::domain::Timestamp::now().millis()).unwrap_or(0)
}

/// Videos newest published first: `offset`, then `limit` of them.
pub(super) async fn newest(
    ch: &Client,
    offset: u64,
    limit: u64,
) -> clickhouse::error::Result<Vec<VideoRow>> {
    let want = offset + limit;
    let mut ids: Vec<String> = Vec::new();
    let mut seen = HashSet::new();
    for (from, to) in slices(now_ms()) {
        // Versions of one video share its publish time: one row per video id (and, should a
        // re-fetch have moved it, once in the list).
        let rows: Vec<String> = ch
            .query(
                "SELECT video_id FROM video_timeline \
                 WHERE published_at_ms >= ? AND published_at_ms < ? \
                 ORDER BY published_at_ms DESC, video_id LIMIT 1 BY video_id LIMIT ?",
            )
            .bind(from)
            .bind(to)
            .bind(want)
            .fetch_all()
            .await?;
        ids.extend(rows.into_iter().filter(|id| seen.insert(id.clone())));
        if ids.len() as u64 >= want {
            break;
        }
    }
    rows_of(ch, page_of(ids, offset, limit)).await
}

/// The most candidates a search checks one by one (a query's rarest trigram in more videos than
/// this reads the texts instead): checking a candidate reads its 256-row granule of
/// `video_search`, so a few thousand of them cost about what one pass over every text costs
/// (measured on 1M videos: ~15 ms per 1,600 candidates, 40-60 ms per pass). The default of
/// `VIDEO_SEARCH_WALK_BUDGET`.
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
    let rarest = match grams.is_empty() {
        true => None,
        false => {
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
            counts.into_iter().min_by_key(|(_, n)| *n)
        }
    };
    let found = match rarest {
        // A rare trigram: its videos are checked.
        Some((gram, videos)) if videos <= budget => {
            match walk_both(ch, &gram, &needle, want, budget).await? {
                Some(found) => found,
                // Matches are sparse among them after all: one pass over every text.
                None => scan(ch, &needle, want, vec![(0, u64::MAX)]).await?,
            }
        }
        // No trigram (under three characters) or a common one: the newest texts first (a frequent
        // needle ends in the first slice, a rare one soon reads the rest in one pass).
        _ => scan(ch, &needle, want, slices(now_ms())).await?,
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

#[derive(Debug, clickhouse::Row, Deserialize)]
struct Scanned {
    video_id: String,
    fetched_at_ms: u64,
    in_title: u8,
}

/// The first `want` matching videos by one pass over the texts, newest of `slices` first, in the
/// search's order. Title matches of a slice come before older ones, so the pass stops once `want`
/// of them are found; description matches are kept (the first `want`) in case titles run out.
/// When a slice leaves titles far short, the older slices are read as one. A slice is read up to a cut per kind (title / description) that grows 8x while stale
/// fetches leave it short; a fetch counts only if it is its video's latest.
async fn scan(
    ch: &Client,
    needle: &str,
    want: u64,
    slices: Vec<(u64, u64)>,
) -> clickhouse::error::Result<Vec<String>> {
    let (mut titles, mut descriptions) = (Vec::new(), Vec::new());
    let mut seen = HashSet::new();
    let mut slices = std::collections::VecDeque::from(slices);
    while let Some((from, to)) = slices.pop_front() {
        let mut cut = first_chunk(want);
        loop {
            let rows: Vec<Scanned> = ch
                .query(
                    "SELECT video_id, fetched_at_ms, position(text, ?) <= title_bytes AS in_title \
                     FROM video_timeline \
                     WHERE published_at_ms >= ? AND published_at_ms < ? AND position(text, ?) > 0 \
                     ORDER BY in_title DESC, published_at_ms DESC, video_id, fetched_at_ms DESC \
                     LIMIT ? BY in_title",
                )
                .bind(needle)
                .bind(from)
                .bind(to)
                .bind(needle)
                .bind(cut)
                .fetch_all()
                .await?;
            let ids: Vec<&str> = rows.iter().map(|r| r.video_id.as_str()).collect();
            let newest = latest_fetches(ch, &ids).await?;
            let full =
                |title: u8| rows.iter().filter(|r| r.in_title == title).count() as u64 == cut;
            let (mut t, mut d) = (Vec::new(), Vec::new());
            let mut slice_seen = HashSet::new();
            for r in &rows {
                if newest.get(&r.video_id) == Some(&r.fetched_at_ms)
                    && !seen.contains(&r.video_id)
                    && slice_seen.insert(r.video_id.clone())
                {
                    if r.in_title == 1 { &mut t } else { &mut d }.push(r.video_id.clone());
                }
            }
            let titles_done = !full(1) || (titles.len() + t.len()) as u64 >= want;
            let descriptions_done = !full(0)
                || (descriptions.len() + d.len()) as u64 >= want
                || (titles.len() + t.len()) as u64 >= want; // not needed: titles fill the page
            if titles_done && descriptions_done {
                seen.extend(slice_seen);
                titles.extend(t);
                descriptions.extend(d);
                break;
            }
            cut *= 8;
        }
        if titles.len() as u64 >= want {
            break;
        }
        // Too sparse to finish within a few slices: read all the older ones in one pass.
        if (titles.len() as u64) * 8 < want {
            if let (Some(&(oldest, _)), Some(&(_, newer))) = (slices.back(), slices.front()) {
                slices = [(oldest, newer)].into();
            }
        }
    }
    titles.extend(descriptions);
    titles.truncate(want as usize);
    Ok(titles)
}

/// The latest fetch time of each of `ids`.
async fn latest_fetches(
    ch: &Client,
    ids: &[&str],
) -> clickhouse::error::Result<HashMap<String, u64>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(String, u64)> = ch
        .query(
            "SELECT video_id, max(fetched_at_ms) FROM video_search \
             WHERE video_id IN (SELECT arrayJoin(?)) GROUP BY video_id",
        )
        .bind(ids)
        .fetch_all()
        .await?;
    Ok(rows.into_iter().collect())
}

fn page_of(ids: Vec<String>, offset: u64, limit: u64) -> Vec<String> {
    ids.into_iter()
        .skip(offset as usize)
        .take(limit as usize)
        .collect()
}

/// The latest fetch of each of `ids`, in that order.
pub(super) async fn rows_of(
    ch: &Client,
    ids: Vec<String>,
) -> clickhouse::error::Result<Vec<VideoRow>> {
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
