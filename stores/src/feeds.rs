//! Redis: the hot path of the home feeds, as in Instagram's and Twitter's designs.
//!
//! Keys (all under `FEED_KEY_PREFIX`):
//!
//! | key | type | what |
//! |---|---|---|
//! | `followers:{author}` | sorted set, all scores 0 | the author's followers, walked in follower-id order (`ZRANGEBYLEX`) |
//! | `following:{user}` | set | whom the user follows (to find the celebrities to merge at read time) |
//! | `followv:{author}` | hash follower -> version | the newest follow/unfollow applied per pair (last writer wins) |
//! | `feed:{user}` | sorted set, score = post time (ms) | the home feed, newest `FEED_MAX_ITEMS` posts (trimmed with one post in 8) |
//! | `post:{post}` | hash | author, text, created_at |
//! | `celebrity_posts:{author}` | sorted set | a celebrity's recent posts, merged into readers' feeds |
//! | `celebrities` | set | authors whose posts are merged at read time |
//! | `fanout:{post}` | hash | the planner's progress: followers, pages emitted, next cursor, planned, celebrity |
//! | `fanout_done:{post}` | set | pages the workers have written |
//!
//! A post is a member of a feed set, so writing it twice leaves one entry; pages are recorded in a
//! set, so a page applied twice counts once. Versions are `{occurred_at ms, 15 digits}:{event_id}`,
//! which compare as strings in time order.

use common::config::{env_or, env_parse, ConfigError};
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};

#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

impl FeedError {
    /// Whether the same write would be refused again: a key holding another type (`WRONGTYPE`:
    /// something else wrote there), a reply that is not what the command returns, a value out of
    /// range. Everything else (connection lost, timeout, `OOM`, `LOADING`, `READONLY`, `BUSY`, a
    /// cluster moving slots, "max number of clients") passes.
    pub fn is_permanent(&self) -> bool {
        let FeedError::Redis(r) = self;
        let detail = r.detail().unwrap_or_default();
        r.code() == Some("WRONGTYPE")
            || r.kind() == redis::ErrorKind::TypeError
            || (r.kind() == redis::ErrorKind::ResponseError
                && [
                    "WRONGTYPE",
                    "not an integer",
                    "out of range",
                    "not a valid float",
                ]
                .iter()
                .any(|m| detail.contains(m)))
    }
}

/// `REDIS_URL`, `FEED_KEY_PREFIX`, `FEED_MAX_ITEMS`, `FANOUT_PAGE_SIZE`, `CELEBRITY_FOLLOWERS`,
/// `REDIS_TIMEOUT`.
#[derive(Debug, Clone)]
pub struct FeedConfig {
    pub redis_url: String,
    /// Prepended to every key (tests and benchmarks use their own).
    pub prefix: String,
    /// Home feeds keep this many newest posts.
    pub max_items: usize,
    /// Followers per fan-out page.
    pub page_size: usize,
    /// Authors with at least this many followers are not fanned out; readers merge their posts.
    pub celebrity_followers: u64,
    /// How long one connection attempt or one command may take before it fails (`REDIS_TIMEOUT`):
    /// a Redis that is down or stuck is an error the caller can retry, not a hang.
    pub timeout: std::time::Duration,
}

impl FeedConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            redis_url: common::config::StackConfig::from_env().redis_url,
            prefix: env_or("FEED_KEY_PREFIX", ""),
            max_items: env_parse("FEED_MAX_ITEMS", 800)?,
            page_size: env_parse("FANOUT_PAGE_SIZE", 10_000)?,
            celebrity_followers: env_parse("CELEBRITY_FOLLOWERS", 2_000_000)?,
            timeout: common::config::env_duration(
                "REDIS_TIMEOUT",
                std::time::Duration::from_secs(5),
            )?,
        })
    }
}

/// A follow or unfollow to mirror, with its version.
#[derive(Debug, Clone)]
pub struct FollowChange {
    pub follower: String,
    pub followee: String,
    pub active: bool,
    pub at_ms: i64,
    pub event_id: String,
}

/// A post as stored and served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Post {
    pub post_id: String,
    pub author_id: String,
    pub text: String,
    pub created_at: i64,
}

/// The fan-out of one post, as the planner records it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    pub followers: u64,
    pub pages_emitted: u32,
    pub pages_done: u32,
    /// The walk is over (every page emitted), or the post needed none (celebrity).
    pub planned: bool,
    pub celebrity: bool,
    /// Where the walk continues (exclusive), when it is not over.
    pub next_cursor: Option<String>,
}

/// A position in a feed: the post time and id of the last item seen (exclusive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub at_ms: i64,
    pub post_id: String,
}

impl Cursor {
    pub fn parse(raw: &str) -> Option<Self> {
        let (at, id) = raw.split_once(':')?;
        Some(Self {
            at_ms: at.parse().ok()?,
            post_id: id.to_string(),
        })
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.at_ms, self.post_id)
    }
}

const FOLLOW: &str = r#"
-- KEYS: followv:{author}, followers:{author}, following:{follower}
-- ARGV: follower, author, version, active (1/0)
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur and cur >= ARGV[3] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
if ARGV[4] == '1' then
  redis.call('ZADD', KEYS[2], 0, ARGV[1])
  redis.call('SADD', KEYS[3], ARGV[2])
else
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('SREM', KEYS[3], ARGV[2])
end
return 1
"#;

/// KEYS: post:{id}; ARGV: author, text, created_at. Returns the other author owning the id, or ''.
const SAVE_POST: &str = r#"
local owner = redis.call('HGET', KEYS[1], 'author_id')
if owner and owner ~= ARGV[1] then return owner end
if redis.call('HEXISTS', KEYS[1], 'text') == 0 then
  redis.call('HSET', KEYS[1], 'author_id', ARGV[1], 'text', ARGV[2], 'created_at', ARGV[3])
end
return ''
"#;

/// Feeds are trimmed to `FEED_MAX_ITEMS` with one post in this many (chosen by the post id), not
/// with every post: the check per follower was half of Redis's time in a fan-out. Between trims
/// a feed gains seven posts on average over `FEED_MAX_ITEMS` (a few dozen in a rare run of posts
/// that do not trim); reads are paged.
const TRIM_EVERY: u32 = 8;

/// Whether delivering `post_id` trims the feeds it goes to.
pub fn trims(post_id: &str) -> bool {
    let hash = post_id.bytes().fold(2_166_136_261u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(16_777_619)
    });
    hash.is_multiple_of(TRIM_EVERY)
}

/// The feed store: one multiplexed connection (cheap to clone) and the loaded scripts.
#[derive(Clone)]
pub struct Feeds {
    conn: ConnectionManager,
    config: FeedConfig,
    follow: String,
}

impl Feeds {
    pub async fn connect(config: FeedConfig) -> Result<Self, FeedError> {
        let conn = crate::redis_connection(&config.redis_url, config.timeout).await?;
        let feeds = Self {
            conn,
            follow: Script::new(FOLLOW).get_hash().to_string(),
            config,
        };
        feeds.load_scripts().await?;
        Ok(feeds)
    }

    /// The same store over a connection of its own. Clones share one multiplexed connection, on
    /// which a command waits for every one sent before it: a fan-out worker's pipeline of 10,000
    /// writes held the planner's page reads and progress records 15-40 ms each, half of the walk
    /// of 1,000,000 followers. A role that writes in bulk and one that walks in small steps each
    /// take their own.
    pub async fn with_own_connection(&self) -> Result<Self, FeedError> {
        Self::connect(self.config.clone()).await
    }

    pub fn config(&self) -> &FeedConfig {
        &self.config
    }

    /// (Re)loads the follow script: after a Redis restart it is gone (NOSCRIPT).
    pub async fn load_scripts(&self) -> Result<(), FeedError> {
        let mut conn = self.conn.clone();
        let _: String = redis::cmd("SCRIPT")
            .arg("LOAD")
            .arg(FOLLOW)
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    fn key(&self, kind: &str, id: &str) -> String {
        format!("{}{kind}:{id}", self.config.prefix)
    }

    /// Runs a pipeline of script calls, reloading the scripts once if Redis lost them.
    async fn run_scripts(&self, pipe: &redis::Pipeline) -> Result<(), FeedError> {
        let mut conn = self.conn.clone();
        match pipe.query_async::<()>(&mut conn).await {
            Err(e) if e.kind() == redis::ErrorKind::NoScriptError => {
                self.load_scripts().await?;
                Ok(pipe.query_async::<()>(&mut conn).await?)
            }
            other => Ok(other?),
        }
    }

    /// Mirrors follows and unfollows, newest per pair winning (one round trip).
    pub async fn apply_follows(&self, changes: &[FollowChange]) -> Result<(), FeedError> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for c in changes {
            pipe.cmd("EVALSHA")
                .arg(&self.follow)
                .arg(3)
                .arg(self.key("followv", &c.followee))
                .arg(self.key("followers", &c.followee))
                .arg(self.key("following", &c.follower))
                .arg(&c.follower)
                .arg(&c.followee)
                .arg(format!("{:015}:{}", c.at_ms, c.event_id))
                .arg(if c.active { "1" } else { "0" })
                .ignore();
        }
        self.run_scripts(&pipe).await
    }

    pub async fn follower_count(&self, author: &str) -> Result<u64, FeedError> {
        let mut conn = self.conn.clone();
        Ok(conn.zcard(self.key("followers", author)).await?)
    }

    /// Up to `n` followers of `author` after `after` (exclusive), in follower-id order.
    pub async fn followers_page(
        &self,
        author: &str,
        after: Option<&str>,
        n: usize,
    ) -> Result<Vec<String>, FeedError> {
        let mut conn = self.conn.clone();
        let min = after.map_or_else(|| "-".to_string(), |a| format!("({a}"));
        Ok(redis::cmd("ZRANGEBYLEX")
            .arg(self.key("followers", author))
            .arg(min)
            .arg("+")
            .arg("LIMIT")
            .arg(0)
            .arg(n)
            .query_async(&mut conn)
            .await?)
    }

    /// Stores a post unless its id is someone else's: first writer wins (its author, text and time
    /// are never overwritten; the same author sending it again changes nothing). `Some(author)`:
    /// the id belongs to that other author, nothing was written.
    pub async fn save_post(&self, post: &Post) -> Result<Option<String>, FeedError> {
        let mut conn = self.conn.clone();
        let owner: String = redis::Script::new(SAVE_POST)
            .key(self.key("post", &post.post_id))
            .arg(&post.author_id)
            .arg(&post.text)
            .arg(post.created_at)
            .invoke_async(&mut conn)
            .await?;
        Ok((!owner.is_empty()).then_some(owner))
    }

    /// Claims `post_id` for `author` before its event is produced (the API's check, atomic: of
    /// two authors asking at once, one gets it). `Some(owner)`: it is another author's.
    pub async fn claim_post(
        &self,
        post_id: &str,
        author: &str,
    ) -> Result<Option<String>, FeedError> {
        let mut conn = self.conn.clone();
        let key = self.key("post", post_id);
        let (_, owner): (bool, String) = redis::pipe()
            .hset_nx(&key, "author_id", author)
            .hget(&key, "author_id")
            .query_async(&mut conn)
            .await?;
        Ok((owner != author).then_some(owner))
    }

    /// Records a celebrity's post for read-time merging (no fan-out).
    pub async fn add_celebrity_post(&self, post: &Post, followers: u64) -> Result<(), FeedError> {
        let mut conn = self.conn.clone();
        let key = self.key("celebrity_posts", &post.author_id);
        let max = self.config.max_items as isize;
        let _: () = redis::pipe()
            .zadd(&key, &post.post_id, post.created_at)
            .zremrangebyrank(&key, 0, -(max + 1))
            .sadd(
                format!("{}celebrities", self.config.prefix),
                &post.author_id,
            )
            .hset_multiple(
                self.key("fanout", &post.post_id),
                &[
                    ("followers", followers.to_string()),
                    ("celebrity", "1".to_string()),
                    ("planned", "1".to_string()),
                ],
            )
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    pub async fn progress(&self, post_id: &str) -> Result<Option<Progress>, FeedError> {
        let mut conn = self.conn.clone();
        let (fields, done): (std::collections::HashMap<String, String>, u32) = redis::pipe()
            .hgetall(self.key("fanout", post_id))
            .scard(self.key("fanout_done", post_id))
            .query_async(&mut conn)
            .await?;
        if fields.is_empty() {
            return Ok(None);
        }
        let num = |k: &str| {
            fields
                .get(k)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        Ok(Some(Progress {
            followers: num("followers"),
            pages_emitted: num("pages_emitted") as u32,
            pages_done: done,
            planned: num("planned") == 1,
            celebrity: num("celebrity") == 1,
            next_cursor: fields.get("next_cursor").cloned(),
        }))
    }

    /// Records the walk's position after a page was emitted (or its start / end).
    pub async fn record_progress(
        &self,
        post_id: &str,
        followers: u64,
        pages_emitted: u32,
        next_cursor: Option<&str>,
        planned: bool,
    ) -> Result<(), FeedError> {
        let mut conn = self.conn.clone();
        let mut fields = vec![
            ("followers", followers.to_string()),
            ("pages_emitted", pages_emitted.to_string()),
            ("planned", if planned { "1" } else { "0" }.to_string()),
        ];
        if let Some(c) = next_cursor {
            fields.push(("next_cursor", c.to_string()));
        }
        let _: () = conn
            .hset_multiple(self.key("fanout", post_id), &fields)
            .await?;
        Ok(())
    }

    /// Writes pages of a fan-out: the post into each follower's feed (trimmed to the newest
    /// `FEED_MAX_ITEMS` with one post in [`TRIM_EVERY`]), then each page as done. One round trip
    /// of plain commands (a script per page cost Redis twice the time): a page is marked done
    /// after its writes, and writing it again after a crash in between changes nothing.
    pub async fn deliver(&self, pages: &[(&str, i64, i32, &[String])]) -> Result<(), FeedError> {
        if pages.is_empty() {
            return Ok(());
        }
        let max = self.config.max_items as isize;
        let mut pipe = redis::pipe();
        for (post_id, at_ms, page, followers) in pages {
            let trim = trims(post_id);
            for follower in *followers {
                let feed = self.key("feed", follower);
                pipe.zadd(&feed, *post_id, *at_ms).ignore();
                if trim {
                    pipe.zremrangebyrank(&feed, 0, -(max + 1)).ignore();
                }
            }
            pipe.sadd(self.key("fanout_done", post_id), *page).ignore();
        }
        let mut conn = self.conn.clone();
        Ok(pipe.query_async::<()>(&mut conn).await?)
    }

    /// A user's home feed, newest first: their fanned-out feed merged with the recent posts of the
    /// celebrities they follow; `before` pages on (exclusive).
    pub async fn read(
        &self,
        user: &str,
        before: Option<&Cursor>,
        limit: usize,
    ) -> Result<Vec<Post>, FeedError> {
        let mut conn = self.conn.clone();
        let celebrities: Vec<String> = conn
            .sinter(&[
                self.key("following", user),
                format!("{}celebrities", self.config.prefix),
            ])
            .await?;
        let mut sources = vec![self.key("feed", user)];
        sources.extend(celebrities.iter().map(|c| self.key("celebrity_posts", c)));
        // From each source: the posts strictly older than the cursor's time, plus those at exactly
        // its time with a smaller id (ties are ordered by id, as in the sorted sets).
        let mut pipe = redis::pipe();
        for key in &sources {
            let max = before.map_or_else(|| "+inf".to_string(), |c| format!("({}", c.at_ms));
            pipe.cmd("ZREVRANGEBYSCORE")
                .arg(key)
                .arg(max)
                .arg("-inf")
                .arg("WITHSCORES")
                .arg("LIMIT")
                .arg(0)
                .arg(limit);
            if let Some(c) = before {
                pipe.cmd("ZRANGEBYSCORE")
                    .arg(key)
                    .arg(c.at_ms)
                    .arg(c.at_ms)
                    .arg("WITHSCORES");
            }
        }
        let answers: Vec<Vec<(String, i64)>> = pipe.query_async(&mut conn).await?;
        let mut entries: Vec<(i64, String)> = answers
            .into_iter()
            .flatten()
            .filter(|(id, at)| {
                before.is_none_or(|c| (*at, id.as_str()) < (c.at_ms, c.post_id.as_str()))
            })
            .map(|(id, at)| (at, id))
            .collect();
        entries.sort_unstable_by(|a, b| b.cmp(a));
        entries.dedup();
        entries.truncate(limit);
        let mut pipe = redis::pipe();
        for (_, id) in &entries {
            pipe.hgetall(self.key("post", id));
        }
        let posts: Vec<std::collections::HashMap<String, String>> =
            pipe.query_async(&mut conn).await?;
        Ok(entries
            .into_iter()
            .zip(posts)
            .map(|((at, id), fields)| Post {
                post_id: id,
                author_id: fields.get("author_id").cloned().unwrap_or_default(),
                text: fields.get("text").cloned().unwrap_or_default(),
                created_at: at,
            })
            .collect())
    }

    /// Deletes every key under the prefix (tests and benchmarks clean up after themselves); does
    /// nothing without a prefix.
    pub async fn delete_all(&self) -> Result<u64, FeedError> {
        if self.config.prefix.is_empty() {
            return Ok(0);
        }
        let mut conn = self.conn.clone();
        let pattern = format!("{}*", self.config.prefix);
        let mut cursor: u64 = 0;
        let mut deleted = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(10_000)
                .query_async(&mut conn)
                .await?;
            if !keys.is_empty() {
                deleted += conn.del::<_, u64>(&keys).await?;
            }
            if next == 0 {
                return Ok(deleted);
            }
            cursor = next;
        }
    }
}
