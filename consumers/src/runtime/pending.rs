//! The batch being filled: decoded records, the records they came as (key, bytes and headers, for a
//! dead letter should the sink refuse one, whatever the source topic's retention does later), the
//! dead letters found while decoding, and the offsets to commit.
//!
//! The records' bytes are copied, as they are received, into one buffer per batch ([`Sources`])
//! instead of a message object each: a record then costs no allocation of its own, and a batch's
//! buffers, once it is committed, are cleared and filled again by a later batch (the runner keeps
//! the spare), so a steady stream allocates nothing and faults no fresh memory in.

use std::collections::VecDeque;
use std::ops::Range;
use std::time::Instant;

use rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::Timestamp;

use super::Record;

/// A record that goes to the dead-letter topic, and why.
#[derive(Debug, Clone)]
pub(crate) struct DeadLetter {
    pub source: OwnedMessage,
    pub error: String,
}

/// Where one record is in [`Sources`]' buffer, and where it came from.
#[derive(Debug, Clone)]
pub(crate) struct Span {
    pub partition: i32,
    pub offset: i64,
    pub timestamp: Timestamp,
    key: Option<Range<usize>>,
    payload: Option<Range<usize>>,
    /// Each header as name length (u32 LE), name, value length (u32 LE; `u32::MAX` for none),
    /// value.
    headers: Option<Range<usize>>,
}

/// The records of one batch as they came, in one buffer: those accounted for in the batch
/// (`spans[i]` is where `events[i]` came from) and those received but not decoded yet (`waiting`,
/// oldest first).
#[derive(Default)]
pub(crate) struct Sources {
    topic: String,
    buf: Vec<u8>,
    spans: Vec<Span>,
    waiting: VecDeque<Span>,
}

impl Sources {
    /// Copies a received record in, to wait for [`Sources::accept_next`] or
    /// [`Sources::refuse_next`].
    pub fn receive<M: Message>(&mut self, msg: &M) {
        if self.topic != msg.topic() {
            self.topic = msg.topic().to_string();
        }
        let key = msg.key().map(|k| self.put(k));
        let payload = msg.payload().map(|p| self.put(p));
        let headers = msg.headers().map(|hs| {
            let start = self.buf.len();
            for h in hs.iter() {
                self.buf
                    .extend_from_slice(&(h.key.len() as u32).to_le_bytes());
                self.buf.extend_from_slice(h.key.as_bytes());
                match h.value {
                    Some(v) => {
                        self.buf.extend_from_slice(&(v.len() as u32).to_le_bytes());
                        self.buf.extend_from_slice(v);
                    }
                    None => self.buf.extend_from_slice(&u32::MAX.to_le_bytes()),
                }
            }
            start..self.buf.len()
        });
        self.waiting.push_back(Span {
            partition: msg.partition(),
            offset: msg.offset(),
            timestamp: msg.timestamp(),
            key,
            payload,
            headers,
        });
    }

    fn put(&mut self, bytes: &[u8]) -> Range<usize> {
        let start = self.buf.len();
        self.buf.extend_from_slice(bytes);
        start..self.buf.len()
    }

    /// The oldest record received and not decoded yet.
    pub fn next(&self) -> Option<&Span> {
        self.waiting.front()
    }

    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Moves the next waiting record into the batch (as the source of the event just pushed).
    pub fn accept_next(&mut self) {
        if let Some(span) = self.waiting.pop_front() {
            self.spans.push(span);
        }
    }

    /// Takes the next waiting record out, as a message of its own (for its dead letter).
    pub fn refuse_next(&mut self) -> Option<OwnedMessage> {
        let span = self.waiting.pop_front()?;
        Some(self.owned_span(&span))
    }

    /// The `i`-th record of the batch as a message of its own (for its dead letter).
    pub fn owned(&self, i: usize) -> OwnedMessage {
        self.owned_span(&self.spans[i])
    }

    pub fn payload(&self, span: &Span) -> &[u8] {
        span.payload.clone().map_or(&[], |r| &self.buf[r])
    }

    /// The value of header `name` of `span`'s record, as text.
    pub fn header(&self, span: &Span, name: &str) -> Option<String> {
        self.headers(span)
            .find(|(k, _)| *k == name.as_bytes())
            .and_then(|(_, v)| v)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    fn headers<'a>(
        &'a self,
        span: &Span,
    ) -> impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)> + 'a {
        let mut rest = span.headers.clone().map_or(&[][..], |r| &self.buf[r]);
        fn take<'b>(rest: &mut &'b [u8], n: usize) -> &'b [u8] {
            let (head, tail) = rest.split_at(n);
            *rest = tail;
            head
        }
        fn len(rest: &mut &[u8]) -> u32 {
            u32::from_le_bytes(take(rest, 4).try_into().expect("4 bytes"))
        }
        std::iter::from_fn(move || {
            if rest.is_empty() {
                return None;
            }
            let name_len = len(&mut rest) as usize;
            let name = take(&mut rest, name_len);
            let value = match len(&mut rest) {
                u32::MAX => None,
                n => Some(take(&mut rest, n as usize)),
            };
            Some((name, value))
        })
    }

    fn owned_span(&self, span: &Span) -> OwnedMessage {
        let headers = span.headers.as_ref().map(|_| {
            self.headers(span)
                .fold(OwnedHeaders::new(), |hs, (name, value)| {
                    hs.insert(Header {
                        key: &String::from_utf8_lossy(name),
                        value,
                    })
                })
        });
        OwnedMessage::new(
            span.payload.clone().map(|r| self.buf[r].to_vec()),
            span.key.clone().map(|r| self.buf[r].to_vec()),
            self.topic.clone(),
            span.timestamp,
            span.partition,
            span.offset,
            headers,
        )
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.spans.len()
    }

    /// Keeps the batch's records for which `keep` says so (in order), and drops the waiting ones
    /// of partitions in `revoked`.
    fn retain(&mut self, keep: &[bool], revoked: &[i32]) {
        let mut k = keep.iter();
        self.spans.retain(|_| *k.next().expect("aligned"));
        self.waiting.retain(|s| !revoked.contains(&s.partition));
    }

    /// Moves the records still waiting here to `to` (ahead of anything received there later):
    /// a batch started while records waited to be decoded hands them to the next.
    pub fn hand_over(&mut self, to: &mut Sources) {
        if !self.waiting.is_empty() && to.topic != self.topic {
            to.topic.clone_from(&self.topic);
        }
        while let Some(span) = self.waiting.pop_front() {
            let mut copy = |r: &Option<Range<usize>>| r.clone().map(|r| to.put(&self.buf[r]));
            let moved = Span {
                key: copy(&span.key),
                payload: copy(&span.payload),
                headers: copy(&span.headers),
                ..span
            };
            to.waiting.push_back(moved);
        }
    }

    /// Empties the buffer for another batch, but for the records still waiting (a batch's spare
    /// has none).
    fn clear(&mut self) {
        if self.waiting.is_empty() {
            self.buf.clear();
        }
        self.spans.clear();
    }
}

pub(crate) struct Pending<E> {
    pub events: Vec<Record<E>>,
    /// Where each event came from (see [`Sources`]), and the records not decoded yet.
    pub sources: Sources,
    /// Records refused before the sink saw them (undecodable, outside the time bounds).
    pub dead: Vec<DeadLetter>,
    pub bytes: usize,
    /// The next offset to commit per partition: after the last record accounted for in this batch
    /// (a few partitions: a list is quicker than a map).
    pub next_offsets: Vec<(i32, i64)>,
    pub started: Option<Instant>,
}

impl<E> Pending<E> {
    pub fn new() -> Self {
        Self {
            events: Vec::new(),
            sources: Sources::default(),
            dead: Vec::new(),
            bytes: 0,
            next_offsets: Vec::new(),
            started: None,
        }
    }

    /// A batch with room for `rows` events (up to 65,536) from the start: grown by doubling, the
    /// lists were copied and their new memory faulted in for every batch.
    pub fn with_capacity(rows: usize) -> Self {
        let rows = rows.min(1 << 16);
        let mut batch = Self::new();
        batch.events.reserve_exact(rows);
        batch.sources.spans.reserve_exact(rows);
        batch
    }

    /// This batch emptied, its memory kept, to be filled again.
    pub fn recycle(mut self) -> Self {
        self.events.clear();
        self.sources.clear();
        self.dead.clear();
        self.bytes = 0;
        self.next_offsets.clear();
        self.started = None;
        self
    }

    /// No record accounted for (records may be waiting to be decoded).
    pub fn is_empty(&self) -> bool {
        self.next_offsets.is_empty()
    }

    /// Counts a record as accounted for: decoded into the batch, dead-lettered, or skipped. Only
    /// then may its offset be committed.
    pub fn note(&mut self, partition: i32, offset: i64, bytes: usize) {
        self.started.get_or_insert_with(Instant::now);
        self.bytes += bytes;
        match self.next_offsets.iter_mut().find(|(p, _)| *p == partition) {
            Some((_, next)) => *next = offset + 1,
            None => self.next_offsets.push((partition, offset + 1)),
        }
    }

    /// Forgets everything from partitions this consumer no longer owns, waiting records included.
    pub fn drop_partitions(&mut self, revoked: &[i32]) {
        if revoked.is_empty() {
            return;
        }
        let keep: Vec<bool> = self
            .events
            .iter()
            .map(|r| !revoked.contains(&r.partition))
            .collect();
        let mut k = keep.iter();
        self.events.retain(|_| *k.next().expect("aligned"));
        self.sources.retain(&keep, revoked);
        self.dead
            .retain(|d| !revoked.contains(&d.source.partition()));
        self.next_offsets.retain(|(p, _)| !revoked.contains(p));
        if self.is_empty() {
            self.started = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_comes_back_out_of_the_buffer_as_it_went_in() {
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "traceparent",
                value: Some("00-abc-01"),
            })
            .insert(Header::<&[u8]> {
                key: "empty",
                value: None,
            });
        let msg = OwnedMessage::new(
            Some(b"payload".to_vec()),
            Some(b"key".to_vec()),
            "topic".into(),
            Timestamp::CreateTime(1_700_000_000_000),
            3,
            42,
            Some(headers),
        );
        let bare = OwnedMessage::new(
            None,
            None,
            "topic".into(),
            Timestamp::NotAvailable,
            1,
            7,
            None,
        );
        let mut sources = Sources::default();
        sources.receive(&msg);
        sources.receive(&bare);
        sources.receive(&msg);
        let next = sources.next().expect("waiting").clone();
        assert_eq!(sources.payload(&next), b"payload");
        assert_eq!(
            sources.header(&next, "traceparent").as_deref(),
            Some("00-abc-01")
        );
        assert_eq!(sources.header(&next, "empty"), None);
        sources.accept_next();
        let refused = sources.refuse_next().expect("waiting");
        assert_eq!((refused.partition(), refused.offset()), (1, 7));
        assert!(refused.payload().is_none() && refused.key().is_none());
        assert!(refused.headers().is_none());
        // The third waits when its batch is started: the next batch takes it over.
        let mut next = Sources::default();
        sources.hand_over(&mut next);
        assert_eq!((sources.waiting(), next.waiting()), (0, 1));
        next.accept_next();
        assert_eq!((sources.len(), next.len()), (1, 1));
        for back in [sources.owned(0), next.owned(0)] {
            assert_eq!(back.payload(), Some(&b"payload"[..]));
            assert_eq!(back.key(), Some(&b"key"[..]));
            assert_eq!(back.topic(), "topic");
            assert_eq!(back.timestamp(), Timestamp::CreateTime(1_700_000_000_000));
            assert_eq!((back.partition(), back.offset()), (3, 42));
            let hs = back.headers().expect("headers");
            assert_eq!(hs.count(), 2);
            assert_eq!(hs.get(0).key, "traceparent");
            assert_eq!(hs.get(0).value, Some(&b"00-abc-01"[..]));
            assert_eq!(hs.get(1).key, "empty");
            assert_eq!(hs.get(1).value, None);
        }
    }
}
