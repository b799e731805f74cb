//! The stores shared by the sinks that write them and the API that reads them: the MongoDB
//! collections (likes/ratings, favourites, follows), the image jobs and blobs, the Redis feeds, and
//! the Redis request guards (per-caller counts, coalescing).

pub mod feeds;
pub mod guard;
pub mod images;
pub mod mongo;
pub mod replies;

/// A managed Redis connection whose connection attempts and commands fail after `timeout`
/// (instead of hanging while Redis is down), for every Redis store here.
pub async fn redis_connection(
    url: &str,
    timeout: std::time::Duration,
) -> Result<redis::aio::ConnectionManager, redis::RedisError> {
    let client = redis::Client::open(url)?;
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(timeout)
        .set_response_timeout(timeout)
        .set_number_of_retries(2);
    redis::aio::ConnectionManager::new_with_config(client, config).await
}
