//! Videos found by the YouTube fetcher (ClickHouse `videos`, latest fetch per video): on-demand
//! fetch requests, the newest list, search, a video's details with its statistics, and trending
//! title keywords. The JSON
//! uses the YouTube Data API's snippet names (`videoId`, `channelId`, `publishedAt`, `thumbnails`).

use std::collections::BTreeMap;

use actix_web::{web, HttpRequest, HttpResponse};
use schemas::domain::{DomainError, Timestamp};
use schemas::events::VideoFetchRequested;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::lists::iso_millis;
use super::video_search::{self, VideoRow};
use super::{all_valid, event_id, json_body, produce, youtube_id, WriteResponses};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
pub struct FetchRequest {
    /// The search query, 1 to 200 characters.
    #[schema(min_length = 1, max_length = 200)]
    pub query: String,
    #[schema(format = Uuid)]
    pub event_id: Option<String>,
}

/// Ask the fetcher to search YouTube for a query now. Each caller may ask `VIDEO_FETCH_PER_HOUR`
/// (10) times an hour (then 429); the same query asked again within `VIDEO_FETCH_COALESCE` (5 min)
/// answers `{"status": "coalesced"}` and is not fetched again.
#[utoipa::path(post, path = "/api/v1/videos/fetch", tag = "videos",
    request_body = FetchRequest, responses(WriteResponses),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn fetch(
    req: HttpRequest,
    caller: Caller,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = json_body::<FetchRequest>(body, &state.limits).await?;
    let query = body.query.trim().to_string();
    let q = (1..=200)
        .contains(&query.chars().count())
        .then_some(())
        .ok_or_else(|| DomainError::new("query", "must be 1 to 200 characters"));
    let id = event_id(body.event_id.as_deref());
    all_valid([q.as_ref().err(), id.as_ref().err()])?;
    let (who, requested_by) = match &caller {
        Caller::User(u) => (format!("user:{u}"), Some(*u)),
        Caller::Service(name) => (format!("service:{name}"), None),
    };
    let unavailable = |e: stores::guard::GuardError| ApiError::StoreUnavailable(e.to_string());
    let per_hour = state.limits.video_fetch_per_hour;
    if per_hour > 0 {
        let (count, reset) = state
            .guard
            .count("video-fetch", &who, std::time::Duration::from_secs(3600))
            .await
            .map_err(unavailable)?;
        if count > per_hour {
            return Err(ApiError::TooManyRequests(
                format!("at most {per_hour} fetch requests per hour (VIDEO_FETCH_PER_HOUR)"),
                reset,
            ));
        }
    }
    let event_id = id?;
    // The same query asked again shortly after: one fetch spends the quota for all.
    let key = format!("video-fetch:{}", query.to_lowercase());
    if !state
        .guard
        .first_within(&key, state.limits.video_fetch_coalesce)
        .await
        .map_err(unavailable)?
    {
        return Ok(HttpResponse::Accepted()
            .json(serde_json::json!({"status": "coalesced", "event_id": event_id})));
    }
    let event = VideoFetchRequested {
        event_id,
        query,
        requested_by,
        occurred_at: Timestamp::now(),
    };
    let produced = produce(&state, &req, event).await;
    if produced.is_err() {
        // Not requested after all: the next ask must not be coalesced into nothing.
        if let Err(e) = state.guard.forget(&key).await {
            tracing::warn!(error = %e, "could not clear a fetch request's coalescing mark");
        }
    }
    produced
}

/// A thumbnail, as in the YouTube API.
#[derive(Debug, Serialize, ToSchema)]
pub struct Thumbnail {
    pub url: String,
}

/// Thumbnails by size name, from the two parallel arrays the tables keep.
pub(super) fn thumbnails(keys: Vec<String>, urls: Vec<String>) -> BTreeMap<String, Thumbnail> {
    keys.into_iter()
        .zip(urls)
        .map(|(k, url)| (k, Thumbnail { url }))
        .collect()
}

/// A video, with the YouTube API's snippet field names.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Video {
    pub video_id: String,
    pub title: String,
    pub description: String,
    pub channel_id: String,
    pub channel_title: String,
    /// RFC 3339.
    pub published_at: String,
    /// By size name: `default`, `medium`, `high`.
    pub thumbnails: BTreeMap<String, Thumbnail>,
    /// The search query that found it.
    pub query: String,
    /// RFC 3339: the latest fetch.
    pub fetched_at: String,
}

impl From<VideoRow> for Video {
    fn from(r: VideoRow) -> Self {
        Video {
            video_id: r.video_id,
            title: r.title,
            description: r.description,
            channel_id: r.channel_id,
            channel_title: r.channel_title,
            published_at: iso_millis(r.published_at_ms as i64),
            thumbnails: thumbnails(r.thumbnails_keys, r.thumbnails_urls),
            query: r.query,
            fetched_at: iso_millis(r.fetched_at_ms as i64),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VideoPage {
    pub items: Vec<Video>,
    pub page: u64,
    pub limit: u64,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct VideoListQuery {
    /// 1-based page; `page × limit` at most 10,000 (`LIST_MAX_DEPTH`), else 400.
    #[param(minimum = 1, maximum = 10000)]
    pub page: Option<i64>,
    /// 1..=100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
}

/// A search's `q` (trimmed, 1 to 100 characters) and its page: every error at once, `q`'s first.
pub(super) fn search_terms<'q>(
    q: &'q str,
    page: Option<i64>,
    limit: Option<i64>,
    state: &AppState,
) -> Result<(&'q str, u64, u64), ApiError> {
    let q = q.trim();
    let valid = (1..=100)
        .contains(&q.chars().count())
        .then_some(())
        .ok_or_else(|| DomainError::new("q", "must be 1 to 100 characters"));
    let paged = paging(page, limit, state.limits.list_max_depth);
    all_valid([valid.as_ref().err()])?;
    let (page, limit) = paged?;
    Ok((q, page, limit))
}

pub(super) fn paging(
    page: Option<i64>,
    limit: Option<i64>,
    max_depth: u64,
) -> Result<(u64, u64), ApiError> {
    let (page, limit) = (page.unwrap_or(1), limit.unwrap_or(20));
    let p = (1..=10_000)
        .contains(&page)
        .then_some(page as u64)
        .ok_or_else(|| DomainError::new("page", "must be 1 to 10000"));
    let l = (1..=100)
        .contains(&limit)
        .then_some(limit as u64)
        .ok_or_else(|| DomainError::new("limit", "must be 1 to 100"));
    all_valid([p.as_ref().err(), l.as_ref().err()])?;
    let (page, limit) = (p?, l?);
    super::within_depth(page, limit, max_depth)?;
    Ok((page, limit))
}

/// Fetched videos, newest published first.
#[utoipa::path(get, path = "/api/v1/videos", tag = "videos", params(VideoListQuery),
    responses((status = 200, body = VideoPage), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn list(
    _caller: Caller,
    query: web::Query<VideoListQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (page, limit) = paging(query.page, query.limit, state.limits.list_max_depth)?;
    let rows = video_search::newest(&state.clickhouse, (page - 1) * limit, limit).await?;
    let items = rows.into_iter().map(Video::from).collect();
    Ok(HttpResponse::Ok().json(VideoPage { items, page, limit }))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct SearchQuery {
    /// 1 to 100 characters; matched case-insensitively anywhere in the title or description.
    pub q: String,
    /// 1-based page; `page × limit` at most 10,000 (`LIST_MAX_DEPTH`), else 400.
    #[param(minimum = 1, maximum = 10000)]
    pub page: Option<i64>,
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
}

/// Search: partial, case-insensitive match in title or description; title matches first, then
/// newest published.
#[utoipa::path(get, path = "/api/v1/videos/search", tag = "videos", params(SearchQuery),
    responses((status = 200, body = VideoPage), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn search(
    _caller: Caller,
    query: web::Query<SearchQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (q, page, limit) = search_terms(&query.q, query.page, query.limit, &state)?;
    let budget = state.limits.video_search_walk_budget;
    let rows =
        video_search::search(&state.clickhouse, q, (page - 1) * limit, limit, budget).await?;
    let items = rows.into_iter().map(Video::from).collect();
    Ok(HttpResponse::Ok().json(VideoPage { items, page, limit }))
}

/// Words too common to be trends (English and Russian), and short ones are dropped too.
pub(super) const STOP_WORDS: &[&str] = &[
    "the", "and", "for", "with", "you", "your", "are", "was", "this", "that", "from", "how",
    "what", "why", "who", "when", "where", "all", "new", "can", "will", "not", "but", "our", "out",
    "has", "have", "its", "about", "into", "more", "most", "than", "then", "they", "them", "their",
    "his", "her", "she", "him", "get", "got", "one", "two", "official", "video", "videos", "full",
    "part", "episode", "live", "vs", "как", "что", "это", "для", "или", "при", "все", "так", "его",
    "она", "они", "мы", "вы", "на", "не", "по", "из", "за", "от", "до",
];

#[derive(Debug, Deserialize, IntoParams)]
pub struct TrendingQuery {
    /// `<n>h` or `<n>d`, up to 90 days (default `24h`).
    pub period: Option<String>,
    /// 1..=100 (default 10).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Keyword {
    pub keyword: String,
    /// Videos whose title has it.
    pub videos: u64,
}

pub(super) fn period_seconds(raw: &str) -> Option<i64> {
    let (n, unit) = raw.split_at(raw.len().checked_sub(1)?);
    let n: i64 = n.parse().ok().filter(|n| *n > 0)?;
    let seconds = match unit {
        "h" => n.checked_mul(3600)?,
        "d" => n.checked_mul(86_400)?,
        _ => return None,
    };
    (seconds <= 90 * 86_400).then_some(seconds)
}

/// The most frequent title words of videos published in the period (stop words removed).
#[utoipa::path(get, path = "/api/v1/videos/trending-keywords", tag = "videos", params(TrendingQuery),
    responses((status = 200, body = Vec<Keyword>), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn trending_keywords(
    _caller: Caller,
    query: web::Query<TrendingQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let since = super::keywords::since_hour(query.period.as_deref().unwrap_or("24h"));
    let limit = query.limit.unwrap_or(10);
    let l = (1..=100)
        .contains(&limit)
        .then_some(limit as u64)
        .ok_or_else(|| DomainError::new("limit", "must be 1 to 100"));
    all_valid([since.as_ref().err(), l.as_ref().err()])?;
    let rows: Vec<Keyword> = super::keywords::top_by_videos(&state.clickhouse, since?, l?)
        .await?
        .into_iter()
        .map(|w| Keyword {
            keyword: w.name,
            videos: w.value,
        })
        .collect();
    Ok(HttpResponse::Ok().json(rows))
}

/// A video's statistics from its latest snapshot, in the YouTube API's names.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VideoStatistics {
    pub view_count: u64,
    /// Absent when the owner hides it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub like_count: Option<u64>,
    /// Absent when comments are off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment_count: Option<u64>,
    /// RFC 3339: when the snapshot was taken.
    pub fetched_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContentDetails {
    /// ISO 8601, as the YouTube API gives it (`PT4M13S`).
    pub duration: String,
    pub duration_seconds: u32,
}

/// A day of a video's views: the day's latest snapshot, and the views gained since the latest
/// snapshot of an earlier day (absent on the first day).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DayViews {
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    pub view_count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub views_gained: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VideoDetails {
    #[serde(flatten)]
    pub video: Video,
    /// The latest snapshot; absent before the first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub statistics: Option<VideoStatistics>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_details: Option<ContentDetails>,
    /// Views per day, oldest first (at most the last 366 days with a snapshot).
    pub history: Vec<DayViews>,
}

#[derive(Debug, clickhouse::Row, Deserialize)]
struct StatisticsRow {
    view_count: u64,
    like_count: Option<u64>,
    comment_count: Option<u64>,
    duration: String,
    duration_seconds: u32,
    fetched_at_ms: u64,
}

/// A video: its snippet (latest fetch), latest statistics, duration and daily views history
/// (404 when the fetcher has not found it).
#[utoipa::path(get, path = "/api/v1/videos/{video_id}", tag = "videos",
    params(("video_id" = String, Path)),
    responses((status = 200, body = VideoDetails), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn details(
    _caller: Caller,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = youtube_id("video_id", path.into_inner())?;
    let ch = &state.clickhouse;
    let video = video_search::rows_of(ch, vec![id.clone()]);
    let latest = ch
        .query(
            "SELECT view_count, like_count, comment_count, duration, duration_seconds, fetched_at_ms \
             FROM video_statistics WHERE video_id = ? ORDER BY fetched_at_ms DESC LIMIT 1",
        )
        .bind(&id)
        .fetch_optional::<StatisticsRow>();
    // The day's latest figure is its largest: view counts do not go down (YouTube may correct
    // one down after removing spam views; the day then shows the larger figure it had).
    let days = ch
        .query(
            "SELECT intDiv(fetched_at_ms, 86400000) AS day, max(view_count) AS view_count \
             FROM video_statistics WHERE video_id = ? GROUP BY day ORDER BY day DESC LIMIT 366",
        )
        .bind(&id)
        .fetch_all::<(u64, u64)>();
    let (video, latest, mut days) = tokio::try_join!(video, latest, days)?;
    let video = video.into_iter().next().ok_or_else(|| {
        ApiError::NotFound(format!("no video {id}: the fetcher has not found it"))
    })?;
    days.reverse();
    let history = days
        .iter()
        .enumerate()
        .map(|(i, &(day, views))| DayViews {
            day: super::channels::day_name(day),
            view_count: views,
            views_gained: i.checked_sub(1).map(|p| views as i64 - days[p].1 as i64),
        })
        .collect();
    Ok(HttpResponse::Ok().json(VideoDetails {
        video: video.into(),
        content_details: latest.as_ref().map(|s| ContentDetails {
            duration: s.duration.clone(),
            duration_seconds: s.duration_seconds,
        }),
        statistics: latest.map(|s| VideoStatistics {
            view_count: s.view_count,
            like_count: s.like_count,
            comment_count: s.comment_count,
            fetched_at: iso_millis(s.fetched_at_ms as i64),
        }),
        history,
    }))
}

#[cfg(test)]
mod tests {
    use super::period_seconds;

    #[test]
    fn periods() {
        assert_eq!(period_seconds("24h"), Some(86_400));
        assert_eq!(period_seconds("7d"), Some(7 * 86_400));
        for bad in [
            "",
            "h",
            "0h",
            "-1d",
            "91d",
            "5m",
            "1.5h",
            "99999999999999999999d",
        ] {
            assert_eq!(period_seconds(bad), None, "{bad}");
        }
    }
}
