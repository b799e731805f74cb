//! Analytics reads from ClickHouse: a user's watch time for a movie, "continue watching", top movies
//! over a period, and events per type per hour. SQL works on ClickHouse 18.16 and current releases
//! (positional `LIMIT offset, n`, `.bind()` parameters, no query parameters).

use actix_web::{web, HttpResponse};
use schemas::domain::{DomainError, MovieId, Timestamp, UserId};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::lists::iso_millis;
use super::{all_valid, page, PageQuery};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

const MAX_RANGE_SECONDS: i64 = 366 * 24 * 3600;

fn ids(user_id: &str, movie_id: Option<&str>) -> Result<(UserId, Option<MovieId>), ApiError> {
    let user = UserId::parse(user_id);
    let movie = movie_id.map(MovieId::parse).transpose();
    all_valid([user.as_ref().err(), movie.as_ref().err()])?;
    Ok((user?, movie?))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WatchTime {
    #[schema(format = Uuid)]
    pub user_id: String,
    #[schema(format = Uuid)]
    pub movie_id: String,
    pub viewed_seconds: u64,
}

/// Total watch time of a user for a movie.
#[utoipa::path(get, path = "/api/v1/analytics/users/{user_id}/movies/{movie_id}/watch-time", tag = "analytics",
    params(("user_id" = String, Path, format = Uuid), ("movie_id" = String, Path, format = Uuid)),
    responses((status = 200, body = WatchTime), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn watch_time(
    caller: Caller,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (user, movie) = ids(&path.0, Some(&path.1))?;
    caller.may_act_for(&user)?;
    let movie = movie.ok_or_else(|| ApiError::Internal("movie id".into()))?;
    let seconds: u64 = state
        .clickhouse
        .query("SELECT toUInt64(sum(viewed_seconds)) FROM watch_time WHERE user_id = toUUID(?) AND movie_id = toUUID(?)")
        .bind(user.to_string())
        .bind(movie.to_string())
        .fetch_one()
        .await?;
    Ok(HttpResponse::Ok().json(WatchTime {
        user_id: user.to_string(),
        movie_id: movie.to_string(),
        viewed_seconds: seconds,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ContinueItem {
    #[schema(format = Uuid)]
    pub movie_id: String,
    pub position_ms: u64,
    pub duration_ms: Option<u64>,
    /// RFC 3339.
    pub updated_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ContinueWatching {
    pub items: Vec<ContinueItem>,
    pub page: u64,
    pub size: u64,
}

#[derive(Debug, clickhouse::Row, Deserialize)]
struct ContinueRow {
    movie_id: String,
    position_ms: u64,
    duration_ms: Option<u64>,
    at_ms: u64,
}

/// A user's "continue watching": the last position per movie, when it is between 5% and 90% of
/// the movie's duration (or the duration is unknown), most recent first.
#[utoipa::path(get, path = "/api/v1/analytics/users/{user_id}/continue-watching", tag = "analytics",
    params(("user_id" = String, Path, format = Uuid), PageQuery),
    responses((status = 200, body = ContinueWatching), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn continue_watching(
    caller: Caller,
    path: web::Path<String>,
    query: web::Query<PageQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (user, _) = ids(&path, None)?;
    caller.may_act_for(&user)?;
    let (page, size) = page(&query, state.limits.list_max_depth)?;
    let rows: Vec<ContinueRow> = state
        .clickhouse
        .query(
            "SELECT toString(movie_id) AS movie_id, argMax(position_ms, occurred_at_ms) AS position_ms, \
             argMax(duration_ms, occurred_at_ms) AS duration_ms, max(occurred_at_ms) AS at_ms \
             FROM last_positions WHERE user_id = toUUID(?) GROUP BY movie_id \
             HAVING isNull(duration_ms) OR (position_ms >= duration_ms * 0.05 AND position_ms <= duration_ms * 0.9) \
             ORDER BY at_ms DESC, movie_id LIMIT ?, ?",
        )
        .bind(user.to_string())
        .bind((page - 1) * size)
        .bind(size)
        .fetch_all()
        .await?;
    let items = rows
        .into_iter()
        .map(|r| ContinueItem {
            movie_id: r.movie_id,
            position_ms: r.position_ms,
            duration_ms: r.duration_ms,
            updated_at: iso_millis((r.at_ms / 1000 * 1000) as i64),
        })
        .collect();
    Ok(HttpResponse::Ok().json(ContinueWatching { items, page, size }))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct PeriodQuery {
    /// Start, RFC 3339 (inclusive).
    pub from: String,
    /// End, RFC 3339 (exclusive); at most 366 days after `from`.
    pub to: String,
    /// `watch_time` (default) or `viewers` (distinct users). Counted over whole UTC days: the
    /// period is widened to the days it touches.
    pub by: Option<String>,
    /// 1..=100 (default 10).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
}

fn period(from: &str, to: &str) -> Result<(u32, u32), ApiError> {
    let f = Timestamp::parse_rfc3339("from", from);
    let t = Timestamp::parse_rfc3339("to", to);
    all_valid([f.as_ref().err(), t.as_ref().err()])?;
    let (f, t) = (f?.seconds(), t?.seconds());
    if t <= f || i64::from(t - f) > MAX_RANGE_SECONDS {
        return Err(DomainError::new("to", "must be after `from`, by at most 366 days").into());
    }
    Ok((f, t))
}

#[derive(Debug, Serialize, ToSchema, clickhouse::Row, Deserialize)]
pub struct TopMovie {
    #[schema(format = Uuid)]
    pub movie_id: String,
    /// Watch time in seconds, or distinct viewers.
    pub value: u64,
}

/// Top movies by watch time or by distinct viewers over a period (whole UTC days).
#[utoipa::path(get, path = "/api/v1/analytics/movies/top", tag = "analytics",
    params(PeriodQuery),
    responses((status = 200, body = Vec<TopMovie>), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn top_movies(
    _caller: Caller,
    query: web::Query<PeriodQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (from, to) = period(&query.from, &query.to)?;
    let by = query.by.as_deref().unwrap_or("watch_time");
    let by_viewers = match by {
        "watch_time" => false,
        "viewers" => true,
        _ => return Err(DomainError::new("by", "must be watch_time or viewers").into()),
    };
    let limit = query.limit.unwrap_or(10);
    if !(1..=100).contains(&limit) {
        return Err(DomainError::new("limit", "must be 1 to 100").into());
    }
    // Both read per-day aggregates (schema.sql): the period is widened to the UTC days it touches.
    let sql = if by_viewers {
        // Exact: one row per (day, movie key, 64-bit viewer hash), counted over the period's
        // days per movie key; every movie's count is joined to its id, so ties order by the id.
        // Both sides are aliased: current ClickHouse refuses an unaliased subquery in a JOIN
        // (ALIAS_REQUIRED), and 18.16 has no setting to relax that.
        "SELECT toString(movie_id) AS movie_id, value FROM ( \
           SELECT movie_key, toUInt64(uniqExact(user_hash)) AS value FROM movie_viewers_by_day \
           WHERE day >= toDate(toDateTime(?)) AND day <= toDate(toDateTime(?)) GROUP BY movie_key) \
           AS counted \
         ANY INNER JOIN (SELECT movie_key, movie_id FROM movie_keys) AS keys USING movie_key \
         ORDER BY value DESC, movie_id LIMIT ?"
    } else {
        "SELECT toString(movie_id) AS movie_id, toUInt64(sum(viewed_seconds)) AS value \
         FROM movie_watch_daily \
         WHERE day >= toDate(toDateTime(?)) AND day <= toDate(toDateTime(?)) \
         GROUP BY movie_id ORDER BY value DESC, movie_id LIMIT ?"
    };
    let rows: Vec<TopMovie> = state
        .clickhouse
        .query(sql)
        .bind(from)
        .bind(to - 1)
        .bind(limit as u64)
        .fetch_all()
        .await?;
    Ok(HttpResponse::Ok().json(rows))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct HourlyQuery {
    /// Start, RFC 3339 (inclusive).
    pub from: String,
    /// End, RFC 3339 (exclusive); at most 366 days after `from`.
    pub to: String,
}

#[derive(Debug, clickhouse::Row, Deserialize)]
struct HourlyRow {
    hour: u32,
    event_type: String,
    events: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HourlyCount {
    /// Start of the hour, RFC 3339.
    pub hour: String,
    pub event_type: String,
    pub events: u64,
}

/// Generic events per type per hour over a period.
#[utoipa::path(get, path = "/api/v1/analytics/events/hourly", tag = "analytics",
    params(HourlyQuery),
    responses((status = 200, body = Vec<HourlyCount>), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn events_hourly(
    _caller: Caller,
    query: web::Query<HourlyQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (from, to) = period(&query.from, &query.to)?;
    let rows: Vec<HourlyRow> = state
        .clickhouse
        .query(
            "SELECT toUInt32(toStartOfHour(occurred_at)) AS hour, event_type, count() AS events \
             FROM user_events WHERE occurred_at >= toDateTime(?) AND occurred_at < toDateTime(?) \
             GROUP BY hour, event_type ORDER BY hour, event_type",
        )
        .bind(from)
        .bind(to)
        .fetch_all()
        .await?;
    Ok(HttpResponse::Ok().json(
        rows.into_iter()
            .map(|r| HourlyCount {
                hour: iso_millis(i64::from(r.hour) * 1000),
                event_type: r.event_type,
                events: r.events,
            })
            .collect::<Vec<_>>(),
    ))
}
