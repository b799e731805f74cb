//! The ClickHouse-specific part of error handling: is a failed insert worth retrying?
//!
//! Rows are typed by construction, so most failures are the server's or the network's condition
//! (down, overloaded, too many parts, a table missing while an operator migrates): transient, the
//! offset stays. The data itself can still be refused — a constraint (`CHECK`, or a `throwIf`
//! default on 18.16), a value out of a type's range, too many partitions in one block — and then the
//! same rows fail again: permanent, and the runtime isolates and dead-letters the rows at fault.

use crate::SinkError;

/// Server error codes that mean "this data is refused", whatever the server's state.
const PERMANENT: &[u32] = &[
    6,   // CANNOT_PARSE_TEXT
    26,  // CANNOT_PARSE_QUOTED_STRING
    27,  // CANNOT_PARSE_INPUT_ASSERTION_FAILED
    38,  // CANNOT_PARSE_DATE
    41,  // CANNOT_PARSE_DATETIME
    53,  // TYPE_MISMATCH
    69,  // ARGUMENT_OUT_OF_BOUND
    70,  // CANNOT_CONVERT_TYPE
    72,  // CANNOT_PARSE_NUMBER
    117, // INCORRECT_DATA
    128, // TOO_LARGE_ARRAY_SIZE
    131, // TOO_LARGE_STRING_SIZE
    190, // SIZES_OF_ARRAYS_DONT_MATCH
    321, // VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
    395, // FUNCTION_THROW_IF_VALUE_IS_NON_ZERO (a throwIf guard)
    469, // VIOLATED_CONSTRAINT (CHECK)
];

/// Code 252 is both "too many parts" (merges are behind: wait) and "too many partitions for a
/// single INSERT block" (this block can never be inserted as it is).
const TOO_MANY_PARTS: u32 = 252;

pub(super) fn classify(e: clickhouse::error::Error) -> SinkError {
    use clickhouse::error::Error as E;
    match e {
        E::BadResponse(text) => classify_server(&text),
        // Our own rows failed to serialise: the same row would fail again.
        E::Custom(_) | E::SequenceMustHaveLength | E::VariantDiscriminatorIsOutOfBound(_) => {
            SinkError::Permanent(e.to_string())
        }
        other => SinkError::Transient(other.to_string()),
    }
}

/// Classifies a server exception by its `Code: N`.
pub(super) fn classify_server(text: &str) -> SinkError {
    let code = server_code(text);
    let permanent = match code {
        Some(TOO_MANY_PARTS) => text.contains("partitions"),
        Some(c) => PERMANENT.contains(&c),
        None => false,
    };
    let text = text.chars().take(2000).collect::<String>();
    if permanent {
        SinkError::Permanent(text)
    } else {
        SinkError::Transient(text)
    }
}

/// `Code: 252. DB::Exception: ...` (current) or `Code: 252, e.displayText() = ...` (18.16).
fn server_code(text: &str) -> Option<u32> {
    let rest = &text[text.find("Code: ")? + 6..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn permanent(text: &str) -> bool {
        matches!(classify_server(text), SinkError::Permanent(_))
    }

    #[test]
    fn server_errors_are_classified_by_code_and_text() {
        // As ClickHouse 26.9 and 18.16 word them.
        assert!(permanent("Code: 252. DB::Exception: Too many partitions for single INSERT block (more than 100). The limit is controlled by 'max_partitions_per_insert_block' setting. (TOO_MANY_PARTS) (version 26.9.2.1)"));
        assert!(!permanent("Code: 252. DB::Exception: Too many parts (300). Merges are processing significantly slower than inserts. (TOO_MANY_PARTS)"));
        assert!(permanent("Code: 395, e.displayText() = DB::Exception: Value passed to 'throwIf' function is non zero, e.what() = DB::Exception"));
        assert!(permanent("Code: 469. DB::Exception: Constraint `positive` for table ugc.t is violated at row 1. (VIOLATED_CONSTRAINT)"));
        assert!(!permanent(
            "Code: 60. DB::Exception: Table ugc.playback_events doesn't exist. (UNKNOWN_TABLE)"
        ));
        assert!(!permanent(
            "Code: 241. DB::Exception: Memory limit (total) exceeded"
        ));
        assert!(!permanent(
            "Code: 202. DB::Exception: Too many simultaneous queries."
        ));
        assert!(!permanent("502 Bad Gateway"));
    }
}
