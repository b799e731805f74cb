//! The stores shared by the sinks that write them and the API that reads them: for now the MongoDB
//! collections (likes/ratings, favourites, follows), their document shapes and indexes.

pub mod mongo;
