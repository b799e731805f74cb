//! One test binary for the API: every test starts the real app on port 0 against the local stack
//! (`make services`) and talks HTTP.

mod analytics;
mod auth;
mod batch;
mod cluster;
mod documents;
mod durability;
mod endpoints;
mod feed;
mod helpers;
mod images;
mod playback;
mod predictions;
mod resends;
mod resilience;
mod security;
mod time_bounds;
mod vertical_slice;
mod videos;
mod youtube;
