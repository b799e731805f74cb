//! Domain newtypes. Every edge (an HTTP body, a decoded Avro record) parses raw values into these
//! once; code behind the edge never sees a raw string id. Their serde form is the wire form (a UUID
//! as its hyphenated string, a timestamp as epoch milliseconds), and deserialising validates, so a
//! record with a bad id fails to decode instead of reaching a sink.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use uuid::Uuid;

/// Why a raw value is not a valid domain value. `field` names the offending input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct DomainError {
    pub field: &'static str,
    pub reason: String,
}

impl DomainError {
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Uuid);

        impl $name {
            /// Parses a UUID in any of its usual text forms.
            pub fn parse(raw: &str) -> Result<Self, DomainError> {
                Uuid::parse_str(raw.trim())
                    .map(Self)
                    .map_err(|_| DomainError::new($field, format!("{raw:?} is not a UUID")))
            }

            pub fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(&self.0.hyphenated())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                Self::parse(&raw).map_err(serde::de::Error::custom)
            }
        }
    };
}

uuid_id!(
    /// The id of one event; sinks deduplicate on it.
    EventId,
    "event_id"
);
impl EventId {
    pub fn new_random() -> Self {
        Self(Uuid::new_v4())
    }
}
uuid_id!(UserId, "user_id");
uuid_id!(MovieId, "movie_id");
uuid_id!(PostId, "post_id");
uuid_id!(
    /// The id of an asynchronous job (an image resize), as answered to the client.
    TaskId,
    "task_id"
);

/// An anonymous visitor's id (a cookie or device id): 1 to 128 characters of `[A-Za-z0-9._:-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AnonymousId(String);

impl AnonymousId {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let ok = !raw.is_empty()
            && raw.len() <= 128
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
        if ok {
            Ok(Self(raw.to_string()))
        } else {
            Err(DomainError::new(
                "anonymous_id",
                "must be 1 to 128 characters of letters, digits and . _ : -",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AnonymousId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for AnonymousId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for AnonymousId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// A playback position in milliseconds: 0 up to a week of video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PositionMs(u64);

impl PositionMs {
    pub const MAX: u64 = 7 * 24 * 3600 * 1000;

    pub fn parse(raw: i64) -> Result<Self, DomainError> {
        if raw < 0 {
            return Err(DomainError::new("position_ms", "must be >= 0"));
        }
        if raw as u64 > Self::MAX {
            return Err(DomainError::new(
                "position_ms",
                format!("must be <= {} (a week)", Self::MAX),
            ));
        }
        Ok(Self(raw as u64))
    }

    pub fn get(&self) -> u64 {
        self.0
    }
}

impl Serialize for PositionMs {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(self.0 as i64)
    }
}

impl<'de> Deserialize<'de> for PositionMs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::parse(i64::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// A rating score, 0..=10.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Score(u8);

impl Score {
    pub fn parse(raw: i64) -> Result<Self, DomainError> {
        match u8::try_from(raw) {
            Ok(v) if v <= 10 => Ok(Self(v)),
            _ => Err(DomainError::new(
                "score",
                format!("{raw} is not between 0 and 10"),
            )),
        }
    }

    pub fn get(&self) -> u8 {
        self.0
    }
}

impl Serialize for Score {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i32(i32::from(self.0))
    }
}

impl<'de> Deserialize<'de> for Score {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::parse(i64::from(i32::deserialize(d)?)).map_err(serde::de::Error::custom)
    }
}

/// A point in time, UTC, with millisecond precision; on the wire, epoch milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The last second a ClickHouse `DateTime` (UInt32 seconds) holds: 2106-02-07.
    const MAX_MS: i64 = u32::MAX as i64 * 1000 + 999;

    pub fn now() -> Self {
        Self((OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64)
    }

    /// Epoch milliseconds from 1970 to 2106. Whether a time is acceptable for an event is
    /// [`TimeBounds`]' question.
    pub fn from_millis(field: &'static str, ms: i64) -> Result<Self, DomainError> {
        if ms < 0 {
            return Err(DomainError::new(field, "must not be before 1970"));
        }
        if ms > Self::MAX_MS {
            return Err(DomainError::new(field, "must not be after 2106-02-07"));
        }
        Ok(Self(ms))
    }

    /// An RFC 3339 date-time such as `2026-11-23T07:18:57.123Z`.
    pub fn parse_rfc3339(field: &'static str, raw: &str) -> Result<Self, DomainError> {
        let t = OffsetDateTime::parse(raw, &Rfc3339).map_err(|_| {
            DomainError::new(field, format!("{raw:?} is not an RFC 3339 date-time"))
        })?;
        Self::from_millis(field, (t.unix_timestamp_nanos() / 1_000_000) as i64)
    }

    pub fn millis(&self) -> i64 {
        self.0
    }

    /// Whole seconds since the epoch (for ClickHouse `DateTime`).
    pub fn seconds(&self) -> u32 {
        (self.0 / 1000) as u32
    }

    /// RFC 3339, to the second, in UTC (`2026-11-23T07:18:57Z`).
    pub fn to_rfc3339(&self) -> String {
        OffsetDateTime::from_unix_timestamp(self.0.div_euclid(1000))
            .ok()
            .and_then(|t| t.format(&Rfc3339).ok())
            .unwrap_or_default()
    }
}

/// How far from the receiver's clock an event's time may be: older than `max_age` or further
/// ahead than `max_skew` is refused (`EVENT_MAX_AGE`, default 30 days; `EVENT_MAX_CLOCK_SKEW`,
/// default 5 minutes). The API checks against its clock when a client sends the event; a sink checks
/// against the time the record was produced to Kafka, so a backlog read late is not refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeBounds {
    pub max_age_ms: i64,
    pub max_skew_ms: i64,
}

impl Default for TimeBounds {
    fn default() -> Self {
        Self {
            max_age_ms: 30 * 86_400_000,
            max_skew_ms: 5 * 60_000,
        }
    }
}

/// From (`EVENT_MAX_AGE`, `EVENT_MAX_CLOCK_SKEW`), as `common::config::event_time_bounds` reads them.
impl From<(std::time::Duration, std::time::Duration)> for TimeBounds {
    fn from((max_age, max_skew): (std::time::Duration, std::time::Duration)) -> Self {
        Self::new(max_age, max_skew)
    }
}

impl TimeBounds {
    pub fn new(max_age: std::time::Duration, max_skew: std::time::Duration) -> Self {
        Self {
            max_age_ms: i64::try_from(max_age.as_millis()).unwrap_or(i64::MAX),
            max_skew_ms: i64::try_from(max_skew.as_millis()).unwrap_or(i64::MAX),
        }
    }

    /// `Ok` when `t` is within the bounds around `reference`, else an error naming `field`.
    pub fn check(
        &self,
        field: &'static str,
        t: Timestamp,
        reference: Timestamp,
    ) -> Result<(), DomainError> {
        let (t, now) = (t.millis(), reference.millis());
        if t < now.saturating_sub(self.max_age_ms) {
            return Err(DomainError::new(
                field,
                format!(
                    "is more than {} old (EVENT_MAX_AGE)",
                    humanize(self.max_age_ms)
                ),
            ));
        }
        if t > now.saturating_add(self.max_skew_ms) {
            return Err(DomainError::new(
                field,
                format!(
                    "is more than {} ahead of the server's clock (EVENT_MAX_CLOCK_SKEW)",
                    humanize(self.max_skew_ms)
                ),
            ));
        }
        Ok(())
    }
}

fn humanize(ms: i64) -> String {
    match ms {
        ms if ms % 86_400_000 == 0 => format!("{} days", ms / 86_400_000),
        ms if ms % 3_600_000 == 0 => format!("{} hours", ms / 3_600_000),
        ms if ms % 60_000 == 0 => format!("{} minutes", ms / 60_000),
        ms if ms % 1000 == 0 => format!("{} seconds", ms / 1000),
        ms => format!("{ms} ms"),
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(self.0)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let ms = i64::deserialize(d)?;
        // Only what any timestamp must be; the runtime applies the time bounds to a record's time
        // against when it was produced.
        Self::from_millis("timestamp", ms).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_ids_parse_and_print_hyphenated() {
        let id = UserId::parse("3F2504E0-4F89-11D3-9A0C-0305E82C3301").unwrap();
        assert_eq!(id.to_string(), "3f2504e0-4f89-11d3-9a0c-0305e82c3301");
        let err = MovieId::parse("not-a-uuid").unwrap_err();
        assert_eq!(err.field, "movie_id");
    }

    #[test]
    fn score_is_zero_to_ten() {
        assert_eq!(Score::parse(0).unwrap().get(), 0);
        assert_eq!(Score::parse(10).unwrap().get(), 10);
        assert!(Score::parse(11).is_err());
        assert!(Score::parse(-1).is_err());
    }

    #[test]
    fn position_bounds() {
        assert!(PositionMs::parse(-1).is_err());
        assert!(PositionMs::parse(0).is_ok());
        assert!(PositionMs::parse(PositionMs::MAX as i64 + 1).is_err());
    }

    #[test]
    fn timestamps_parse_rfc3339_and_stay_within_a_datetime() {
        let t = Timestamp::parse_rfc3339("occurred_at", "2026-11-23T07:18:57.123Z").unwrap();
        assert_eq!(t.millis(), 1_795_418_337_123);
        assert_eq!(t.seconds(), 1_795_418_337);
        assert!(Timestamp::parse_rfc3339("occurred_at", "yesterday").is_err());
        assert!(Timestamp::from_millis("t", -1).is_err());
        assert!(Timestamp::from_millis("t", u32::MAX as i64 * 1000 + 999).is_ok());
        assert!(Timestamp::from_millis("t", u32::MAX as i64 * 1000 + 1000).is_err());
    }

    #[test]
    fn time_bounds_refuse_old_and_future_times_with_the_setting_named() {
        let b = TimeBounds::default();
        let now = Timestamp::from_millis("t", 1_795_418_337_123).unwrap();
        let at = |delta: i64| Timestamp::from_millis("t", now.millis() + delta).unwrap();
        assert!(b.check("occurred_at", at(0), now).is_ok());
        assert!(b.check("occurred_at", at(-30 * 86_400_000), now).is_ok());
        let old = b
            .check("occurred_at", at(-30 * 86_400_000 - 1), now)
            .unwrap_err();
        assert_eq!(old.field, "occurred_at");
        assert!(old.reason.contains("30 days") && old.reason.contains("EVENT_MAX_AGE"));
        assert!(b.check("occurred_at", at(5 * 60_000), now).is_ok());
        let ahead = b.check("occurred_at", at(5 * 60_000 + 1), now).unwrap_err();
        assert!(
            ahead.reason.contains("5 minutes") && ahead.reason.contains("EVENT_MAX_CLOCK_SKEW")
        );
    }

    #[test]
    fn serde_rejects_bad_uuid() {
        let r: Result<UserId, _> = serde_json::from_str("\"nope\"");
        assert!(r.is_err());
    }
}
