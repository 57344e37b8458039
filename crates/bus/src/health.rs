//! Whether a service's bus parts can make progress: the connection, its
//! streams, its outbox relay and each of its consumers. The `baove.bus`
//! health status is SERVING only while every part is; the first failing
//! part and why is logged when it changes.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_nats::jetstream;
use tokio::sync::watch;

/// Each part's state: `None` while it makes progress, `Some(reason)` while
/// it cannot.
pub type Parts = BTreeMap<String, Option<String>>;

/// The shared record of the bus parts' states.
#[derive(Clone)]
pub struct BusHealth(Arc<watch::Sender<Parts>>);

impl Default for BusHealth {
    fn default() -> Self {
        Self(Arc::new(watch::channel(Parts::new()).0))
    }
}

impl std::fmt::Debug for BusHealth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("BusHealth").field(&*self.0.borrow()).finish()
    }
}

impl BusHealth {
    /// `part` makes progress.
    pub fn ok(&self, part: &str) {
        self.0.send_if_modified(|parts| {
            if parts.get(part) == Some(&None) {
                return false;
            }
            parts.insert(part.to_owned(), None);
            true
        });
    }

    /// `part` cannot make progress, because of `reason`.
    pub fn failing(&self, part: &str, reason: impl Into<String>) {
        let reason = reason.into();
        self.0.send_if_modified(|parts| {
            if parts
                .get(part)
                .is_some_and(|r| r.as_deref() == Some(reason.as_str()))
            {
                return false;
            }
            parts.insert(part.to_owned(), Some(reason));
            true
        });
    }

    /// `part` stopped on purpose (a standby's log follower when its process
    /// takes over): it no longer counts.
    pub fn gone(&self, part: &str) {
        self.0
            .send_if_modified(|parts| parts.remove(part).is_some());
    }

    /// The first part that cannot make progress, and why.
    #[must_use]
    pub fn first_failure(&self) -> Option<(String, String)> {
        first_failure(&self.0.borrow())
    }

    /// Follows the parts' states.
    #[must_use]
    pub fn subscribe(&self) -> watch::Receiver<Parts> {
        self.0.subscribe()
    }
}

/// The first failing part of `parts`, and why.
#[must_use]
pub fn first_failure(parts: &Parts) -> Option<(String, String)> {
    parts
        .iter()
        .find_map(|(part, reason)| reason.as_ref().map(|r| (part.clone(), r.clone())))
}

/// The bus as a service's parts use it: JetStream, and where they report
/// whether they make progress.
#[derive(Clone, Debug)]
pub struct Bus {
    /// The JetStream context.
    pub js: jetstream::Context,
    /// Where parts report.
    pub health: BusHealth,
    /// The copies of each stream it creates (`stream_replicas`).
    pub replicas: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_part_is_reported_until_it_recovers() {
        let health = BusHealth::default();
        let mut changes = health.subscribe();
        health.ok("relay");
        assert_eq!(health.first_failure(), None);
        health.failing("consumer casework", "stream not found");
        assert!(changes.has_changed().unwrap_or(false));
        assert_eq!(
            health.first_failure(),
            Some(("consumer casework".into(), "stream not found".into()))
        );
        changes.borrow_and_update();
        // The same reason again is no change.
        health.failing("consumer casework", "stream not found");
        assert!(!changes.has_changed().unwrap_or(true));
        health.ok("consumer casework");
        assert_eq!(health.first_failure(), None);
    }
}
