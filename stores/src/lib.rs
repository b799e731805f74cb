//! The stores shared by the sinks that write them and the API that reads them: the MongoDB
//! collections (likes/ratings, favourites, follows), the image jobs and blobs, the Redis feeds, and
//! the Redis request guards (per-caller counts, coalescing).

pub mod feeds;
pub mod guard;
pub mod images;
pub mod mongo;
