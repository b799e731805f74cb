//! The ClickHouse-specific part of error handling: what a failed insert means.

use crate::SinkError;

/// Rows are typed and well-formed by construction, so a failed insert is the server's or the
/// network's condition (down, overloaded, table missing while an operator fixes it): retry, never
/// drop. A batch that did land before the error is harmless to insert again (ReplacingMergeTree).
pub(super) fn classify(e: clickhouse::error::Error) -> SinkError {
    SinkError::Retriable(e.to_string())
}
