//! A local fake of the YouTube Data API's `search.list` (paging, quota errors, failing queries),
//! shared by the fetcher tests.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use actix_web::{web, App, HttpResponse, HttpServer};
use serde_json::json;

#[allow(dead_code)] // youtube_requests.rs uses one key
pub const K1: &str = "SECRET-K1-5f2a";
pub const K2: &str = "SECRET-K2-9c1b";

#[derive(Default)]
pub struct Fake {
    /// (key, q, pageToken) of every request.
    pub log: Vec<(String, String, String)>,
    /// Requests each key may make before its quota runs out.
    pub quota: HashMap<String, usize>,
    pub used: HashMap<String, usize>,
    /// q -> (videoId, publishedAt) newest first.
    pub videos: HashMap<String, Vec<(String, String)>>,
    /// q -> the HTTP status the API answers for it (500: down; 400: an invalid query).
    pub failing: HashMap<String, u16>,
}

pub type Shared = Arc<Mutex<Fake>>;

async fn search(fake: web::Data<Shared>, q: web::Query<HashMap<String, String>>) -> HttpResponse {
    let mut f = fake.lock().unwrap();
    let key = q.get("key").cloned().unwrap_or_default();
    let query = q.get("q").cloned().unwrap_or_default();
    let token = q.get("pageToken").cloned().unwrap_or_default();
    f.log.push((key.clone(), query.clone(), token.clone()));
    let Some(&quota) = f.quota.get(&key) else {
        return HttpResponse::BadRequest().json(
            json!({"error": {"code": 400, "message": "API key not valid",
            "errors": [{"reason": "keyInvalid", "domain": "usageLimits"}]}}),
        );
    };
    match f.failing.get(&query) {
        Some(400) => {
            return HttpResponse::BadRequest().json(json!({"error": {"code": 400,
                "message": "Request contains an invalid argument.",
                "errors": [{"reason": "invalidParameter", "domain": "youtube.parameter"}]}}))
        }
        Some(_) => return HttpResponse::ServiceUnavailable().finish(),
        None => {}
    }
    let used = f.used.entry(key).or_default();
    if *used >= quota {
        return HttpResponse::Forbidden().json(json!({"error": {"code": 403, "message": "The request cannot be completed because you have exceeded your quota.",
            "errors": [{"reason": "quotaExceeded", "domain": "youtube.quota"}]}}));
    }
    *used += 1;
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
        .map(|(id, at)| json!({"kind": "youtube#searchResult", "id": {"kind": "youtube#video", "videoId": id},
            "snippet": {"publishedAt": at, "channelId": "UCfake", "title": format!("Video {id}"),
                "description": "about travel", "channelTitle": "Fake channel",
                "thumbnails": {"default": {"url": format!("https://i.ytimg.com/vi/{id}/default.jpg"), "width": 120, "height": 90}}}}))
        .collect();
    let mut body = json!({"kind": "youtube#searchListResponse", "pageInfo": {"totalResults": matching.len(), "resultsPerPage": 2}, "items": items});
    if start + 2 < matching.len() {
        body["nextPageToken"] = json!((start + 2).to_string());
    }
    HttpResponse::Ok().json(body)
}

/// Serves the fake on a free port; its base URL.
pub fn serve(fake: &Shared) -> String {
    let data = web::Data::new(fake.clone());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/youtube/v3/search", web::get().to(search))
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .unwrap();
    let base_url = format!("http://{}/youtube/v3", server.addrs()[0]);
    tokio::spawn(server.run());
    base_url
}

pub fn iso(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms / 1000)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}
