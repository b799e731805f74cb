//! The stores shared by the sinks that write them and the API that reads them: the MongoDB
//! collections (likes/ratings, favourites, follows), the image jobs and blobs, and the Redis feeds.

pub mod feeds;
pub mod images;
pub mod mongo;
