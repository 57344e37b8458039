//! The console's settings: flags, or the environment (`BAOVE_CONSOLE_*`,
//! and the services' own `BAOVE_AUTH_PUBLIC_KEYS`, `BAOVE_ADDR_FILE`).

use std::net::SocketAddr;
use std::path::PathBuf;

/// How the console runs.
#[derive(Clone, Debug, clap::Parser)]
#[command(name = "baove-console", version, about)]
pub struct Config {
    /// Where it listens (HTTP). Only a loopback address: the console speaks
    /// plain HTTP, so in production a TLS-terminating proxy on the same
    /// host stands in front of it (and `--secure-cookies` is set).
    #[arg(long, env = "BAOVE_CONSOLE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Write the bound address here once listening (port 0 picks a free
    /// one).
    #[arg(long, env = "BAOVE_ADDR_FILE")]
    pub addr_file: Option<PathBuf>,
    /// intake's gRPC address; in a cluster every process's, separated by
    /// commas (calls go to the active one).
    #[arg(
        long,
        env = "BAOVE_CONSOLE_INTAKE",
        default_value = "http://127.0.0.1:50051"
    )]
    pub intake: String,
    /// casework's gRPC address (or every process's, as for intake).
    #[arg(
        long,
        env = "BAOVE_CONSOLE_CASEWORK",
        default_value = "http://127.0.0.1:50052"
    )]
    pub casework: String,
    /// referral's gRPC address (or every process's, as for intake).
    #[arg(
        long,
        env = "BAOVE_CONSOLE_REFERRAL",
        default_value = "http://127.0.0.1:50053"
    )]
    pub referral: String,
    /// In a deployment partitioned by province: the province this console
    /// serves (its unit id, e.g. vn:92). Of the processes given, only
    /// those of its partition are used (health
    /// `baove.partition.<province>` SERVING). Empty: no partitions, or
    /// the national hotline's console, which sends a report refused as
    /// another province's on to that province's intake.
    #[arg(long, env = "BAOVE_CONSOLE_PROVINCE", default_value = "")]
    pub province: String,
    /// The token issuers' public keys (PEM files, separated by commas): the
    /// same keys the services trust. A token that does not verify is not
    /// signed in.
    #[arg(
        long,
        env = "BAOVE_AUTH_PUBLIC_KEYS",
        value_delimiter = ',',
        required = true
    )]
    pub auth_public_keys: Vec<PathBuf>,
    /// DEVELOPMENT ONLY: the issuer's private key. When set, the sign-in
    /// page also offers to mint a token for any user and role. Never set it
    /// in production.
    #[arg(long, env = "BAOVE_CONSOLE_DEV_ISSUER_KEY")]
    pub dev_issuer_key: Option<PathBuf>,
    /// Mark cookies `Secure` (behind a TLS proxy).
    #[arg(long, env = "BAOVE_CONSOLE_SECURE_COOKIES")]
    pub secure_cookies: bool,
}

impl Config {
    /// Refuses settings the console must not run with.
    ///
    /// # Errors
    /// A non-loopback listen address.
    pub fn check(&self) -> Result<(), String> {
        if !self.listen.ip().is_loopback() {
            return Err(format!(
                "listen = {}: the console serves plain HTTP and so only on a loopback \
                 address; put a TLS-terminating proxy on the same host in front of it \
                 and set --secure-cookies",
                self.listen
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    #[test]
    fn given_a_public_listen_address_then_the_console_refuses_to_start() {
        let config =
            Config::try_parse_from(["c", "--auth-public-keys", "k.pem", "--listen", "0.0.0.0:80"])
                .unwrap_or_else(|e| panic!("{e}"));
        let refused = config.check().unwrap_err();
        assert!(refused.contains("loopback"), "{refused}");
        let local = Config::try_parse_from(["c", "--auth-public-keys", "a.pem,b.pem"])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(local.check(), Ok(()));
        assert_eq!(local.auth_public_keys.len(), 2);
    }
}
