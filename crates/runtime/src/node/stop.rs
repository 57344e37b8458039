//! A process that stops by itself, and why: it then exits with an error.

use std::sync::{Arc, OnceLock};

use tokio_util::sync::CancellationToken;

/// The process's shutdown token, as the parts that may stop it from inside
/// hold it: an active that lost its lease, a log that parted from the
/// cluster's, a take-over that could not keep its lease. Such a stop keeps
/// its reason, and [`super::run`] then returns an error naming it, so the
/// process exits non-zero and a supervisor (`Restart=on-failure`, the
/// systemd units' setting) starts it again, as a standby while another
/// holds the lease. A stop asked for from outside (SIGTERM, Ctrl-C) keeps
/// no reason and exits 0.
#[derive(Clone)]
pub(super) struct Stop {
    token: CancellationToken,
    reason: Arc<OnceLock<String>>,
}

impl Stop {
    pub(super) fn new(token: CancellationToken) -> Self {
        Self {
            token,
            reason: Arc::default(),
        }
    }

    /// Stops the process, keeping `reason` unless it is already stopping
    /// (a lease lost while draining after SIGTERM is no failure).
    pub(super) fn by_itself(&self, reason: impl Into<String>) {
        if !self.token.is_cancelled() {
            let _ = self.reason.set(reason.into());
        }
        self.token.cancel();
    }

    /// Why it stopped by itself, if it did.
    pub(super) fn reason(&self) -> Option<&str> {
        self.reason.get().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_a_stop_from_inside_then_its_first_reason_is_kept_and_the_token_fires() {
        let token = CancellationToken::new();
        let stop = Stop::new(token.clone());
        stop.by_itself("lost the lease");
        stop.by_itself("a second reason");
        assert!(token.is_cancelled());
        assert_eq!(stop.reason(), Some("lost the lease"));
    }

    #[test]
    fn given_a_stop_asked_from_outside_when_a_part_then_stops_too_then_no_reason_is_kept() {
        let token = CancellationToken::new();
        let stop = Stop::new(token.clone());
        token.cancel();
        stop.by_itself("lost the lease while draining");
        assert_eq!(stop.reason(), None);
    }
}
