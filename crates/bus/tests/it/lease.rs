//! Leases against a real nats-server (2.9): one holder at a time, renewed
//! by compare-and-set; an unrenewed lease expires and another takes it,
//! after which the old holder's renewal is refused.

use std::time::Duration;

use baove_bus::lease;
use baove_testkit::NatsServer;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_holder_at_a_time_and_an_expired_lease_passes_to_another() {
    let nats = NatsServer::start().unwrap();
    let cancel = CancellationToken::new();
    let client = baove_bus::connect(&nats.url(), "lease-test", &cancel, None)
        .await
        .unwrap();
    let js = async_nats::jetstream::new(client);
    let ttl = Duration::from_secs(2);
    let store = lease::bucket(&js, ttl, 1).await.unwrap();

    let mut first = lease::try_take(&store, "casework", "a", ttl)
        .await
        .unwrap()
        .expect("a free lease is taken");
    assert!(
        lease::try_take(&store, "casework", "b", ttl)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        lease::holder(&store, "casework").await.unwrap().as_deref(),
        Some("a")
    );
    let term = first.term;
    first.renew().await.unwrap();
    assert!(first.term > term, "each renewal is a new term");
    assert!(!first.must_stop());

    // Not renewed: it expires, and b takes it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let second = loop {
        if let Some(lease) = lease::try_take(&store, "casework", "b", ttl).await.unwrap() {
            break lease;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the lease never expired"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(second.term > first.term);
    assert!(
        first.must_stop(),
        "a holder that did not renew for the ttl must stop"
    );
    // The old holder's renewal is refused: b holds it.
    assert!(first.renew().await.is_err());
    assert_eq!(
        lease::holder(&store, "casework").await.unwrap().as_deref(),
        Some("b")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_take_stored_but_unanswered_when_the_holder_tries_again_then_the_lease_is_its_own()
{
    let nats = NatsServer::start().unwrap();
    let cancel = CancellationToken::new();
    let client = baove_bus::connect(&nats.url(), "lease-test", &cancel, None)
        .await
        .unwrap();
    let js = async_nats::jetstream::new(client);
    let ttl = Duration::from_secs(4);
    let store = lease::bucket(&js, ttl, 1).await.unwrap();
    // An attempt by "a" whose write was stored but whose answer the holder
    // never saw (it gave up waiting during a leader election).
    let written = store.create("casework", "a".into()).await.unwrap();

    // Another holder still finds it held.
    assert!(
        lease::try_take(&store, "casework", "b", ttl)
            .await
            .unwrap()
            .is_none()
    );
    // "a" trying again gets it, renewed from now, not waited out.
    let mut lease = lease::try_take(&store, "casework", "a", ttl)
        .await
        .unwrap()
        .expect("a's own lease is a's");
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
    let client = baove_bus::connect(&nats.url(), "lease-test", &cancel, None)
        .await
        .unwrap();
    let js = async_nats::jetstream::new(client);
    let ttl = Duration::from_secs(4);
    let store = lease::bucket(&js, ttl, 1).await.unwrap();
    let mut lease = lease::try_take(&store, "casework", "a", ttl)
        .await
        .unwrap()
        .expect("a free lease is taken");
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
