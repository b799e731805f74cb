//! YouTube channels the fetcher has seen (ClickHouse `channels`, `channel_statistics`,
//! `channel_videos`): search by name, a channel's details with its latest statistics and videos,
//! and its figures per day over a period. JSON in the YouTube Data API's names (`channelId`,
//! `customUrl`, `subscriberCount`, ...), counts as numbers.

use std::collections::{BTreeMap, HashMap};

use actix_web::{web, HttpResponse};
use schemas::domain::{DomainError, Timestamp};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::lists::iso_millis;
use super::videos::{search_terms, thumbnails, Thumbnail};
use super::{all_valid, youtube_id};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

const DAY_MS: u64 = 86_400_000;

/// `YYYY-MM-DD` (UTC) of a day number (days since the epoch).
pub(super) fn day_name(day: u64) -> String {
    iso_millis((day * DAY_MS) as i64)[..10].to_string()
}

#[derive(Debug, clickhouse::Row, Deserialize)]
struct ChannelRow {
    channel_id: String,
    title: String,
    description: String,
    custom_url: String,
    published_at_ms: u64,
    thumbnails_keys: Vec<String>,
    thumbnails_urls: Vec<String>,
    subscriber_count: Option<u64>,
    view_count: u64,
    video_count: u64,
    fetched_at_ms: u64,
}

const CHANNEL_COLUMNS: &str = "channel_id, title, description, custom_url, published_at_ms, \
    thumbnails_keys, thumbnails_urls, subscriber_count, view_count, video_count, fetched_at_ms";

/// A channel's statistics, as in the YouTube API (counts as numbers).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChannelStatistics {
    /// Absent when the channel hides it (`hiddenSubscriberCount`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscriber_count: Option<u64>,
    pub hidden_subscriber_count: bool,
    pub view_count: u64,
    pub video_count: u64,
    /// RFC 3339: when this snapshot was taken.
    pub fetched_at: String,
}

/// A channel, with the YouTube API's snippet field names.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Channel {
    pub channel_id: String,
    pub title: String,
    pub description: String,
    /// The `@handle`, empty if none.
    pub custom_url: String,
    /// RFC 3339.
    pub published_at: String,
    pub thumbnails: BTreeMap<String, Thumbnail>,
    /// The latest snapshot.
    pub statistics: ChannelStatistics,
}

impl From<ChannelRow> for Channel {
    fn from(r: ChannelRow) -> Self {
        Channel {
            channel_id: r.channel_id,
            title: r.title,
            description: r.description,
            custom_url: r.custom_url,
            published_at: iso_millis(r.published_at_ms as i64),
            thumbnails: thumbnails(r.thumbnails_keys, r.thumbnails_urls),
            statistics: ChannelStatistics {
                hidden_subscriber_count: r.subscriber_count.is_none(),
                subscriber_count: r.subscriber_count,
                view_count: r.view_count,
                video_count: r.video_count,
                fetched_at: iso_millis(r.fetched_at_ms as i64),
            },
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelPage {
    pub items: Vec<Channel>,
    pub page: u64,
    pub limit: u64,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ChannelSearchQuery {
    /// 1 to 100 characters, matched case-insensitively anywhere in the title or the `@handle`.
    pub q: String,
    /// 1-based page; `page × limit` at most 10,000 (`LIST_MAX_DEPTH`), else 400.
    #[param(minimum = 1, maximum = 10000)]
    pub page: Option<i64>,
    /// 1..=100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
}

/// Channels by name: partial, case-insensitive match in the title or `@handle`; most subscribers
/// first (hidden counts last), then by id.
#[utoipa::path(get, path = "/api/v1/channels", tag = "channels", params(ChannelSearchQuery),
    responses((status = 200, body = ChannelPage), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn search(
    _caller: Caller,
    query: web::Query<ChannelSearchQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (q, page, limit) = search_terms(&query.q, query.page, query.limit, &state)?;
    let rows: Vec<ChannelRow> = state
        .clickhouse
        .query(&format!(
            "SELECT {CHANNEL_COLUMNS} FROM ( \
               SELECT {CHANNEL_COLUMNS} FROM channels WHERE position(search_text, lowerUTF8(?)) > 0 \
               ORDER BY channel_id, fetched_at_ms DESC LIMIT 1 BY channel_id) \
             ORDER BY isNull(subscriber_count), subscriber_count DESC, channel_id LIMIT ?, ?"
        ))
        .bind(q)
        .bind((page - 1) * limit)
        .bind(limit)
        .fetch_all()
        .await?;
    let items = rows.into_iter().map(Channel::from).collect();
    Ok(HttpResponse::Ok().json(ChannelPage { items, page, limit }))
}

/// One of a channel's latest videos.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChannelVideo {
    pub video_id: String,
    pub title: String,
    /// RFC 3339.
    pub published_at: String,
    pub thumbnails: BTreeMap<String, Thumbnail>,
    /// The latest snapshot's `statistics.viewCount`; absent before the first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub view_count: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChannelDetails {
    #[serde(flatten)]
    pub channel: Channel,
    /// The 10 most recently published videos the fetcher found.
    pub latest_videos: Vec<ChannelVideo>,
}

#[derive(Debug, clickhouse::Row, Deserialize)]
struct ChannelVideoRow {
    video_id: String,
    title: String,
    published_at_ms: u64,
    thumbnails_keys: Vec<String>,
    thumbnails_urls: Vec<String>,
}

/// A channel: details, latest statistics and its latest videos (404 until its first snapshot).
#[utoipa::path(get, path = "/api/v1/channels/{channel_id}", tag = "channels",
    params(("channel_id" = String, Path)),
    responses((status = 200, body = ChannelDetails), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn details(
    _caller: Caller,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = youtube_id("channel_id", path.into_inner())?;
    let ch = &state.clickhouse;
    let channel = ch
        .query(&format!(
            "SELECT {CHANNEL_COLUMNS} FROM channels WHERE channel_id = ? \
             ORDER BY fetched_at_ms DESC LIMIT 1"
        ))
        .bind(&id)
        .fetch_optional::<ChannelRow>();
    let videos = ch
        .query(
            "SELECT video_id, title, published_at_ms, thumbnails_keys, thumbnails_urls \
             FROM channel_videos WHERE channel_id = ? \
             ORDER BY published_at_ms DESC, fetched_at_ms DESC LIMIT 1 BY video_id LIMIT 10",
        )
        .bind(&id)
        .fetch_all::<ChannelVideoRow>();
    let (channel, videos) = tokio::try_join!(channel, videos)?;
    let channel = channel.ok_or_else(|| {
        ApiError::NotFound(format!(
            "no channel {id}: the fetcher has not snapshotted it (yet)"
        ))
    })?;
    let ids: Vec<&str> = videos.iter().map(|v| v.video_id.as_str()).collect();
    let views: HashMap<String, u64> = if ids.is_empty() {
        HashMap::new()
    } else {
        ch.query(
            "SELECT video_id, argMax(view_count, fetched_at_ms) FROM video_statistics \
             WHERE video_id IN (SELECT arrayJoin(?)) GROUP BY video_id",
        )
        .bind(&ids)
        .fetch_all::<(String, u64)>()
        .await?
        .into_iter()
        .collect()
    };
    let latest_videos = videos
        .into_iter()
        .map(|v| ChannelVideo {
            view_count: views.get(&v.video_id).copied(),
            published_at: iso_millis(v.published_at_ms as i64),
            thumbnails: thumbnails(v.thumbnails_keys, v.thumbnails_urls),
            video_id: v.video_id,
            title: v.title,
        })
        .collect();
    Ok(HttpResponse::Ok().json(ChannelDetails {
        channel: channel.into(),
        latest_videos,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct StatsQuery {
    /// Start, RFC 3339 (inclusive).
    pub from: String,
    /// End, RFC 3339 (exclusive); at most 366 days after `from`.
    pub to: String,
}

#[derive(Debug, Serialize, ToSchema, clickhouse::Row, Deserialize)]
pub struct DayCount {
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    pub videos: u64,
}

/// A channel's figures on one day: the day's latest snapshot, and what it gained since the
/// latest snapshot of an earlier day (absent when there is none, in the period or before it).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DayGrowth {
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    pub view_count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub views_gained: Option<i64>,
    /// Absent while the channel hides it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscriber_count: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscribers_gained: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChannelStats {
    pub channel_id: String,
    /// Videos per day by publish date.
    pub days: Vec<DayCount>,
    /// Views and subscribers per day, from the channel's snapshots.
    pub growth: Vec<DayGrowth>,
}

#[derive(Debug, clickhouse::Row, Deserialize)]
struct SnapshotDay {
    day: u64,
    view_count: u64,
    subscriber_count: Option<u64>,
}

/// A channel's videos per day (by publish date), and its views and subscribers per day with their
/// growth, over a period.
#[utoipa::path(get, path = "/api/v1/channels/{channel_id}/stats", tag = "channels",
    params(("channel_id" = String, Path), StatsQuery),
    responses((status = 200, body = ChannelStats), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn stats(
    _caller: Caller,
    path: web::Path<String>,
    query: web::Query<StatsQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let f = Timestamp::parse_rfc3339("from", &query.from);
    let t = Timestamp::parse_rfc3339("to", &query.to);
    let c = youtube_id("channel_id", path.into_inner());
    all_valid([f.as_ref().err(), t.as_ref().err(), c.as_ref().err()])?;
    let (from, to, channel) = (f?.millis(), t?.millis(), c?);
    if to <= from || to - from > 366 * 86_400_000 {
        return Err(DomainError::new("to", "must be after `from`, by at most 366 days").into());
    }
    let (from, to) = (from.max(0) as u64, to.max(0) as u64);
    let ch = &state.clickhouse;
    let days = ch
        .query(
            "SELECT toString(toDate(published_at)) AS day, uniqExact(video_id) AS videos FROM video_search \
             WHERE channel_id = ? AND published_at_ms >= ? AND published_at_ms < ? \
             GROUP BY day ORDER BY day",
        )
        .bind(&channel)
        .bind(from)
        .bind(to)
        .fetch_all::<DayCount>();
    // The latest snapshot of each day, and the latest one before the period (growth of its first
    // day). A snapshot written twice is the same figures: argMax takes one.
    let snapshots = ch
        .query(
            "SELECT intDiv(fetched_at_ms, 86400000) AS day, argMax(view_count, fetched_at_ms) AS view_count, \
                    argMax(subscriber_count, fetched_at_ms) AS subscriber_count \
             FROM channel_statistics WHERE channel_id = ? AND fetched_at_ms < ? \
             GROUP BY day ORDER BY day DESC LIMIT 368",
        )
        .bind(&channel)
        .bind(to)
        .fetch_all::<SnapshotDay>();
    let (days, mut snapshots) = tokio::try_join!(days, snapshots)?;
    snapshots.reverse();
    let mut growth = Vec::new();
    let mut before: Option<&SnapshotDay> = None;
    for s in &snapshots {
        // Days before the period only serve as the base of the first day's growth.
        if (s.day + 1) * DAY_MS > from {
            growth.push(DayGrowth {
                day: day_name(s.day),
                view_count: s.view_count,
                views_gained: before.map(|b| s.view_count as i64 - b.view_count as i64),
                subscriber_count: s.subscriber_count,
                subscribers_gained: before
                    .and_then(|b| Some(s.subscriber_count? as i64 - b.subscriber_count? as i64)),
            });
        }
        before = Some(s);
    }
    Ok(HttpResponse::Ok().json(ChannelStats {
        channel_id: channel,
        days,
        growth,
    }))
}
