//! One test binary for the API: every test starts the real app on port 0 against the local stack
//! (`make services`) and talks HTTP.

mod helpers;
mod playback;
mod vertical_slice;
