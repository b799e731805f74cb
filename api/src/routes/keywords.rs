//! Keyword analytics over the fetched videos' title words: one keyword's videos and views per day
//! with its most related keywords, and the top keywords by videos or views. A keyword is one title
//! word, lowercased (letters and digits). Periods count videos *published* in them, in whole hours
//! (from the start of the hour the period began in); views are each video's latest snapshot.
//! Everything is read from the sink's keyword tables (`keyword_videos`, `keyword_views` and their
//! hour-first twins), which hold per keyword and hour what these reads need: no read goes through
//! every video of a period. Lists are `{name, value}`, the shape a word map draws.

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

const HOUR_MS: i64 = 3_600_000;

/// The first publish hour (epoch ms / 3,600,000) of a period `<n>h` / `<n>d` of at most 90 days:
/// the hour it began in.
pub(super) fn since_hour(period: &str) -> Result<u32, DomainError> {
    let seconds = period_seconds(period)
        .ok_or_else(|| DomainError::new("period", "must be like 24h or 7d, at most 90 days"))?;
    Ok(((Timestamp::now().millis() - seconds * 1000).max(0) / HOUR_MS) as u32)
}

/// A word map entry.
#[derive(Debug, Serialize, ToSchema, clickhouse::Row, Deserialize)]
pub struct WordValue {
    pub name: String,
    pub value: u64,
}

/// `inner` (a `SELECT <column>, count() AS c FROM <table> FINAL WHERE {hours} ... GROUP BY
/// <column>`) over the hours from `since` to now in two halves, `UNION ALL`. A `FINAL` read (which
/// collapses a video fetched again) is one stream per query, and ClickHouse runs the two halves on
/// two threads; a (keyword, video) row belongs to one hour, so the halves' counts add up exactly.
fn in_two_halves(inner: &str, since: u32) -> String {
    let now = (Timestamp::now().millis() / HOUR_MS) as u32;
    let middle = since + now.saturating_sub(since).div_ceil(2);
    format!(
        "{} UNION ALL {}",
        inner.replace("{hours}", &format!("hour >= {since} AND hour < {middle}")),
        inner.replace("{hours}", &format!("hour >= {middle}"))
    )
}

/// The title words of most videos published from hour `since` (`limit` of them).
pub(super) async fn top_by_videos(
    ch: &clickhouse::Client,
    since: u32,
    limit: u64,
) -> clickhouse::error::Result<Vec<WordValue>> {
    let halves = in_two_halves(
        &format!(
            "SELECT keyword, count() AS c FROM hourly_keyword_videos FINAL \
             WHERE {{hours}} AND {} GROUP BY keyword",
            not_stop_word("keyword")
        ),
        since,
    );
    ch.query(&format!(
        "SELECT keyword AS name, sum(c) AS value FROM ({halves}) \
         GROUP BY keyword ORDER BY value DESC, name LIMIT ?"
    ))
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
    let since = since_hour(query.period.as_deref().unwrap_or("7d"));
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
            // Sums of each snapshot's change: a video's latest views under its latest title's
            // words (a keyword whose videos' titles all changed sums to 0 and is left out).
            "SELECT keyword AS name, toUInt64(sum(views)) AS value FROM hourly_keyword_views \
             WHERE hour >= ? AND {} GROUP BY keyword HAVING sum(views) > 0 \
             ORDER BY value DESC, name LIMIT ?",
            not_stop_word("keyword")
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
    let since = since_hour(query.period.as_deref().unwrap_or("7d"));
    all_valid([k.as_ref().err(), since.as_ref().err()])?;
    let since = since?;
    let ch = &state.clickhouse;
    let videos = ch
        .query(
            "SELECT toUInt64(intDiv(hour, 24)) AS day, count() FROM keyword_videos FINAL \
             WHERE keyword = ? AND hour >= ? GROUP BY day ORDER BY day",
        )
        .bind(&keyword)
        .bind(since)
        .fetch_all::<(u64, u64)>();
    let views = ch
        .query(
            "SELECT toUInt64(intDiv(hour, 24)) AS day, toUInt64(greatest(sum(views), 0)) \
             FROM keyword_views WHERE keyword = ? AND hour >= ? GROUP BY day",
        )
        .bind(&keyword)
        .bind(since)
        .fetch_all::<(u64, u64)>();
    let halves = in_two_halves(
        &format!(
            "SELECT w, count() AS c FROM keyword_videos FINAL ARRAY JOIN title_words AS w \
             WHERE keyword = ? AND {{hours}} AND w != ? AND {} GROUP BY w",
            not_stop_word("w")
        ),
        since,
    );
    let related = ch
        .query(&format!(
            "SELECT w AS name, sum(c) AS value FROM ({halves}) \
             GROUP BY w ORDER BY value DESC, name LIMIT 10"
        ))
        .bind(&keyword)
        .bind(&keyword)
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
