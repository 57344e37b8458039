//! What one caller, and all callers together, may take of a service: calls
//! per second (a token bucket per caller), calls in flight in the whole
//! process, and open server streams (`WatchCase`, `WatchInbox`,
//! `StreamHistory`, `VerifyAll`).
//!
//! Beyond what the process can do, a call is refused at once rather than
//! queued: a hotline client told RESOURCE_EXHAUSTED in a millisecond
//! retries (with the same request id) or switches to paper; one left
//! waiting 30 s for a deadline does neither.
//!
//! Every read appends an access-log record, so an unbounded reader grows
//! the service's disk; every open stream holds a task and a buffer. Both
//! limits answer RESOURCE_EXHAUSTED, at once, naming the limit, so a client
//! backs off instead of queueing.
//!
//! A caller is the token's role, agency and subject together: two users
//! with the same id in different roles or agencies are different callers.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

use baove_security::Caller;
use governor::{Quota, RateLimiter};
use tonic::Status;

/// The limits a service applies (see [`crate::Config`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LimitSettings {
    /// Calls per second per caller, sustained; 0: no limit.
    pub calls_per_sec: u32,
    /// Calls a caller may make at once before the rate applies.
    pub call_burst: u32,
    /// Open server streams per caller.
    pub streams_per_caller: usize,
    /// Open server streams in all.
    pub streams_total: usize,
    /// Calls being answered at once, in all (health and reflection apart).
    pub max_in_flight: usize,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            calls_per_sec: 20,
            call_burst: 200,
            streams_per_caller: 8,
            streams_total: 256,
            max_in_flight: 256,
        }
    }
}

/// The key of a caller: role, agency and subject.
fn key(caller: &Caller) -> String {
    format!(
        "{}\u{1f}{}\u{1f}{}",
        caller.role, caller.agency_id, caller.user_id
    )
}

type Keyed = RateLimiter<
    String,
    governor::state::keyed::HashMapStateStore<String>,
    governor::clock::MonotonicClock,
>;

/// The limits of one service process.
pub struct Limits {
    calls: Option<Keyed>,
    settings: LimitSettings,
    streams: Mutex<StreamCount>,
    in_flight: Arc<tokio::sync::Semaphore>,
}

#[derive(Default)]
struct StreamCount {
    total: usize,
    by_caller: HashMap<String, usize>,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Limits {
    /// Limits as `settings` say.
    #[must_use]
    pub fn new(settings: LimitSettings) -> Arc<Self> {
        let calls = NonZeroU32::new(settings.calls_per_sec).map(|rate| {
            let burst = NonZeroU32::new(settings.call_burst).unwrap_or(rate);
            RateLimiter::new(
                Quota::per_second(rate).allow_burst(burst),
                governor::state::keyed::HashMapStateStore::default(),
                governor::clock::MonotonicClock,
            )
        });
        Arc::new(Self {
            calls,
            settings,
            streams: Mutex::default(),
            in_flight: Arc::new(tokio::sync::Semaphore::new(settings.max_in_flight.max(1))),
        })
    }

    /// A place among the calls in flight, held until the call is answered.
    ///
    /// # Errors
    /// RESOURCE_EXHAUSTED, at once, when every place is taken.
    pub fn enter(&self) -> Result<tokio::sync::OwnedSemaphorePermit, Status> {
        self.in_flight.clone().try_acquire_owned().map_err(|_| {
            Status::resource_exhausted(format!(
                "the service is answering {} calls, its limit: retry in a moment with the same request_id",
                self.settings.max_in_flight
            ))
        })
    }

    /// Takes one call of `caller`'s budget.
    ///
    /// # Errors
    /// RESOURCE_EXHAUSTED when the caller is over its rate.
    pub fn admit_call(&self, caller: &Caller) -> Result<(), Status> {
        let Some(calls) = &self.calls else {
            return Ok(());
        };
        calls.check_key(&key(caller)).map_err(|_| {
            Status::resource_exhausted(format!(
                "too many calls: at most {} a second (bursts of {}) per user; slow down and retry",
                self.settings.calls_per_sec, self.settings.call_burst
            ))
        })?;
        // The store keeps one entry per caller ever seen; drop the idle
        // ones now and then so it cannot grow without bound.
        if calls.len() > 10_000 {
            calls.retain_recent();
        }
        Ok(())
    }

    /// Opens one server stream for `caller`; the stream counts until the
    /// permit is dropped.
    ///
    /// # Errors
    /// RESOURCE_EXHAUSTED when the caller, or the service, has as many
    /// streams open as allowed.
    pub fn open_stream(self: &Arc<Self>, caller: &Caller) -> Result<StreamPermit, Status> {
        let key = key(caller);
        let mut count = self
            .streams
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if count.total >= self.settings.streams_total {
            return Err(Status::resource_exhausted(format!(
                "this service has {} live streams open, its limit: try again later",
                self.settings.streams_total
            )));
        }
        let mine = count.by_caller.entry(key.clone()).or_default();
        if *mine >= self.settings.streams_per_caller {
            return Err(Status::resource_exhausted(format!(
                "you have {} live streams open, the limit per user: close one first",
                self.settings.streams_per_caller
            )));
        }
        *mine += 1;
        count.total += 1;
        Ok(StreamPermit {
            limits: self.clone(),
            key,
        })
    }

    /// Streams open now, in all.
    #[must_use]
    pub fn open_streams(&self) -> usize {
        self.streams
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .total
    }
}

/// One open server stream; dropping it frees its place.
#[derive(Debug)]
pub struct StreamPermit {
    limits: Arc<Limits>,
    key: String,
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        let mut count = self
            .limits
            .streams
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        count.total = count.total.saturating_sub(1);
        if let Some(mine) = count.by_caller.get_mut(&self.key) {
            *mine = mine.saturating_sub(1);
            if *mine == 0 {
                count.by_caller.remove(&self.key);
            }
        }
    }
}

/// The permit for a server stream of the caller of `request`, from the
/// limits the auth layer put in its extensions.
///
/// # Errors
/// RESOURCE_EXHAUSTED as [`Limits::open_stream`]; UNAUTHENTICATED when the
/// request did not pass the auth layer.
pub fn open_stream<T>(request: &tonic::Request<T>) -> Result<StreamPermit, Status> {
    let caller = crate::auth::caller(request)?;
    let limits = request
        .extensions()
        .get::<Arc<Limits>>()
        .ok_or_else(|| Status::unauthenticated("no authenticated caller"))?;
    limits.open_stream(&caller)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use baove_security::Role;

    fn caller(user: &str, role: Role, agency: &str) -> Caller {
        Caller {
            user_id: user.into(),
            role,
            agency_id: agency.into(),
            units: Vec::new(),
            purpose: String::new(),
        }
    }

    #[test]
    fn a_caller_over_its_rate_is_refused_and_others_are_not() {
        let limits = Limits::new(LimitSettings {
            calls_per_sec: 1,
            call_burst: 3,
            ..LimitSettings::default()
        });
        let a = caller("u", Role::Police, "ca-1");
        for _ in 0..3 {
            limits.admit_call(&a).unwrap();
        }
        let refused = limits.admit_call(&a).unwrap_err();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        // The same subject in another role or agency is another caller.
        limits
            .admit_call(&caller("u", Role::HotlineOperator, "ca-1"))
            .unwrap();
        limits
            .admit_call(&caller("u", Role::Police, "ca-2"))
            .unwrap();
        // No limit configured: never refused.
        let open = Limits::new(LimitSettings {
            calls_per_sec: 0,
            ..LimitSettings::default()
        });
        for _ in 0..1000 {
            open.admit_call(&a).unwrap();
        }
    }

    #[test]
    fn streams_are_limited_per_caller_and_in_all_and_freed_when_dropped() {
        let limits = Limits::new(LimitSettings {
            streams_per_caller: 2,
            streams_total: 3,
            ..LimitSettings::default()
        });
        let a = caller("a", Role::Police, "ca-1");
        let b = caller("b", Role::Police, "ca-1");
        let first = limits.open_stream(&a).unwrap();
        let _second = limits.open_stream(&a).unwrap();
        assert_eq!(
            limits.open_stream(&a).unwrap_err().code(),
            tonic::Code::ResourceExhausted
        );
        let _third = limits.open_stream(&b).unwrap();
        // The service is full, whoever asks.
        assert_eq!(
            limits.open_stream(&b).unwrap_err().code(),
            tonic::Code::ResourceExhausted
        );
        drop(first);
        assert_eq!(limits.open_streams(), 2);
        let _again = limits.open_stream(&a).unwrap();
    }

    #[test]
    fn calls_beyond_the_in_flight_limit_are_refused_at_once() {
        let limits = Limits::new(LimitSettings {
            max_in_flight: 2,
            ..LimitSettings::default()
        });
        let one = limits.enter().unwrap();
        let _two = limits.enter().unwrap();
        let refused = limits.enter().unwrap_err();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert!(refused.message().contains("same request_id"), "{refused:?}");
        drop(one);
        let _three = limits.enter().unwrap();
    }
}
