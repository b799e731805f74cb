//! Keyword analytics over the fetched videos' title words (ClickHouse `video_timeline` for videos,
//! `video_views_latest` for their latest view counts): one keyword's videos and views per day with
//! its most related keywords, and the top keywords by videos or views. A keyword is one title word,
//! lowercased (letters and digits). Periods count videos *published* in them; views are each
//! video's largest snapshot (its latest: view counts do not go down). Lists are `{name, value}`, the shape a word map draws.

use actix_web::{web, HttpResponse};
use schemas::domain::{DomainError, Timestamp};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::all_valid;
use super::channels::day_name;
use super::videos::{period_seconds, STOP_WORDS};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// `AND w NOT IN ('the', ...)`: stop words and words under three characters are no keywords.
fn not_stop_word(column: &str) -> String {
    let stop: Vec<String> = STOP_WORDS.iter().map(|w| format!("'{w}'")).collect();
    // `NOT IN` builds one set; `has()` over an array literal took twice as long (per row).
    format!(
        "lengthUTF8({column}) >= 3 AND {column} NOT IN ({})",
        stop.join(",")
    )
}

/// The period's start (epoch ms) from `<n>h` / `<n>d` (default `7d`), at most 90 days.
fn since_ms(period: Option<&str>) -> Result<u64, DomainError> {
    let seconds = period_seconds(period.unwrap_or("7d"))
        .ok_or_else(|| DomainError::new("period", "must be like 24h or 7d, at most 90 days"))?;
    Ok((Timestamp::now().millis() - seconds * 1000).max(0) as u64)
}

/// A word map entry.
#[derive(Debug, Serialize, ToSchema, clickhouse::Row, Deserialize)]
pub struct WordValue {
    pub name: String,
    pub value: u64,
}

/// The title words of most videos published since `since_ms` (`limit` of them).
pub(super) async fn top_by_videos(
    ch: &clickhouse::Client,
    since_ms: u64,
    limit: u64,
) -> clickhouse::error::Result<Vec<WordValue>> {
    ch.query(&format!(
        "SELECT keyword AS name, uniqExact(video_id) AS value FROM ( \
           SELECT video_id, arrayJoin(title_words) AS keyword \
           FROM video_timeline WHERE published_at_ms >= ?) \
         WHERE {} GROUP BY keyword ORDER BY value DESC, name LIMIT ?",
        not_stop_word("keyword")
    ))
    .bind(since_ms)
    .bind(limit)
    .fetch_all()
    .await
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct TopQuery {
    /// `<n>h` or `<n>d`, up to 90 days (default `7d`).
    pub period: Option<String>,
    /// `videos` (default): how many videos published in the period have it in their title;
    /// `views`: the sum of those videos' latest view counts.
    pub by: Option<String>,
    /// 1..=100 (default 10).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TopKeywords {
    pub period: String,
    /// `videos` or `views`.
    pub by: String,
    pub items: Vec<WordValue>,
}

/// The top keywords of the videos published in a period, by videos or by views.
#[utoipa::path(get, path = "/api/v1/keywords/top", tag = "keywords", params(TopQuery),
    responses((status = 200, body = TopKeywords), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn top(
    _caller: Caller,
    query: web::Query<TopQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let since = since_ms(query.period.as_deref());
    let by = match query.by.as_deref().unwrap_or("videos") {
        b @ ("videos" | "views") => Ok(b.to_string()),
        _ => Err(DomainError::new("by", "must be videos or views")),
    };
    let limit = query.limit.unwrap_or(10);
    let l = (1..=100)
        .contains(&limit)
        .then_some(limit as u64)
        .ok_or_else(|| DomainError::new("limit", "must be 1 to 100"));
    all_valid([since.as_ref().err(), by.as_ref().err(), l.as_ref().err()])?;
    let (since, by, limit) = (since?, by?, l?);
    let ch = &state.clickhouse;
    let items = if by == "videos" {
        top_by_videos(ch, since, limit).await?
    } else {
        ch.query(&format!(
            // A video's title words are its latest fetch's, and its views the largest count of
            // its snapshots (counts do not go down; max and any read 2-3x faster than argMax of
            // the array).
            "SELECT w AS name, sum(views) AS value FROM ( \
               SELECT video_id, any(title_words) AS words, max(view_count) AS views \
               FROM video_views_latest WHERE published_at_ms >= ? GROUP BY video_id) \
             ARRAY JOIN words AS w WHERE {} GROUP BY w ORDER BY value DESC, name LIMIT ?",
            not_stop_word("w")
        ))
        .bind(since)
        .bind(limit)
        .fetch_all()
        .await?
    };
    Ok(HttpResponse::Ok().json(TopKeywords {
        period: query.period.clone().unwrap_or_else(|| "7d".into()),
        by,
        items,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct KeywordQuery {
    /// `<n>h` or `<n>d`, up to 90 days (default `7d`).
    pub period: Option<String>,
}

/// A day of a keyword.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeywordDay {
    /// `YYYY-MM-DD` (UTC), by publish date.
    pub day: String,
    /// Videos published that day with the keyword in their title.
    pub videos: u64,
    /// The sum of their latest view counts (videos without a snapshot count 0).
    pub view_count: u64,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeywordTrend {
    pub keyword: String,
    pub period: String,
    pub videos: u64,
    pub view_count: u64,
    pub days: Vec<KeywordDay>,
    /// The 10 words most often in the same titles: `value` = videos with both.
    pub related: Vec<WordValue>,
}

/// One keyword over a period: videos per day mentioning it in their title, their views, and the 10
/// most related keywords (co-occurrence in titles).
#[utoipa::path(get, path = "/api/v1/keywords/{keyword}", tag = "keywords",
    params(("keyword" = String, Path, description = "One word: 1 to 50 letters or digits (case-insensitive)"), KeywordQuery),
    responses((status = 200, body = KeywordTrend), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn trend(
    _caller: Caller,
    path: web::Path<String>,
    query: web::Query<KeywordQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let keyword = path.into_inner().to_lowercase();
    let k = ((1..=50).contains(&keyword.chars().count())
        && keyword.chars().all(char::is_alphanumeric))
    .then_some(())
    .ok_or_else(|| DomainError::new("keyword", "must be one word of 1 to 50 letters or digits"));
    let since = since_ms(query.period.as_deref());
    all_valid([k.as_ref().err(), since.as_ref().err()])?;
    let since = since?;
    let ch = &state.clickhouse;
    let videos = ch
        .query(
            "SELECT intDiv(published_at_ms, 86400000) AS day, uniqExact(video_id) FROM video_timeline \
             WHERE published_at_ms >= ? AND has(title_words, ?) GROUP BY day ORDER BY day",
        )
        .bind(since)
        .bind(&keyword)
        .fetch_all::<(u64, u64)>();
    let views = ch
        .query(
            "SELECT intDiv(published, 86400000) AS day, sum(views) FROM ( \
               SELECT video_id, any(published_at_ms) AS published, max(view_count) AS views \
               FROM video_views_latest WHERE published_at_ms >= ? AND has(title_words, ?) GROUP BY video_id) \
             GROUP BY day",
        )
        .bind(since)
        .bind(&keyword)
        .fetch_all::<(u64, u64)>();
    let related = ch
        .query(&format!(
            "SELECT w AS name, uniqExact(video_id) AS value FROM video_timeline ARRAY JOIN title_words AS w \
             WHERE published_at_ms >= ? AND has(title_words, ?) AND w != ? AND {} \
             GROUP BY w ORDER BY value DESC, name LIMIT 10",
            not_stop_word("w")
        ))
        .bind(since)
        .bind(&keyword)
        .bind(&keyword)
        .fetch_all::<WordValue>();
    let (videos, views, related) = tokio::try_join!(videos, views, related)?;
    let views: std::collections::HashMap<u64, u64> = views.into_iter().collect();
    let days: Vec<KeywordDay> = videos
        .into_iter()
        .map(|(day, n)| KeywordDay {
            day: day_name(day),
            videos: n,
            view_count: views.get(&day).copied().unwrap_or(0),
        })
        .collect();
    Ok(HttpResponse::Ok().json(KeywordTrend {
        period: query.period.clone().unwrap_or_else(|| "7d".into()),
        videos: days.iter().map(|d| d.videos).sum(),
        view_count: days.iter().map(|d| d.view_count).sum(),
        keyword,
        days,
        related,
    }))
}
