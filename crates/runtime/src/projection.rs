//! Following a service's log to keep an in-memory read model.

use baove_eventlog::{Envelope, EventLog};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How far a read model has applied the log, and the loop that moves it.
pub struct Follower {
    position: watch::Sender<u64>,
}

impl Default for Follower {
    fn default() -> Self {
        Self {
            position: watch::channel(0).0,
        }
    }
}

impl Follower {
    /// Applies the log from where the model stands to its end with `apply`,
    /// then keeps following it (woken by the log's commit notifications, no
    /// polling) until `cancel` fires.
    pub async fn follow(
        &self,
        log: &EventLog,
        cancel: &CancellationToken,
        mut apply: impl FnMut(&Envelope),
    ) {
        let mut committed = log.subscribe();
        loop {
            committed.borrow_and_update();
            let from = *self.position.borrow() + 1;
            match log.read_all(from, 1000).await {
                Ok(events) if !events.is_empty() => {
                    for envelope in &events {
                        apply(envelope);
                    }
                    if let Some(last) = events.last() {
                        self.position.send_replace(last.global_position);
                    }
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(error = %e, "read model cannot read the log; retrying on the next commit")
                }
            }
            tokio::select! {
                () = cancel.cancelled() => return,
                changed = committed.changed() => if changed.is_err() { return },
            }
        }
    }

    /// Waits until the model has applied the log up to `position`, so that
    /// a reply can read back what was just written.
    pub async fn wait_for(&self, position: u64) {
        let mut rx = self.position.subscribe();
        // Err only if the sender is gone, which it is not while `self` lives.
        let _ = rx.wait_for(|p| *p >= position).await;
    }
}
