//! A local fake of the YouTube Data API: `search.list` (paging, failing queries), `videos.list` and
//! `channels.list` (statistics that grow with every answer, so snapshots form real series), and
//! quota counted in the API's units per key (search.list 100, the list calls 1), answered with the
//! API's 403 `quotaExceeded` once spent. Shared by the fetcher tests (consumers/ and api/).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use actix_web::{web, App, HttpResponse, HttpServer};
use serde_json::json;

#[allow(dead_code)] // youtube_requests.rs uses one key
pub const K1: &str = "SECRET-K1-5f2a";
pub const K2: &str = "SECRET-K2-9c1b";

#[derive(Default)]
pub struct Fake {
    /// (key, q, pageToken) of every search.list request.
    pub log: Vec<(String, String, String)>,
    /// (key, method, ids) of every videos.list and channels.list request.
    pub list_log: Vec<(String, String, String)>,
    /// Quota units each key may spend before its quota runs out.
    pub quota: HashMap<String, usize>,
    pub used: HashMap<String, usize>,
    /// q -> (videoId, publishedAt) newest first.
    pub videos: HashMap<String, Vec<(String, String)>>,
    /// q -> the HTTP status the API answers for it (500: down; 400: an invalid query).
    pub failing: HashMap<String, u16>,
    /// videoId -> (channelId, title) where it is not the default `UCfake` / `Video <id>`.
    pub video_meta: HashMap<String, (String, String)>,
    /// videoId -> its statistics; a video without is answered as deleted (left out).
    pub stats: HashMap<String, VideoStats>,
    /// channelId -> the channel; one without is answered as unknown (left out).
    pub channels: HashMap<String, ChannelStats>,
}

#[allow(dead_code)] // not every test uses every field
pub struct VideoStats {
    pub views: i64,
    pub likes: Option<i64>,
    pub comments: Option<i64>,
    pub duration: String,
    /// Added to `views` after every answer that includes the video.
    pub growth: i64,
}

#[allow(dead_code)]
pub struct ChannelStats {
    pub title: String,
    pub custom_url: String,
    pub published_at: String,
    /// `None`: hidden.
    pub subscribers: Option<i64>,
    pub views: i64,
    pub videos: i64,
    /// Added to `subscribers` and (×100) to `views` after every answer that includes it.
    pub growth: i64,
}

fn quota_exceeded() -> HttpResponse {
    HttpResponse::Forbidden().json(json!({"error": {"code": 403, "message": "The request cannot be completed because you have exceeded your quota.",
        "errors": [{"reason": "quotaExceeded", "domain": "youtube.quota"}]}}))
}

fn key_invalid() -> HttpResponse {
    HttpResponse::BadRequest().json(
        json!({"error": {"code": 400, "message": "API key not valid",
        "errors": [{"reason": "keyInvalid", "domain": "usageLimits"}]}}),
    )
}

impl Fake {
    /// Spends `units` of `key`'s quota; the answer the API gives instead when it cannot.
    fn refuse(&mut self, key: &str, units: usize) -> Option<HttpResponse> {
        let Some(&quota) = self.quota.get(key) else {
            return Some(key_invalid());
        };
        let used = self.used.entry(key.to_string()).or_default();
        if *used + units > quota {
            return Some(quota_exceeded());
        }
        *used += units;
        None
    }

    /// (channelId, title, publishedAt) of a video found by some query.
    fn snippet(&self, id: &str) -> Option<(String, String, String)> {
        let at = self
            .videos
            .values()
            .flatten()
            .find(|(v, _)| v == id)
            .map(|(_, at)| at.clone())?;
        let (channel, title) = self
            .video_meta
            .get(id)
            .cloned()
            .unwrap_or_else(|| ("UCfake".to_string(), format!("Video {id}")));
        Some((channel, title, at))
    }
}

pub type Shared = Arc<Mutex<Fake>>;

async fn search(fake: web::Data<Shared>, q: web::Query<HashMap<String, String>>) -> HttpResponse {
    let mut f = fake.lock().unwrap();
    let key = q.get("key").cloned().unwrap_or_default();
    let query = q.get("q").cloned().unwrap_or_default();
    let token = q.get("pageToken").cloned().unwrap_or_default();
    f.log.push((key.clone(), query.clone(), token.clone()));
    if !f.quota.contains_key(&key) {
        return key_invalid();
    }
    match f.failing.get(&query) {
        Some(400) => {
            return HttpResponse::BadRequest().json(json!({"error": {"code": 400,
                "message": "Request contains an invalid argument.",
                "errors": [{"reason": "invalidParameter", "domain": "youtube.parameter"}]}}))
        }
        Some(_) => return HttpResponse::ServiceUnavailable().finish(),
        None => {}
    }
    if let Some(refused) = f.refuse(&key, 100) {
        return refused;
    }
    let after = q.get("publishedAfter").cloned().unwrap_or_default();
    // The real API's publishedBefore includes its own second.
    let before = q.get("publishedBefore").cloned();
    let matching: Vec<&(String, String)> = f
        .videos
        .get(&query)
        .map(|v| {
            v.iter()
                .filter(|(_, at)| *at > after && before.as_ref().is_none_or(|b| at <= b))
                .collect()
        })
        .unwrap_or_default();
    let start: usize = token.parse().unwrap_or(0);
    let page: Vec<_> = matching.iter().skip(start).take(2).collect();
    let items: Vec<_> = page
        .iter()
        .map(|(id, at)| {
            let (channel, title) = f.video_meta.get(id).cloned()
                .unwrap_or_else(|| ("UCfake".to_string(), format!("Video {id}")));
            json!({"kind": "youtube#searchResult", "id": {"kind": "youtube#video", "videoId": id},
            "snippet": {"publishedAt": at, "channelId": channel, "title": title,
                "description": "about travel", "channelTitle": "Fake channel",
                "thumbnails": {"default": {"url": format!("https://i.ytimg.com/vi/{id}/default.jpg"), "width": 120, "height": 90}}}})
        })
        .collect();
    let mut body = json!({"kind": "youtube#searchListResponse", "pageInfo": {"totalResults": matching.len(), "resultsPerPage": 2}, "items": items});
    if start + 2 < matching.len() {
        body["nextPageToken"] = json!((start + 2).to_string());
    }
    HttpResponse::Ok().json(body)
}

/// `videos.list` (`id` = up to 50 comma-separated ids): snippet, statistics, contentDetails.
async fn videos(fake: web::Data<Shared>, q: web::Query<HashMap<String, String>>) -> HttpResponse {
    let mut f = fake.lock().unwrap();
    let key = q.get("key").cloned().unwrap_or_default();
    let ids = q.get("id").cloned().unwrap_or_default();
    f.list_log.push((key.clone(), "videos".into(), ids.clone()));
    if ids.split(',').count() > 50 {
        return HttpResponse::BadRequest()
            .json(json!({"error": {"code": 400, "message": "too many ids",
            "errors": [{"reason": "invalidParameter"}]}}));
    }
    if let Some(refused) = f.refuse(&key, 1) {
        return refused;
    }
    let mut items = Vec::new();
    for id in ids.split(',') {
        let Some((channel, title, at)) = f.snippet(id) else {
            continue;
        };
        let Some(s) = f.stats.get_mut(id) else {
            continue;
        };
        let mut statistics = json!({"viewCount": s.views.to_string(), "favoriteCount": "0"});
        if let Some(l) = s.likes {
            statistics["likeCount"] = json!(l.to_string());
        }
        if let Some(c) = s.comments {
            statistics["commentCount"] = json!(c.to_string());
        }
        items.push(json!({"kind": "youtube#video", "id": id,
            "snippet": {"publishedAt": at, "channelId": channel, "title": title, "description": "about travel"},
            "contentDetails": {"duration": s.duration, "dimension": "2d"},
            "statistics": statistics}));
        s.views += s.growth;
    }
    HttpResponse::Ok().json(json!({"kind": "youtube#videoListResponse", "items": items,
        "pageInfo": {"totalResults": items.len(), "resultsPerPage": items.len()}}))
}

/// `channels.list` (`id` = up to 50 comma-separated ids): snippet, statistics.
async fn channels(fake: web::Data<Shared>, q: web::Query<HashMap<String, String>>) -> HttpResponse {
    let mut f = fake.lock().unwrap();
    let key = q.get("key").cloned().unwrap_or_default();
    let ids = q.get("id").cloned().unwrap_or_default();
    f.list_log
        .push((key.clone(), "channels".into(), ids.clone()));
    if let Some(refused) = f.refuse(&key, 1) {
        return refused;
    }
    let mut items = Vec::new();
    for id in ids.split(',') {
        let Some(c) = f.channels.get_mut(id) else {
            continue;
        };
        let mut statistics = json!({"viewCount": c.views.to_string(), "videoCount": c.videos.to_string(),
            "hiddenSubscriberCount": c.subscribers.is_none()});
        if let Some(n) = c.subscribers {
            statistics["subscriberCount"] = json!(n.to_string());
        }
        items.push(json!({"kind": "youtube#channel", "id": id,
            "snippet": {"title": c.title, "description": format!("{} description", c.title),
                "customUrl": c.custom_url, "publishedAt": c.published_at,
                "thumbnails": {"default": {"url": format!("https://yt3.ggpht.com/{id}.jpg")}}},
            "statistics": statistics}));
        if let Some(n) = c.subscribers.as_mut() {
            *n += c.growth;
        }
        c.views += 100 * c.growth;
    }
    HttpResponse::Ok().json(json!({"kind": "youtube#channelListResponse", "items": items}))
}

/// Serves the fake on a free port; its base URL.
pub fn serve(fake: &Shared) -> String {
    let data = web::Data::new(fake.clone());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/youtube/v3/search", web::get().to(search))
            .route("/youtube/v3/videos", web::get().to(videos))
            .route("/youtube/v3/channels", web::get().to(channels))
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .unwrap();
    let base_url = format!("http://{}/youtube/v3", server.addrs()[0]);
    tokio::spawn(server.run());
    base_url
}

/// The fetcher's settings the tests share, on the fake at `base_url` with `keys`
/// (`name:key,...`); each test changes what it is about.
pub fn fetcher_config(base_url: &str, keys: &str) -> producers::youtube::FetcherConfig {
    use std::time::Duration;
    producers::youtube::FetcherConfig {
        base_url: base_url.to_string(),
        keys: producers::youtube::parse_keys(keys),
        queries: Vec::new(),
        interval: Duration::from_secs(60),
        max_pages: 10,
        overlap: Duration::from_secs(90),
        initial_lookback: Duration::from_secs(86_400),
        retries: 2,
        stats_max_age: Duration::from_secs(30 * 86_400),
        stats_interval: Duration::from_secs(3600),
    }
}

pub fn iso(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms / 1000)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}
