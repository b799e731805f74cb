//! The training data, read from ClickHouse: every video published in the window with its
//! statistics snapshots (`video_statistics`) and its channel's latest subscriber count
//! (`channel_statistics`; a channel that hides it leaves its videos out). The latest count stands
//! for the count at upload, which it exceeds for old videos of growing channels.

use std::collections::HashMap;

use serde::Deserialize;

use crate::{Series, VideoInput};

#[derive(Debug, clickhouse::Row, Deserialize)]
struct VideoSnapshots {
    video_id: String,
    channel: String,
    video_title: String,
    published: u64,
    fetched: Vec<u64>,
    views: Vec<u64>,
}

/// The series of at most `max_videos` videos published from `since_ms` to a day before `now_ms`
/// (a younger one has no day observed yet); which ones, when there are more, is up to ClickHouse
/// (the first it reads).
pub async fn load(
    ch: &clickhouse::Client,
    since_ms: u64,
    now_ms: u64,
    max_videos: u64,
) -> clickhouse::error::Result<Vec<Series>> {
    let subscribers: HashMap<String, Option<u64>> = ch
        .query(
            "SELECT channel_id, argMax(subscriber_count, fetched_at_ms) FROM channel_statistics \
             GROUP BY channel_id",
        )
        .fetch_all::<(String, Option<u64>)>()
        .await?
        .into_iter()
        .collect();
    let videos: Vec<VideoSnapshots> = ch
        .query(
            // Aliases other than the columns' names: 18.16 would read the WHERE's column as the
            // aggregate.
            "SELECT video_id, any(channel_id) AS channel, any(title) AS video_title, \
                    any(published_at_ms) AS published, \
                    groupArray(fetched_at_ms) AS fetched, groupArray(view_count) AS views \
             FROM video_statistics WHERE video_id IN ( \
               SELECT DISTINCT video_id FROM video_statistics \
               WHERE published_at_ms >= ? AND published_at_ms < ? LIMIT ?) \
             GROUP BY video_id",
        )
        .bind(since_ms)
        .bind(now_ms.saturating_sub(crate::DAY_MS as u64))
        .bind(max_videos)
        .fetch_all()
        .await?;
    Ok(videos
        .into_iter()
        .filter_map(|v| {
            let subs = (*subscribers.get(&v.channel)?)?;
            let snapshots: Vec<(i64, u64)> =
                v.fetched.iter().map(|&t| t as i64).zip(v.views).collect();
            Some(Series::from_snapshots(
                v.video_id,
                v.channel,
                VideoInput {
                    title: v.video_title,
                    subscribers: subs,
                    upload_ms: v.published as i64,
                },
                &snapshots,
            ))
        })
        .collect())
}
