//! The processes of one service the console talks to. In a three-node
//! deployment each service runs one process per host, one of them active
//! (it takes writes), the others standbys (they answer reads and refuse
//! writes naming the active). The console is given every process's
//! address (`a,b,c`) and sends every call to the active one: a watcher
//! asks each process's `baove.active` health every 2 seconds, so after a
//! failover the console follows the new active within seconds. A call
//! made in between is refused UNAVAILABLE and the page says to send again
//! (every form carries its request id, so nothing is recorded twice).
//!
//! In a deployment partitioned by province the console serves one
//! province (`--province`): of the processes it is given, it takes only
//! those whose health `baove.partition.<province>` is SERVING. Without
//! one, calls go to the first active, and a call refused as another
//! province's (`baove-partition`) is sent to that province's active
//! ([`Upstream::channel_in`]): a national hotline console. Such a console
//! is also every province's officers': their case list is each
//! partition's, merged, and a case's pages and steps go to the casework
//! partition that keeps it (found by asking each active once, then
//! remembered: [`Whereabouts`]); the police's and agencies' referral
//! inbox merges each partition's, and a step on a referral goes to the
//! partition that has it; the statistics add every partition's up.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

/// How often the watcher asks which process is active.
pub const WATCH_EVERY: Duration = Duration::from_secs(2);

/// The processes of one service.
pub struct Upstream {
    addrs: Vec<String>,
    channels: Vec<Channel>,
    active: AtomicUsize,
    /// Every process that said it is active at the watcher's last round
    /// (one per partition in a deployment partitioned by province), by
    /// index: what a national console reads every province from, without
    /// asking each process again per page.
    actives: std::sync::Mutex<Vec<usize>>,
    /// The health name a process of the served province's partition is
    /// SERVING on (`baove.partition.<province>`), if one is served.
    partition: Option<String>,
    /// The process found active for each province ([`Self::channel_in`]),
    /// by index: taken again while the watcher still finds it active.
    routes: std::sync::Mutex<std::collections::HashMap<String, usize>>,
}

impl Upstream {
    /// The processes at `addrs` (one address, or several separated by
    /// commas), connected lazily; the first is taken as active until the
    /// watcher knows better. With `province` (non-empty), only the
    /// processes of that province's partition are taken.
    ///
    /// # Errors
    /// No address, or one that is not a URI.
    pub fn new(addrs: &str, province: &str) -> anyhow::Result<Arc<Self>> {
        let addrs: Vec<String> = addrs
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_owned)
            .collect();
        anyhow::ensure!(!addrs.is_empty(), "no service address given");
        let channels = addrs
            .iter()
            .map(|addr| {
                Ok(Channel::from_shared(addr.clone())?
                    .connect_timeout(Duration::from_secs(2))
                    .timeout(Duration::from_secs(10))
                    .connect_lazy())
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let province = province.trim();
        Ok(Arc::new(Self {
            addrs,
            channels,
            active: AtomicUsize::new(0),
            actives: std::sync::Mutex::new(Vec::new()),
            routes: std::sync::Mutex::default(),
            partition: (!province.is_empty()).then(|| format!("baove.partition.{province}")),
        }))
    }

    /// The channel to the process taken as active now.
    #[must_use]
    pub fn channel(&self) -> Channel {
        let i = self
            .active
            .load(Ordering::Relaxed)
            .min(self.channels.len() - 1);
        self.channels[i].clone()
    }

    /// The address of the process taken as active now.
    #[must_use]
    pub fn active_addr(&self) -> &str {
        &self.addrs[self
            .active
            .load(Ordering::Relaxed)
            .min(self.addrs.len() - 1)]
    }

    /// Asks each process (of the served province's partition, if one is
    /// served) whether it is active; takes the first that says SERVING,
    /// and keeps every one that does ([`Self::actives`]). The one taken
    /// does not change when none does (a failover in progress), nor when
    /// there is only one process.
    pub async fn refresh(&self) {
        if self.channels.len() < 2 {
            return;
        }
        // All asked at once: a dead process (up to WATCH_EVERY to give up
        // on) delays the round by that much, not by that much each.
        let answers = futures_util::future::join_all(self.channels.iter().map(|channel| async {
            if let Some(partition) = &self.partition
                && !serving(channel, partition).await
            {
                return false;
            }
            serving(channel, "baove.active").await
        }))
        .await;
        let actives: Vec<usize> = (0..answers.len()).filter(|&i| answers[i]).collect();
        if let Some(&first) = actives.first()
            && self.active.swap(first, Ordering::Relaxed) != first
        {
            tracing::info!(active = %self.addrs[first], "calls now go to this process");
        }
        *self
            .actives
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = actives;
    }

    /// Whether this console serves one province's partition (`--province`).
    #[must_use]
    pub fn serves_one_province(&self) -> bool {
        self.partition.is_some()
    }

    /// The channel to the active process of `province`'s partition: the
    /// one found before while the watcher still finds it active, else
    /// asked now; else to one of its processes (a standby answers reads
    /// and names the active when it refuses a write); `None` when no
    /// process given keeps that partition. For a call refused as another
    /// province's, and a national console's pages of one province's
    /// records: a console serving one province (`--province`) never goes
    /// elsewhere.
    pub async fn channel_in(&self, province: &str) -> Option<Channel> {
        if self.partition.is_some() {
            return None;
        }
        let routes = || {
            self.routes
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        let known = routes().get(province).copied();
        if let Some(i) = known
            && self
                .actives
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .contains(&i)
        {
            return Some(self.channels[i].clone());
        }
        let partition = format!("baove.partition.{province}");
        // The processes known active first: live, and each asked once.
        for (i, channel) in self.actives_by_index() {
            if serving(&channel, &partition).await {
                routes().insert(province.to_owned(), i);
                return Some(channel);
            }
        }
        let mut reachable = None;
        for (i, channel) in self.channels.iter().enumerate() {
            if !serving(channel, &partition).await {
                continue;
            }
            if serving(channel, "baove.active").await {
                routes().insert(province.to_owned(), i);
                return Some(channel.clone());
            }
            reachable.get_or_insert_with(|| channel.clone());
        }
        reachable
    }

    /// The channels to every process that said it is active at the
    /// watcher's last round ([`Self::refresh`], every [`WATCH_EVERY`]):
    /// one per partition in a deployment partitioned by province (one in
    /// all otherwise); the one taken as active when none did (a failover in
    /// progress, or before the first round) or when this console serves
    /// one province. For what a national console reads from every
    /// province: the operator's own reports.
    #[must_use]
    pub fn actives(&self) -> Vec<Channel> {
        self.actives_by_index()
            .into_iter()
            .map(|(_, channel)| channel)
            .collect()
    }

    /// [`Self::actives`], each with its process's index among the
    /// addresses given: what tells a partition's log positions apart
    /// while its active stays the same process.
    #[must_use]
    pub fn actives_by_index(&self) -> Vec<(usize, Channel)> {
        let taken = || {
            let i = self
                .active
                .load(Ordering::Relaxed)
                .min(self.channels.len() - 1);
            vec![(i, self.channels[i].clone())]
        };
        if self.partition.is_some() {
            return taken();
        }
        let actives: Vec<(usize, Channel)> = self
            .actives
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|&i| (i, self.channels[i].clone()))
            .collect();
        if actives.is_empty() {
            return taken();
        }
        actives
    }

    /// Keeps [`Self::refresh`]ing for the life of the process, when there
    /// is more than one process to choose from.
    pub fn watch(self: &Arc<Self>) {
        if self.channels.len() < 2 {
            return;
        }
        let this = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                this.refresh().await;
                tokio::time::sleep(WATCH_EVERY).await;
            }
        });
    }
}

/// The province of each record a national console has found (a case):
/// where to send its next call without asking every partition again. At
/// most [`Whereabouts::MOST`] kept, in two generations of at most half
/// that each: new records go into the young one; once it is full it
/// becomes the old one, and the old one before it is forgotten. A record
/// asked for from the old generation moves back into the young one, so
/// what is forgotten is what was neither noted nor asked for in the
/// longest time, and the cases in use keep their route.
#[derive(Debug, Default)]
pub struct Whereabouts(std::sync::Mutex<Generations>);

#[derive(Debug, Default)]
struct Generations {
    young: std::collections::HashMap<String, String>,
    old: std::collections::HashMap<String, String>,
}

impl Generations {
    fn keep(&mut self, id: String, province: String) {
        if self.young.len() >= Whereabouts::MOST / 2 && !self.young.contains_key(&id) {
            self.old = std::mem::take(&mut self.young);
        }
        self.young.insert(id, province);
    }
}

impl Whereabouts {
    /// How many records are kept at most.
    pub const MOST: usize = 100_000;

    fn generations(&self) -> std::sync::MutexGuard<'_, Generations> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `id` is kept in `province`'s partition (an empty province: not
    /// known, not noted).
    pub fn note(&self, id: &str, province: &str) {
        if province.is_empty() {
            return;
        }
        let mut known = self.generations();
        known.old.remove(id);
        known.keep(id.to_owned(), province.to_owned());
    }

    /// The province noted for `id`.
    #[must_use]
    pub fn of(&self, id: &str) -> Option<String> {
        let mut known = self.generations();
        if let Some(province) = known.young.get(id) {
            return Some(province.clone());
        }
        let province = known.old.remove(id)?;
        known.keep(id.to_owned(), province.clone());
        Some(province)
    }
}

/// Whether the process on `channel` says SERVING for health `service`
/// (within [`WATCH_EVERY`]).
async fn serving(channel: &Channel, service: &str) -> bool {
    let answer = tokio::time::timeout(
        WATCH_EVERY,
        HealthClient::new(channel.clone()).check(HealthCheckRequest {
            service: service.into(),
        }),
    )
    .await;
    matches!(answer, Ok(Ok(answer)) if answer.get_ref().status == ServingStatus::Serving as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A process's health service on a free loopback port, SERVING on
    /// `serving`: its address.
    async fn health_server(serving: &[&str]) -> String {
        let (reporter, service) = tonic_health::server::health_reporter();
        for name in serving {
            reporter
                .set_service_status(*name, tonic_health::ServingStatus::Serving)
                .await;
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        format!("http://{addr}")
    }

    #[test]
    fn given_a_record_found_in_a_province_then_its_province_is_kept_until_too_many_are() {
        let known = Whereabouts::default();
        known.note("case-1", "vn:92");
        known.note("case-2", "");
        assert_eq!(known.of("case-1").as_deref(), Some("vn:92"));
        assert_eq!(known.of("case-2"), None, "an unknown province is not noted");
        for i in 1..=Whereabouts::MOST {
            known.note(&format!("other-{i}"), "vn:01");
        }
        // Half are forgotten at a time, the longest unused first.
        assert_eq!(known.of("other-1"), None, "the oldest, forgotten");
        assert_eq!(known.of("case-1"), None, "the oldest, forgotten");
        let newest = format!("other-{}", Whereabouts::MOST);
        assert_eq!(known.of(&newest).as_deref(), Some("vn:01"));
        let half = format!("other-{}", Whereabouts::MOST / 2 + 1);
        assert_eq!(known.of(&half).as_deref(), Some("vn:01"), "kept");
        let total = {
            let g = known.generations();
            g.young.len() + g.old.len()
        };
        assert!(total <= Whereabouts::MOST, "{total} kept");
    }

    #[test]
    fn given_a_record_asked_for_when_the_others_are_forgotten_then_it_is_kept() {
        let known = Whereabouts::default();
        known.note("case-1", "vn:92");
        for i in 1..Whereabouts::MOST / 2 {
            known.note(&format!("other-{i}"), "vn:01");
        }
        // case-1 is now in the old generation; asked for, it is young again.
        known.note("other-50000", "vn:01");
        assert_eq!(known.of("case-1").as_deref(), Some("vn:92"));
        for i in Whereabouts::MOST / 2..Whereabouts::MOST + 10 {
            known.note(&format!("other-{i}"), "vn:01");
        }
        assert_eq!(known.of("other-1"), None, "not asked for: forgotten");
        assert_eq!(known.of("case-1").as_deref(), Some("vn:92"), "kept");
        // A record noted again in another province is where it was noted
        // last, in either generation.
        known.note("case-1", "vn:79");
        assert_eq!(known.of("case-1").as_deref(), Some("vn:79"));
    }

    #[tokio::test]
    async fn given_two_partitions_actives_then_the_served_provinces_is_taken() {
        let ha_noi = health_server(&["baove.active", "baove.partition.vn:01"]).await;
        let can_tho_standby = health_server(&["baove.partition.vn:92"]).await;
        let can_tho = health_server(&["baove.active", "baove.partition.vn:92"]).await;
        let every = format!("{can_tho_standby},{ha_noi},{can_tho}");
        let serving_can_tho = Upstream::new(&every, "vn:92").unwrap_or_else(|e| panic!("{e}"));
        serving_can_tho.refresh().await;
        assert_eq!(serving_can_tho.active_addr(), can_tho);
        // Without a province, the first active there is (not the first
        // address, taken until the watcher knows better).
        let any = Upstream::new(&every, "").unwrap_or_else(|e| panic!("{e}"));
        any.refresh().await;
        assert_eq!(any.active_addr(), ha_noi);
    }

    /// The address `channel` reaches: asked of a process SERVING its own
    /// address as a health name.
    async fn reaches(channel: Channel, addr: &str) -> bool {
        serving(&channel, addr).await
    }

    /// A process's health service SERVING on `names` and on its own
    /// address (to tell processes apart, [`reaches`]): its address, and
    /// its reporter to change what it says.
    async fn named_health_server(names: &[&str]) -> (String, tonic_health::server::HealthReporter) {
        let (reporter, service) = tonic_health::server::health_reporter();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = format!("http://{}", listener.local_addr().unwrap());
        for name in names.iter().copied().chain([addr.as_str()]) {
            reporter
                .set_service_status(name, tonic_health::ServingStatus::Serving)
                .await;
        }
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        (addr, reporter)
    }

    #[tokio::test]
    async fn given_a_call_for_another_province_then_that_partitions_active_is_found_unless_one_province_is_served()
     {
        let start = async |names: &[&str]| named_health_server(names).await.0;
        let ha_noi = start(&["baove.active", "baove.partition.vn:01"]).await;
        let can_tho_standby = start(&["baove.partition.vn:92"]).await;
        let can_tho = start(&["baove.active", "baove.partition.vn:92"]).await;
        let every = format!("{ha_noi},{can_tho_standby},{can_tho}");
        let national = Upstream::new(&every, "").unwrap_or_else(|e| panic!("{e}"));
        assert!(!national.serves_one_province());
        let found = national
            .channel_in("vn:92")
            .await
            .expect("Cần Thơ's active");
        assert!(reaches(found, &can_tho).await);
        assert!(national.channel_in("vn:79").await.is_none());
        // Only its standby given: that one (it names the active).
        let standby_only = Upstream::new(&format!("{ha_noi},{can_tho_standby}"), "")
            .unwrap_or_else(|e| panic!("{e}"));
        let found = standby_only.channel_in("vn:92").await.expect("a process");
        assert!(reaches(found, &can_tho_standby).await);
        // Every partition's active, in the order given, not the standby.
        national.refresh().await;
        let actives = national.actives();
        assert_eq!(actives.len(), 2);
        assert!(reaches(actives[0].clone(), &ha_noi).await);
        assert!(reaches(actives[1].clone(), &can_tho).await);
        // A console of one province never sends a call elsewhere.
        let ha_noi_console = Upstream::new(&every, "vn:01").unwrap_or_else(|e| panic!("{e}"));
        assert!(ha_noi_console.serves_one_province());
        assert!(ha_noi_console.channel_in("vn:92").await.is_none());
        assert_eq!(ha_noi_console.actives().len(), 1);
    }

    #[tokio::test]
    async fn given_a_provinces_active_found_then_it_is_taken_again_until_another_is_active() {
        let (ha_noi, _h) = named_health_server(&["baove.active", "baove.partition.vn:01"]).await;
        let (first, first_health) =
            named_health_server(&["baove.active", "baove.partition.vn:92"]).await;
        let (second, second_health) = named_health_server(&["baove.partition.vn:92"]).await;
        let national = Upstream::new(&format!("{ha_noi},{first},{second}"), "")
            .unwrap_or_else(|e| panic!("{e}"));
        national.refresh().await;
        for _ in 0..2 {
            let found = national
                .channel_in("vn:92")
                .await
                .expect("Cần Thơ's active");
            assert!(reaches(found, &first).await);
        }
        // A failover in Cần Thơ: once the watcher has seen it, calls go to
        // the new active.
        first_health
            .set_service_status("baove.active", tonic_health::ServingStatus::NotServing)
            .await;
        second_health
            .set_service_status("baove.active", tonic_health::ServingStatus::Serving)
            .await;
        national.refresh().await;
        let found = national
            .channel_in("vn:92")
            .await
            .expect("Cần Thơ's new active");
        assert!(reaches(found, &second).await);
        let found = national.channel_in("vn:01").await.expect("Hà Nội's active");
        assert!(reaches(found, &ha_noi).await);
    }

    #[tokio::test]
    async fn given_addresses_then_each_is_a_process_and_the_first_is_taken_until_known() {
        let up = Upstream::new(" http://127.0.0.1:1, http://127.0.0.1:2 ,", "")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(up.active_addr(), "http://127.0.0.1:1");
        // Nobody answers: nothing changes.
        up.refresh().await;
        assert_eq!(up.active_addr(), "http://127.0.0.1:1");
        assert!(Upstream::new(" , ", "").is_err());
        assert!(Upstream::new("not a uri with spaces", "").is_err());
    }
}
