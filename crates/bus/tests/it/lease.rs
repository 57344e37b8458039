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
