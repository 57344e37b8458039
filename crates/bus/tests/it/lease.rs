//! Leases against a real nats-server (2.9): one holder at a time, renewed
//! by compare-and-set; a lease its holder stopped renewing passes to a
//! candidate that saw it unchanged for the ttl, after which the old
//! holder's renewal is refused; a holder that could not renew in time
//! renews on its term if nobody took it meanwhile; a lease given back is
//! taken at the next look.

use std::time::{Duration, Instant};

use baove_bus::lease::{self, Candidate, Look};
use baove_testkit::NatsServer;
use tokio_util::sync::CancellationToken;

async fn store(nats: &NatsServer, cancel: &CancellationToken) -> async_nats::jetstream::kv::Store {
    let client = baove_bus::connect(&nats.url(), "lease-test", cancel, None)
        .await
        .unwrap();
    lease::bucket(&async_nats::jetstream::new(client), 1)
        .await
        .unwrap()
}

/// Looks every 100 ms until `candidate` takes the lease (30 s at most).
async fn taken(candidate: &mut Candidate) -> lease::Lease {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Look::Taken(lease) = candidate.look().await.unwrap() {
            return *lease;
        }
        assert!(Instant::now() < deadline, "the lease never passed on");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_holder_at_a_time_and_an_unrenewed_lease_passes_to_another() {
    let nats = NatsServer::start().unwrap();
    let cancel = CancellationToken::new();
    let store = store(&nats, &cancel).await;
    let ttl = Duration::from_secs(2);
    let mut a = Candidate::new(&store, "casework", "a", ttl);
    let mut b = Candidate::new(&store, "casework", "b", ttl);

    let Look::Taken(mut first) = a.look().await.unwrap() else {
        panic!("a free lease is taken");
    };
    // While a renews, b never takes it, however long it looks.
    let watched = Instant::now();
    while watched.elapsed() < ttl * 2 {
        match b.look().await.unwrap() {
            Look::Held(by) => assert_eq!(by, "a"),
            Look::Taken(_) => panic!("b took a lease a kept renewing"),
        }
        let term = first.term;
        first.renew().await.unwrap();
        assert!(first.term > term, "each renewal is a new term");
        assert!(!first.must_stop());
        tokio::time::sleep(ttl / 4).await;
    }
    assert_eq!(
        lease::holder(&store, "casework").await.unwrap().as_deref(),
        Some("a")
    );

    // Not renewed: b takes it, and not before a full ttl after a's last
    // renewal was answered (b counts from when it saw that revision).
    let last_renewed = Instant::now();
    first.renew().await.unwrap();
    let second = taken(&mut b).await;
    assert!(
        last_renewed.elapsed() >= ttl,
        "b took the lease {:?} after a's last renewal, within the ttl",
        last_renewed.elapsed()
    );
    assert!(second.term > first.term);
    assert!(
        first.must_stop(),
        "a holder that did not renew for the ttl must stop"
    );
    // The old holder's renewal is refused: b holds it; so is its regaining.
    assert!(first.renew().await.is_err());
    let refused = first.regain().await.unwrap_err();
    assert!(
        refused.to_string().contains("another holds it"),
        "{refused}"
    );
    assert_eq!(
        lease::holder(&store, "casework").await.unwrap().as_deref(),
        Some("b")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_holder_that_could_not_renew_in_time_when_nobody_took_the_lease_then_it_renews_on_its_term()
 {
    let nats = NatsServer::start().unwrap();
    let cancel = CancellationToken::new();
    let store = store(&nats, &cancel).await;
    let ttl = Duration::from_secs(2);
    let Look::Taken(mut held) = Candidate::new(&store, "casework", "a", ttl)
        .look()
        .await
        .unwrap()
    else {
        panic!("a free lease is taken");
    };
    let term = held.term;
    // No renewal for two thirds of the ttl (as while the bucket elects a
    // leader): the holder must stop writing.
    tokio::time::sleep_until(held.stop_at().into()).await;
    assert!(held.must_stop());

    held.regain().await.unwrap();
    assert!(held.term > term, "renewed on its term: a new term");
    assert!(!held.must_stop(), "renewed now: it writes again");
    assert_eq!(
        lease::holder(&store, "casework").await.unwrap().as_deref(),
        Some("a")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_take_stored_but_unanswered_when_the_holder_looks_again_then_the_lease_is_its_own()
{
    let nats = NatsServer::start().unwrap();
    let cancel = CancellationToken::new();
    let store = store(&nats, &cancel).await;
    let ttl = Duration::from_secs(4);
    // An attempt by "a" whose write was stored but whose answer the holder
    // never saw (it gave up waiting during a leader election).
    let written = store.create("casework", "a".into()).await.unwrap();

    // Another candidate finds it held.
    assert!(matches!(
        Candidate::new(&store, "casework", "b", ttl)
            .look()
            .await
            .unwrap(),
        Look::Held(by) if by == "a"
    ));
    // "a" looking again gets it, renewed from now, not waited out.
    let Look::Taken(mut lease) = Candidate::new(&store, "casework", "a", ttl)
        .look()
        .await
        .unwrap()
    else {
        panic!("a's own lease is a's");
    };
    assert!(lease.term > written, "renewed on being found: a new term");
    assert!(!lease.must_stop());
    lease.renew().await.unwrap();
    assert_eq!(
        lease::holder(&store, "casework").await.unwrap().as_deref(),
        Some("a")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_renewal_stored_but_unanswered_when_the_holder_renews_again_then_it_keeps_the_lease()
 {
    let nats = NatsServer::start().unwrap();
    let cancel = CancellationToken::new();
    let store = store(&nats, &cancel).await;
    let ttl = Duration::from_secs(4);
    let Look::Taken(mut lease) = Candidate::new(&store, "casework", "a", ttl)
        .look()
        .await
        .unwrap()
    else {
        panic!("a free lease is taken");
    };
    // A renewal by "a" that the bucket stored, whose answer never came
    // (the attempt was given up during a leader election): the entry is
    // past the term the holder knows.
    let written = store
        .update("casework", "a".into(), lease.term)
        .await
        .unwrap();

    // Renewing again finds its own write instead of giving the lease up.
    lease.renew_in_time().await.unwrap();
    assert!(lease.term >= written, "the stored renewal is the term");
    assert!(!lease.must_stop());
    lease.renew_in_time().await.unwrap();
    assert!(lease.term > written);

    // Another holder's write is not mistaken for its own.
    store
        .update("casework", "b".into(), lease.term)
        .await
        .unwrap();
    let refused = lease.renew_in_time().await.unwrap_err();
    assert!(
        matches!(refused, baove_bus::BusError::JetStream(ref m) if m.contains("another holds it")),
        "{refused}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_lease_given_back_when_a_candidate_looks_then_it_takes_it_at_once() {
    let nats = NatsServer::start().unwrap();
    let cancel = CancellationToken::new();
    let store = store(&nats, &cancel).await;
    let ttl = Duration::from_secs(4);
    let mut b = Candidate::new(&store, "casework", "b", ttl);
    let Look::Taken(first) = Candidate::new(&store, "casework", "a", ttl)
        .look()
        .await
        .unwrap()
    else {
        panic!("a free lease is taken");
    };
    assert!(matches!(b.look().await.unwrap(), Look::Held(by) if by == "a"));

    first.release().await.unwrap();
    assert_eq!(lease::holder(&store, "casework").await.unwrap(), None);
    let Look::Taken(second) = b.look().await.unwrap() else {
        panic!("a lease given back is not taken at the next look");
    };

    // A lease given back on a term no longer held deletes nothing: c's
    // lease, once b's, stays c's.
    store
        .update("casework", "c".into(), second.term)
        .await
        .unwrap();
    let refused = second.release().await.unwrap_err();
    assert!(refused.to_string().contains("give lease"), "{refused}");
    assert_eq!(
        lease::holder(&store, "casework").await.unwrap().as_deref(),
        Some("c")
    );
}
