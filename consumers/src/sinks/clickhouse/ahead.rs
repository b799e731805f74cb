//! Resend lookups made ahead: the next batch's lookup runs while the batch before it is being
//! inserted, so the two costs overlap instead of adding up.
//!
//! A lookup sent while an insert is running may or may not see that insert's rows. So every
//! insert attempt that ends after a lookup ahead was sent (succeeded or not: a failed INSERT may
//! still have landed) leaves its keys here, and the batch's write counts them as seen too. An
//! insert that ended before the lookup was sent is in the server's answer: an INSERT's rows are
//! visible once it is acknowledged. A lookup ahead serves only the exact batch it was made for;
//! any other slice (a retry after a failure, the halves of a refused batch) is looked up afresh,
//! when no insert of this sink is running.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use uuid::Uuid;

use crate::Record;

/// An event as the lookups see it: (occurred_at in ms, event id).
pub(super) type Key = (u64, Uuid);

/// A set of keys. foldhash instead of SipHash: hashing was a few per cent of the sink's CPU. Its
/// seed is random per process, and a set holds at most a batch of keys.
pub(super) type KeySet = HashSet<Key, foldhash::fast::RandomState>;

/// Which batch a lookup was made for: its length and its first and last records' positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct BatchId {
    len: usize,
    first: (i32, i64),
    last: (i32, i64),
}

impl BatchId {
    pub fn of<E>(batch: &[Record<E>]) -> Option<Self> {
        let (first, last) = (batch.first()?, batch.last()?);
        Some(Self {
            len: batch.len(),
            first: (first.partition, first.offset),
            last: (last.partition, last.offset),
        })
    }
}

/// A finished lookup ahead.
struct Ahead {
    batch: BatchId,
    /// Insert attempts that had ended when it was sent.
    sent_after: u64,
    seen: KeySet,
}

#[derive(Default)]
struct State {
    /// Insert attempts ended so far.
    ended: u64,
    /// The keys of insert attempts that ended while a lookup ahead was being sent or waited to
    /// be used, numbered by when they ended.
    log: VecDeque<(u64, Arc<Vec<Key>>)>,
    /// Lookups ahead being sent: their `sent_after`.
    sending: Vec<u64>,
    /// Lookups ahead done and not used yet (at most two: a batch starting and the next one).
    done: VecDeque<Ahead>,
}

impl State {
    fn watching(&self) -> bool {
        !self.sending.is_empty() || !self.done.is_empty()
    }

    /// Forgets the insert keys no lookup ahead needs any more.
    fn prune(&mut self) {
        let floor = self
            .sending
            .iter()
            .copied()
            .chain(self.done.iter().map(|a| a.sent_after))
            .min();
        match floor {
            Some(floor) => self.log.retain(|(n, _)| *n > floor),
            None => self.log.clear(),
        }
    }
}

/// The lookups made ahead of one sink's batches, and the inserts they may have missed.
#[derive(Default)]
pub(super) struct LookAhead {
    state: Mutex<State>,
}

impl LookAhead {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Notes that a lookup ahead is about to be sent; what [`LookAhead::done`] needs.
    pub fn sending(&self) -> u64 {
        let mut state = self.state();
        let sent_after = state.ended;
        state.sending.push(sent_after);
        sent_after
    }

    /// The lookup noted by `sending` answered `seen` (`None`: it failed, the write looks up again).
    pub fn done(&self, batch: BatchId, sent_after: u64, seen: Option<KeySet>) {
        let mut state = self.state();
        if let Some(i) = state.sending.iter().position(|s| *s == sent_after) {
            state.sending.swap_remove(i);
        }
        if let Some(seen) = seen {
            state.done.push_back(Ahead {
                batch,
                sent_after,
                seen,
            });
            while state.done.len() > 2 {
                state.done.pop_front();
            }
        }
        state.prune();
    }

    /// An insert attempt of these keys ended (succeeded or failed).
    pub fn inserted(&self, keys: impl FnOnce() -> Vec<Key>) {
        let mut state = self.state();
        state.ended += 1;
        if state.watching() {
            let n = state.ended;
            state.log.push_back((n, Arc::new(keys())));
        }
    }

    /// The events `batch` must leave out, if a lookup was made ahead for exactly this batch: the
    /// lookup's answer and the keys of every insert that ended after it was sent.
    pub fn take(&self, batch: &[Record<impl Sized>]) -> Option<KeySet> {
        let id = BatchId::of(batch)?;
        let mut state = self.state();
        let i = state.done.iter().position(|a| a.batch == id)?;
        let ahead = state.done.remove(i).expect("found above");
        let mut seen = ahead.seen;
        for (_, keys) in state.log.iter().filter(|(n, _)| *n > ahead.sent_after) {
            seen.extend(keys.iter().copied());
        }
        state.prune();
        Some(seen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(offsets: std::ops::Range<i64>) -> Vec<Record<()>> {
        offsets
            .map(|offset| Record {
                event: (),
                partition: 0,
                offset,
            })
            .collect()
    }

    fn key(i: u64) -> Key {
        (i, Uuid::from_u64_pair(0, i))
    }

    #[test]
    fn inserts_ending_after_the_lookup_was_sent_count_as_seen() {
        let ahead = LookAhead::default();
        ahead.inserted(|| vec![key(1)]); // before: the server's answer has it
        let b = batch(10..20);
        let sent_after = ahead.sending();
        ahead.inserted(|| vec![key(2)]); // while the lookup ran
        ahead.done(
            BatchId::of(&b).unwrap(),
            sent_after,
            Some(KeySet::from_iter([key(3)])),
        );
        ahead.inserted(|| vec![key(4)]); // after it answered, before the write
        let seen = ahead.take(&b).expect("made for this batch");
        assert_eq!(seen, KeySet::from_iter([key(2), key(3), key(4)]));
        // Used once; nothing is kept once no lookup ahead is outstanding.
        assert!(ahead.take(&b).is_none());
        ahead.inserted(|| vec![key(5)]);
        assert!(ahead.state().log.is_empty());
    }

    #[test]
    fn a_lookup_serves_only_its_own_batch_and_a_failed_one_none() {
        let ahead = LookAhead::default();
        let b = batch(0..10);
        let s = ahead.sending();
        ahead.done(BatchId::of(&b).unwrap(), s, Some(KeySet::default()));
        assert!(ahead.take(&b[..5]).is_none(), "a half is looked up afresh");
        assert!(ahead.take(&batch(1..11)).is_none());
        let s = ahead.sending();
        ahead.done(BatchId::of(&b).unwrap(), s, None);
        assert!(
            ahead.take(&b).is_some(),
            "the earlier answer is still there"
        );
        assert!(ahead.take(&b).is_none());
    }
}
