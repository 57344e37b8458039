//! Test kit: starts a real `nats-server` with JetStream on a free loopback
//! port and its own store directory, and stops it when dropped. Tests never
//! touch a server that may already run on 4222.
//!
//! # Layout
//! - [`NatsServer`]: start, stop, kill, restart on the same port and store.
//! - [`NatsCluster`]: three servers clustered over loopback routes, each
//!   with its own store (JetStream clustering).
//! - [`free_port`]: a loopback port nobody listens on.
//! - [`lasting_port`]: one outside the system's ephemeral range, for a
//!   server a test kills and starts again on the same port.
//! - [`wait_for_port`]: wait until something accepts TCP connections.
//! - [`fixtures`]: the directory and callers of the scope rules' unit
//!   tests.
//! - [`replicas`]: wait until a replicated stream has a leader and
//!   current replicas (before a test kills a node).
//! - [`smtp::SmtpSink`]: a small SMTP server that keeps what it is sent
//!   (alert e-mail in tests).

pub mod fixtures;
pub mod replicas;
pub mod smtp;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A nats-server child process with JetStream.
pub struct NatsServer {
    port: u16,
    /// Its `server_name`, unique, so the kit knows its own server.
    name: String,
    store: tempfile::TempDir,
    binary: PathBuf,
    child: Option<Child>,
    /// A configuration file (`-c`), e.g. with users and permissions.
    config: Option<PathBuf>,
}

/// Where Debian installs nats-server, tried after `PATH`.
const FALLBACK: &str = "/usr/sbin/nats-server";

/// The nats-server binary: on `PATH`, else where Debian installs it.
///
/// # Errors
/// Saying how to install it, when it is in neither place.
pub fn nats_server_binary() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join("nats-server");
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    let fallback = PathBuf::from(FALLBACK);
    if fallback.is_file() {
        return Ok(fallback);
    }
    Err(
        "nats-server not found on PATH or at /usr/sbin/nats-server; install it with \
         `sudo apt-get install nats-server` (Debian) and run the tests again"
            .to_owned(),
    )
}

impl NatsServer {
    /// Starts nats-server with JetStream on a free port and waits until it
    /// accepts connections.
    ///
    /// # Errors
    /// When the binary is missing (the message says how to install it) or
    /// the server does not come up within 10 s.
    pub fn start() -> Result<Self, String> {
        // A free port can be taken by a parallel test between our probe and
        // the server's bind: then the server exits at once, and we try
        // another port rather than talk to someone else's server.
        let mut last = String::new();
        for _ in 0..5 {
            match Self::start_on(free_port()?) {
                Ok(server) => return Ok(server),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Starts nats-server with JetStream on `port` (for a test where a
    /// client was told the address before the server existed).
    ///
    /// # Errors
    /// As [`NatsServer::start`].
    pub fn start_on(port: u16) -> Result<Self, String> {
        Self::start_on_with(port, None)
    }

    /// Starts nats-server as [`NatsServer::start`] does, with `config` as
    /// its configuration file's text (users, permissions...); address, port,
    /// JetStream and store still come from the command line.
    ///
    /// # Errors
    /// As [`NatsServer::start`].
    pub fn start_with_config(config: &str) -> Result<Self, String> {
        let mut last = String::new();
        for _ in 0..5 {
            match Self::start_on_with(free_port()?, Some(config)) {
                Ok(server) => return Ok(server),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn start_on_with(port: u16, config: Option<&str>) -> Result<Self, String> {
        let binary = nats_server_binary()?;
        let store = tempfile::tempdir().map_err(|e| format!("temp dir for the nats store: {e}"))?;
        let config = match config {
            None => None,
            Some(text) => {
                let path = store.path().join("nats.conf");
                std::fs::write(&path, text)
                    .map_err(|e| format!("writing {}: {e}", path.display()))?;
                Some(path)
            }
        };
        let mut server = Self {
            port,
            name: unique_name(),
            store,
            binary,
            child: None,
            config,
        };
        server.spawn()?;
        Ok(server)
    }

    fn spawn(&mut self) -> Result<(), String> {
        let mut command = Command::new(&self.binary);
        if let Some(config) = &self.config {
            command.arg("-c").arg(config);
        }
        let child = command
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-n",
                &self.name,
                "-js",
                "-sd",
            ])
            .arg(self.store.path())
            // Its working directory is its store too: nats-server 2.9 was
            // seen writing a consumer's `meta.inf` and `meta.sum` to its
            // working directory once, while a cluster node was killed and
            // started again. They belong with the rest of its files, which
            // go when the test ends, not in the test's own directory.
            .current_dir(self.store.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting {}: {e}", self.binary.display()))?;
        self.child = Some(child);
        // Something answering on the port is not enough: while this server
        // was stopped (a restart) or between the probe and the bind (a
        // start), a parallel test's server may have taken the port, and our
        // process takes a moment to fail. Only a server that introduces
        // itself by our name is ours.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if introduces_itself_as(self.port, &self.name) {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(format!(
                    "nats-server exited ({status}): port {} is taken",
                    self.port
                ));
            }
            if Instant::now() >= deadline {
                self.stop();
                return Err(format!(
                    "nats-server {} did not answer on 127.0.0.1:{} within 10 s",
                    self.name, self.port
                ));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// The client URL, `nats://127.0.0.1:<port>`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The port it listens on (kept across [`NatsServer::restart`]).
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The JetStream store directory.
    #[must_use]
    pub fn store_dir(&self) -> &Path {
        self.store.path()
    }

    /// Stops the server (SIGTERM, so JetStream writes its state) and waits.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(&mut child);
        }
    }

    /// Kills it at once (SIGKILL: no goodbye to the cluster, no flush), as
    /// a machine that dies; [`NatsServer::restart`] brings it back.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether it is running (started and not stopped or killed).
    #[must_use]
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Its `server_name`, as JetStream names it (stream leaders, replicas).
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Stops it, deletes everything JetStream stored (as a crash of a
    /// server whose file store had not synced would), and starts it again
    /// on the same port, with the same configuration (a cluster node
    /// rejoins its cluster with nothing stored).
    ///
    /// # Errors
    /// As [`NatsServer::start`], or when the store cannot be emptied.
    pub fn restart_empty(&mut self) -> Result<(), String> {
        self.stop();
        let entries = std::fs::read_dir(self.store.path())
            .map_err(|e| format!("reading the nats store: {e}"))?;
        for entry in entries {
            let path = entry
                .map_err(|e| format!("reading the nats store: {e}"))?
                .path();
            if self.config.as_ref() == Some(&path) {
                // Its configuration (a cluster node's routes) is kept there.
                continue;
            }
            let removed = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            removed.map_err(|e| format!("emptying the nats store at {}: {e}", path.display()))?;
        }
        self.spawn()
    }

    /// Starts it again on the same port with the same store.
    ///
    /// # Errors
    /// As [`NatsServer::start`].
    pub fn restart(&mut self) -> Result<(), String> {
        self.stop();
        self.spawn()
    }
}

/// Three nats-servers with JetStream, clustered over loopback: each has
/// its own client port, route port and store; every route lists all three.
/// A stream created with 3 replicas lives on all of them, and any one can
/// be killed and brought back.
pub struct NatsCluster {
    /// The nodes, in start order.
    pub nodes: Vec<NatsServer>,
}

impl NatsCluster {
    /// Starts three clustered servers and waits until each answers; the
    /// JetStream meta group may need a few more seconds to elect its leader
    /// (clients retry until it has).
    ///
    /// # Errors
    /// As [`NatsServer::start`].
    pub fn start() -> Result<Self, String> {
        let mut last = String::new();
        for _ in 0..5 {
            match Self::try_start() {
                Ok(cluster) => return Ok(cluster),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn try_start() -> Result<Self, String> {
        let cluster_name = unique_name();
        // Outside the ephemeral range: a node killed and started again on
        // its ports must find them free, and a parallel test binding port
        // 0 could otherwise be given one meanwhile.
        let ports: Vec<(u16, u16)> = (0..3)
            .map(|_| Ok((lasting_port()?, lasting_port()?)))
            .collect::<Result<_, String>>()?;
        let routes = ports
            .iter()
            .map(|(_, route)| format!("nats-route://127.0.0.1:{route}"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut nodes = Vec::new();
        for (client, route) in &ports {
            let config = format!(
                "cluster {{\n  name: {cluster_name}\n  listen: 127.0.0.1:{route}\n  routes: [{routes}]\n}}\n"
            );
            nodes.push(NatsServer::start_on_with(*client, Some(&config))?);
        }
        Ok(Self { nodes })
    }

    /// Every node's client URL, separated by commas (what a service's
    /// `nats_url` holds in a cluster).
    #[must_use]
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(NatsServer::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The node whose `server_name` is `name`.
    pub fn node_named(&mut self, name: &str) -> Option<&mut NatsServer> {
        self.nodes.iter_mut().find(|n| n.name == name)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Sends SIGTERM, waits up to 5 s, then SIGKILL.
fn terminate(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        #[allow(unsafe_code)]
        // SAFETY: kill(2) with a pid we spawned and a valid signal number.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A server name no other test server of this machine has.
fn unique_name() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "baove-test-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Whether the NATS server on 127.0.0.1:`port` greets with `name` as its
/// `server_name` (the INFO line every NATS server sends first).
fn introduces_itself_as(port: u16, name: &str) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    if stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .is_err()
    {
        return false;
    }
    let mut info = String::new();
    if BufReader::new(stream).read_line(&mut info).is_err() {
        return false;
    }
    info.starts_with("INFO ") && info.contains(&format!("\"server_name\":\"{name}\""))
}

/// A loopback port nobody listens on, below the system's ephemeral range
/// (Linux's default starts at 32768): one the system never hands to a bind
/// on port 0 or to an outgoing connection, so that a server killed and
/// started again on it finds it free however many tests run beside it.
/// Picked at random between 20000 and 32000; only two tests picking the
/// same one at once can collide.
///
/// # Errors
/// When no port of the range can be bound after many tries.
pub fn lasting_port() -> Result<u16, String> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
        ^ (u64::from(std::process::id()) << 20);
    for _ in 0..200 {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        // A step coprime with 12000 walks the whole range.
        let port = 20_000 + (seed.wrapping_add(n.wrapping_mul(7_919)) % 12_000) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    Err("no free port between 20000 and 32000".to_owned())
}

/// A loopback TCP port that nothing listens on right now, as the system
/// gives for port 0.
///
/// # Errors
/// When the OS gives no port.
pub fn free_port() -> Result<u16, String> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| format!("binding a free port: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("reading the free port: {e}"))
}

/// Waits until 127.0.0.1:`port` accepts a TCP connection.
///
/// # Errors
/// When it does not within `timeout`.
pub fn wait_for_port(port: u16, timeout: Duration) -> Result<(), String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    Err(format!(
        "nothing accepted connections on 127.0.0.1:{port} within {timeout:?}"
    ))
}

#[cfg(test)]
mod tests {
    use super::NatsServer;

    #[test]
    fn given_a_port_held_by_another_server_then_starting_on_it_fails() {
        let other = NatsServer::start().unwrap();
        let taken = NatsServer::start_on(other.port());
        assert!(
            taken.is_err(),
            "a server on a taken port was taken for ours"
        );
    }

    #[test]
    fn given_a_port_taken_while_stopped_then_the_restart_fails_instead_of_using_it() {
        let mut first = NatsServer::start().unwrap();
        first.stop();
        let squatter = NatsServer::start_on(first.port()).unwrap();
        let restarted = first.restart();
        assert!(
            restarted.is_err(),
            "restarted onto another test's server on port {}",
            squatter.port()
        );
        drop(squatter);
        // Once the port is free again, the restart works.
        first.restart().unwrap();
        assert_eq!(first.url(), format!("nats://127.0.0.1:{}", first.port()));
    }
}
