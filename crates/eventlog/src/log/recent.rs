//! The newest events written, kept decoded in memory for the readers that
//! follow the log's tail (read models, the outbox relay, the log relay):
//! each of them would otherwise read back from sled and decode, one after
//! another, the events the writer has just encoded.
//!
//! Filled by the writer thread right after it wrote a group into sled, so
//! it never holds an event sled does not; the commit watch moves only after
//! that, so a follower woken for position `p` finds `p` here. Only reads
//! of the tail use it: verification, the Merkle tree and every read of a
//! stream go to sled.

use std::collections::VecDeque;

use crate::envelope::Envelope;

/// How many of the newest events are kept (about 1–2 KiB each).
pub(crate) const KEPT: usize = 4096;

/// A run of consecutive global positions, newest last.
#[derive(Default)]
pub(crate) struct Recent {
    events: VecDeque<Envelope>,
}

impl Recent {
    /// The global position of the oldest event held.
    fn first(&self) -> Option<u64> {
        self.events.front().map(|e| e.global_position)
    }

    /// Adds the events of one written group, in global order. A group that
    /// does not follow on from what is held (the first after opening, an
    /// import) starts the run again.
    pub(crate) fn extend(&mut self, group: Vec<Envelope>) {
        let Some(start) = group.first().map(|e| e.global_position) else {
            return;
        };
        let follows = self
            .events
            .back()
            .is_some_and(|last| last.global_position + 1 == start);
        if !follows {
            self.events.clear();
        }
        self.events.extend(group);
        while self.events.len() > KEPT {
            self.events.pop_front();
        }
    }

    /// Up to `limit` events from position `from` on, if `from` is held;
    /// `None` sends the reader to sled.
    pub(crate) fn read(&self, from: u64, limit: usize) -> Option<Vec<Envelope>> {
        let first = self.first()?;
        let from = from.max(1);
        if from < first {
            return None;
        }
        let skip = usize::try_from(from - first).ok()?;
        if skip >= self.events.len() {
            return None;
        }
        Some(self.events.iter().skip(skip).take(limit).cloned().collect())
    }

    /// Whether every position from `from` to `to` is held.
    pub(crate) fn holds(&self, from: u64, to: u64) -> bool {
        match (self.first(), self.events.back()) {
            (Some(first), Some(last)) => first <= from && to <= last.global_position,
            _ => false,
        }
    }

    /// The event at global position `position`, if held.
    pub(crate) fn at(&self, position: u64) -> Option<Envelope> {
        let skip = usize::try_from(position.checked_sub(self.first()?)?).ok()?;
        self.events.get(skip).cloned()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::envelope::{Actor, ChainHash, StreamId};

    fn at(position: u64) -> Envelope {
        Envelope {
            event_id: uuid::Uuid::now_v7(),
            stream_id: StreamId::new(),
            seq: 1,
            global_position: position,
            event_type: "Tested".into(),
            schema_version: 1,
            recorded_at_ms: 0,
            actor: Actor::system("t"),
            command_id: String::new(),
            causation_id: String::new(),
            correlation_id: String::new(),
            payload: "{}".into(),
            prev_hash: ChainHash::GENESIS,
            hash: ChainHash::GENESIS,
        }
    }

    fn positions(events: Option<Vec<Envelope>>) -> Option<Vec<u64>> {
        events.map(|e| e.iter().map(|e| e.global_position).collect())
    }

    #[test]
    fn reads_are_served_only_from_a_held_position_and_gaps_start_the_run_again() {
        let mut recent = Recent::default();
        assert_eq!(positions(recent.read(1, 10)), None);
        recent.extend((5..=7).map(at).collect());
        assert_eq!(positions(recent.read(4, 10)), None, "before the run: sled");
        assert_eq!(positions(recent.read(5, 2)), Some(vec![5, 6]));
        assert_eq!(positions(recent.read(6, 10)), Some(vec![6, 7]));
        assert_eq!(positions(recent.read(8, 10)), None, "after the run: sled");
        assert_eq!(recent.at(7).map(|e| e.global_position), Some(7));
        assert!(recent.at(4).is_none() && recent.at(8).is_none());
        recent.extend(vec![at(8)]);
        assert_eq!(positions(recent.read(5, 10)), Some(vec![5, 6, 7, 8]));
        // A group that does not follow on: only it is held.
        recent.extend(vec![at(20)]);
        assert_eq!(positions(recent.read(5, 10)), None);
        assert_eq!(positions(recent.read(20, 10)), Some(vec![20]));
    }

    #[test]
    fn a_range_is_held_only_when_both_ends_are() {
        let mut recent = Recent::default();
        assert!(!recent.holds(1, 1), "nothing held yet");
        recent.extend((5..=9).map(at).collect());
        assert!(recent.holds(5, 9) && recent.holds(6, 6));
        assert!(!recent.holds(4, 9), "starts before the run");
        assert!(!recent.holds(5, 10), "ends after the run");
    }

    #[test]
    fn only_the_newest_are_kept() {
        let mut recent = Recent::default();
        let total = u64::try_from(KEPT).unwrap() + 10;
        for position in 1..=total {
            recent.extend(vec![at(position)]);
        }
        assert_eq!(positions(recent.read(10, 1)), None);
        assert_eq!(positions(recent.read(11, 1)), Some(vec![11]));
        assert_eq!(positions(recent.read(total, 5)), Some(vec![total]));
    }
}
