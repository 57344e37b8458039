//! End-to-end: the service binaries as an operator runs them.
//! Run `cargo build --bins` first (the README's test command does).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod access;
mod backup;
mod casework;
mod cluster;
mod console;
mod corruption;
mod deploy;
mod foundation;
mod hardening;
mod intake;
mod logstream;
mod metrics;
mod partition;
mod privacy;
mod reference;
mod referral;
mod reporting;
mod security;
mod standby;
mod wipe;
mod witness;

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use baove_security::Role;
pub use baove_security::client::AuthChannel;
use tonic::transport::Channel;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

/// A tiny fixed-seed generator (a test's random choices must be the same
/// every run, and its seed printed, for a failure to be replayed).
pub struct Lcg(pub u64);

impl Lcg {
    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n.max(1)
    }
}

/// The directory holding the workspace's binaries: this test binary lives in
/// `<target>/<profile>/deps/`.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent()
        .and_then(|deps| deps.parent())
        .unwrap()
        .to_path_buf()
}

/// The keys every service of this test process trusts: a token issuer
/// (Ed25519) and the intake master key, in a directory kept for the
/// process's lifetime.
struct Keys {
    dir: PathBuf,
    issuer: baove_security::Issuer,
}

fn keys() -> &'static Keys {
    static KEYS: std::sync::OnceLock<Keys> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        baove_security::token::generate_key_pair(
            &dir.join("issuer.pem"),
            &dir.join("issuer.pub.pem"),
        )
        .unwrap();
        baove_security::seal::Key::create_master(&dir.join("master.key")).unwrap();
        baove_security::seal::Key::create_master(&dir.join("referral.key")).unwrap();
        let issuer = baove_security::Issuer::from_file(&dir.join("issuer.pem")).unwrap();
        Keys { dir, issuer }
    })
}

/// Who a test client is: the claims of its token.
#[derive(Clone, Debug)]
pub struct Identity {
    pub user: String,
    pub role: Role,
    pub agency: String,
    pub units: Vec<String>,
}

impl Identity {
    pub fn new(user: &str, role: Role, agency: &str, units: &[&str]) -> Self {
        Self {
            user: user.into(),
            role,
            agency: agency.into(),
            units: units.iter().map(|u| (*u).to_owned()).collect(),
        }
    }

    /// A signed token for this identity, valid for an hour.
    pub fn token(&self) -> String {
        keys()
            .issuer
            .issue(&self.user, self.role, &self.agency, &self.units, 3600)
            .unwrap()
    }
}

/// The fields an INVALID_ARGUMENT names, in order (its `BadRequest`
/// field violations); none when it carries no such details.
pub fn bad_fields(status: &tonic::Status) -> Vec<String> {
    tonic_types::StatusExt::get_details_bad_request(status)
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

/// Asserts that the hash chain of stream `stream_id` in `service`'s log
/// verifies (AuditService.VerifyStream, as an auditor).
pub async fn assert_chain_intact(service: &Service, stream_id: &str) {
    let verified = baove_proto::v1::audit_service_client::AuditServiceClient::new(
        service.channel_as(&auditor()).await,
    )
    .verify_stream(baove_proto::v1::VerifyStreamRequest {
        stream_id: stream_id.to_owned(),
    })
    .await
    .unwrap()
    .into_inner();
    assert!(verified.intact, "{stream_id}: {verified:?}");
}

/// The events of stream `stream_id` in `service`'s log, as stored (read
/// by an auditor, up to 1,000).
pub async fn stored_events(
    service: &Service,
    stream_id: &str,
) -> Vec<baove_proto::v1::EventEnvelope> {
    baove_proto::v1::audit_service_client::AuditServiceClient::new(
        service.channel_as(&auditor()).await,
    )
    .read_stream(baove_proto::v1::ReadStreamRequest {
        stream_id: stream_id.to_owned(),
        limit: 1000,
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner()
    .events
}

pub fn auditor() -> Identity {
    Identity::new("kiem-tra-1", Role::Auditor, "vn:92/thanh-tra", &[])
}

pub fn hotline_operator(user: &str) -> Identity {
    Identity::new(user, Role::HotlineOperator, "vn/tong-dai-111", &[])
}

pub fn police(user: &str, agency: &str) -> Identity {
    Identity::new(user, Role::Police, agency, &[])
}

pub fn province_officer(user: &str) -> Identity {
    Identity::new(user, Role::ProvinceOfficer, "vn:92/so-y-te", &[])
}

/// Today's date in Vietnam (UTC+7): (year, month, day).
pub fn vietnam_today() -> (i64, i64, i64) {
    let offset = time::UtcOffset::from_hms(7, 0, 0).unwrap();
    let today = time::OffsetDateTime::now_utc().to_offset(offset).date();
    (
        i64::from(today.year()),
        i64::from(u8::from(today.month())),
        i64::from(today.day()),
    )
}

/// One service binary running with its own data directory and port.
/// `baove-<name>` with the environment every test service runs with, on
/// the data directory `data` (`BAOVE_*`; port 0, its address written to
/// `<data>/grpc-addr`).
pub fn service_command(name: &str, nats_url: &str, data: &std::path::Path) -> Command {
    let addr_file = data.join("grpc-addr");
    let binary = bin_dir().join(format!("baove-{name}"));
    assert!(
        binary.is_file(),
        "{} is missing: run `cargo build --bins` before the tests",
        binary.display()
    );
    let mut command = Command::new(&binary);
    command
        .env("BAOVE_LISTEN", "127.0.0.1:0")
        .env("BAOVE_ADDR_FILE", &addr_file)
        .env("BAOVE_DATA_DIR", data)
        .env("BAOVE_AUTH_PUBLIC_KEYS", keys().dir.join("issuer.pub.pem"))
        .env("BAOVE_MASTER_KEY_FILE", keys().dir.join("master.key"))
        .env("BAOVE_REFERRAL_KEY_FILE", keys().dir.join("referral.key"))
        .env("BAOVE_NATS_URL", nats_url)
        .env(
            "BAOVE_REFERENCE_DIR",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/reference"),
        )
        .env("BAOVE_HANDOVER_RETRY_SECS", "1")
        .env(
            "BAOVE_STATISTICS_FILE",
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../deploy/statistics/indicators.json"
            ),
        )
        .env(
            "BAOVE_CALENDAR_FILE",
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../deploy/calendar/vietnam.json"
            ),
        )
        .env("BAOVE_CLOCK_OFFSET_FILE", data.join("clock-offset-ms"))
        .env(
            "RUST_LOG",
            std::env::var("TEST_LOG").unwrap_or_else(|_| "error".into()),
        );
    command
}

/// What a finished command wrote, stdout then stderr.
pub fn output_text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Each line of the log files `files` that names one of `ids`, prefixed
/// with its file's name (at most 40 per file): what each process said of
/// reports a failover test found stuck, for its failure to show.
pub fn lines_naming(files: &[std::path::PathBuf], ids: &[&str]) -> String {
    let mut out = String::new();
    for file in files {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let name = file.file_name().unwrap_or_default().to_string_lossy();
        let naming = text
            .lines()
            .filter(|line| ids.iter().any(|id| line.contains(id)))
            .take(40);
        for line in naming {
            out.push_str(&format!("{name}: {line}\n"));
        }
    }
    out
}

/// Copies directory `from` into `to`, recursively (a data directory, as an
/// operator's backup copy would).
pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

pub struct Service {
    pub name: &'static str,
    pub addr: String,
    pub data: tempfile::TempDir,
    child: Option<Child>,
}

impl Service {
    /// Starts `baove-<name>` configured only through the environment.
    pub fn start(name: &'static str, nats_url: &str) -> Self {
        Self::start_in(name, nats_url, tempfile::tempdir().unwrap())
    }

    /// Starts `baove-<name>` on an existing data directory.
    pub fn start_in(name: &'static str, nats_url: &str, data: tempfile::TempDir) -> Self {
        Self::start_with(name, nats_url, data, &[])
    }

    /// Starts `baove-<name>` on `data` with more environment (`env`).
    pub fn start_with(
        name: &'static str,
        nats_url: &str,
        data: tempfile::TempDir,
        env: &[(&str, String)],
    ) -> Self {
        Self::launch(name, nats_url, data, env, None)
            .unwrap_or_else(|(status, _)| panic!("baove-{name} exited ({status}) before listening"))
    }

    /// Starts `baove-<name>` on `data`: the running service once it
    /// listens, or, when it exits before, its exit status with what it
    /// wrote on stderr, and the data directory back.
    pub fn try_start_in(
        name: &'static str,
        nats_url: &str,
        data: tempfile::TempDir,
    ) -> Result<Self, (String, tempfile::TempDir)> {
        Self::try_start_in_with(name, nats_url, data, &[])
    }

    /// As [`Service::try_start_in`], with more environment (`env`).
    pub fn try_start_in_with(
        name: &'static str,
        nats_url: &str,
        data: tempfile::TempDir,
        env: &[(&str, String)],
    ) -> Result<Self, (String, tempfile::TempDir)> {
        let stderr = tempfile::NamedTempFile::new().unwrap();
        Self::launch(name, nats_url, data, env, Some(stderr.path())).map_err(|(status, data)| {
            (
                format!(
                    "{status}: {}",
                    std::fs::read_to_string(stderr.path()).unwrap_or_default()
                ),
                data,
            )
        })
    }

    /// Starts `baove-<name>` writing its log, at `rust_log`, to `log`.
    pub fn start_logging(
        name: &'static str,
        nats_url: &str,
        log: &std::path::Path,
        rust_log: &str,
        log_format: &str,
    ) -> Self {
        Self::launch(
            name,
            nats_url,
            tempfile::tempdir().unwrap(),
            &[
                ("RUST_LOG", rust_log.to_owned()),
                ("BAOVE_LOG_FORMAT", log_format.to_owned()),
            ],
            Some(log),
        )
        .unwrap_or_else(|(status, _)| panic!("baove-{name} exited ({status}) before listening"))
    }

    fn launch(
        name: &'static str,
        nats_url: &str,
        data: tempfile::TempDir,
        env: &[(&str, String)],
        stderr_file: Option<&std::path::Path>,
    ) -> Result<Self, (std::process::ExitStatus, tempfile::TempDir)> {
        // Port 0: the service binds a port the system chooses and writes it
        // to a file, so parallel tests can never race for a port.
        let addr_file = data.path().join("grpc-addr");
        let _ = std::fs::remove_file(&addr_file);
        let child = service_command(name, nats_url, data.path())
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::null())
            .stderr(match stderr_file {
                Some(file) => std::fs::File::create(file).unwrap().into(),
                None if std::env::var_os("TEST_LOG").is_some() => Stdio::inherit(),
                None => Stdio::null(),
            })
            .spawn()
            .unwrap();
        let mut child = child;
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = loop {
            if let Ok(text) = std::fs::read_to_string(&addr_file)
                && !text.is_empty()
            {
                break text;
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err((status, data));
            }
            assert!(
                Instant::now() < deadline,
                "baove-{name} did not listen within 30 s"
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        Ok(Self {
            name,
            addr: format!("http://{addr}"),
            data,
            child: Some(child),
        })
    }

    /// A connection as the usual user of this service: a hotline operator
    /// (`op-17`) on intake, an officer (`cb-ninh-kieu-1`, province scope)
    /// on casework, a police officer (`ca-301` of Ninh Kiều police) on
    /// referral. Tests of who may do what use [`Service::channel_as`].
    pub async fn channel(&self) -> AuthChannel {
        let identity = match self.name {
            "intake" => hotline_operator("op-17"),
            "casework" => province_officer("cb-ninh-kieu-1"),
            _ => police("ca-301", "vn:31135/cong-an"),
        };
        self.channel_as(&identity).await
    }

    /// A connection sending `identity`'s token.
    pub async fn channel_as(&self, identity: &Identity) -> AuthChannel {
        self.channel_with_token(&identity.token(), "e2e test").await
    }

    /// A connection sending exactly `token` (empty: none).
    pub async fn channel_with_token(&self, token: &str, purpose: &str) -> AuthChannel {
        // Lazy: a service being restarted answers UNAVAILABLE, it does not
        // fail the connection here.
        let channel = Channel::from_shared(self.addr.clone())
            .unwrap()
            .connect_lazy();
        tonic::service::interceptor::InterceptedService::new(
            channel,
            baove_security::client::Bearer::new(token, purpose).unwrap(),
        )
    }

    /// The health status of `service`, or None while the port does not answer.
    pub async fn health(&self, service: &str) -> Option<ServingStatus> {
        let channel = Channel::from_shared(self.addr.clone())
            .unwrap()
            .connect()
            .await
            .ok()?;
        let response = HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: service.to_owned(),
            })
            .await
            .ok()?;
        Some(response.into_inner().status())
    }

    /// Waits (up to 30 s) until `service` reports `status`.
    pub async fn wait_health(&self, service: &str, status: ServingStatus) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let now = self.health(service).await;
            if now == Some(status) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} health {service:?} is {now:?}, not {status:?}",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Moves this service's clock `ms` ahead of the real one.
    pub fn move_clock(&self, ms: i64) {
        std::fs::write(self.data.path().join("clock-offset-ms"), ms.to_string()).unwrap();
    }

    /// Kills it with SIGKILL, as a power cut or the OOM killer would, and
    /// waits for it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// Kills it with SIGKILL and starts it again on the same data directory
    /// (on a new port).
    pub fn kill_and_restart(&mut self, nats_url: &str) {
        self.kill();
        let data = std::mem::replace(&mut self.data, tempfile::tempdir().unwrap());
        *self = Self::start_in(self.name, nats_url, data);
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        self.signal(libc::SIGTERM);
    }

    /// Freezes the process (SIGSTOP), as a hung host would.
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// Lets a frozen process go on (SIGCONT).
    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    fn signal(&self, signal: i32) {
        let pid = i32::try_from(self.child.as_ref().unwrap().id()).unwrap();
        #[allow(unsafe_code)]
        // SAFETY: kill(2) on our own child with a valid signal.
        unsafe {
            libc::kill(pid, signal);
        }
    }

    /// Gives up the data directory (the process must have exited).
    pub fn into_data(mut self) -> tempfile::TempDir {
        assert!(self.child.is_none(), "{} still runs", self.name);
        std::mem::replace(&mut self.data, tempfile::tempdir().unwrap())
    }

    /// The process's exit status if it has exited, without waiting.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().unwrap())
    }

    /// Waits (up to 30 s) for the process to exit.
    pub async fn exit_status(&mut self) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(30);
        let child = self.child.as_mut().unwrap();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit within 30 s of SIGTERM",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
