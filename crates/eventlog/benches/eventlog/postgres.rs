//! The peer the event log is measured beside (issue #15): an event store in
//! PostgreSQL with the same durability and the same work per append.
//!
//! One table, `(stream, seq)` as its primary key, a ~1 KiB JSON payload;
//! each append is one autocommitted statement that takes the next sequence
//! number of its stream (`max(seq) + 1`) and inserts the event, so that two
//! writers of one stream conflict on the key as two appends to one baove
//! stream conflict on the expected version. Each writer has its own
//! connection and its own stream, as each baove writer has its own stream.
//!
//! Durability: the run refuses a server with `fsync` or
//! `synchronous_commit` off (it would acknowledge before the disk has the
//! commit, which baove never does), and prints the server's settings and
//! version so that the figure can be read. The table is the run's own
//! (named after the process) and dropped at the end.

use std::time::{Duration, Instant};

use tokio_postgres::{Client, NoTls};

use crate::{Run, event_payload};

/// The peer, connected, with its table made.
pub struct Peer {
    url: String,
    table: String,
    admin: Client,
}

/// Connects to `url` with a task of its own driving the connection.
async fn connect(url: &str) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            eprintln!("PostgreSQL connection ended: {e}");
        }
    });
    Ok(client)
}

impl Peer {
    /// Connects to the server at `url`, checks that it syncs every commit,
    /// prints what it is, and makes the run's table.
    ///
    /// # Errors
    /// A text saying why the peer cannot be measured (no server, a
    /// setting that would make the comparison unfair).
    pub async fn start(url: &str) -> Result<Self, String> {
        let admin = connect(url)
            .await
            .map_err(|e| format!("cannot connect to BAOVE_BENCH_PG: {e}"))?;
        let setting = |row: Vec<tokio_postgres::Row>| -> String {
            row.first()
                .map(|r| r.get::<_, String>(0))
                .unwrap_or_default()
        };
        let mut settings = Vec::new();
        for name in [
            "server_version",
            "fsync",
            "synchronous_commit",
            "wal_sync_method",
            "full_page_writes",
        ] {
            let value = admin
                .query(&format!("SHOW {name}"), &[])
                .await
                .map(setting)
                .map_err(|e| format!("SHOW {name}: {e}"))?;
            settings.push((name, value));
        }
        println!(
            "PostgreSQL peer: {}",
            settings
                .iter()
                .map(|(n, v)| format!("{n}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        for (name, value) in &settings {
            if matches!(*name, "fsync" | "synchronous_commit") && value == "off" {
                return Err(format!(
                    "the server has {name}=off: it acknowledges commits before they are on the disk, \
                     which baove never does; set it on to compare"
                ));
            }
        }
        let table = format!("baove_bench_{}", std::process::id());
        admin
            .batch_execute(&format!(
                "DROP TABLE IF EXISTS {table};
                 CREATE TABLE {table} (
                     stream uuid NOT NULL,
                     seq bigint NOT NULL,
                     event_type text NOT NULL,
                     payload jsonb NOT NULL,
                     recorded_at timestamptz NOT NULL DEFAULT now(),
                     PRIMARY KEY (stream, seq)
                 )"
            ))
            .await
            .map_err(|e| format!("cannot make the table {table}: {e}"))?;
        Ok(Self {
            url: url.to_owned(),
            table,
            admin,
        })
    }

    /// `writers` connections, each appending one event at a time to its own
    /// stream for `run`.
    ///
    /// # Panics
    /// When a connection or an append fails: the figure would be wrong.
    pub async fn appends(&self, writers: usize, run: Duration) -> Run {
        let insert = format!(
            "INSERT INTO {t} (stream, seq, event_type, payload) \
             SELECT $1, COALESCE(MAX(seq), 0) + 1, 'BenchEvent', $2 FROM {t} WHERE stream = $1",
            t = self.table
        );
        let mut clients = Vec::new();
        for _ in 0..writers {
            let client = connect(&self.url).await.expect("a writer's connection");
            let statement = client.prepare(&insert).await.expect("the insert prepared");
            clients.push((client, statement));
        }
        let started = Instant::now();
        let mut tasks = Vec::new();
        for (client, statement) in clients {
            tasks.push(tokio::spawn(async move {
                let stream = uuid::Uuid::now_v7();
                let payload = event_payload();
                let mut latencies = Vec::new();
                while started.elapsed() < run {
                    let t = Instant::now();
                    let inserted = client
                        .execute(&statement, &[&stream, &payload])
                        .await
                        .expect("an append to the peer");
                    assert_eq!(inserted, 1, "one row per append");
                    latencies.push(t.elapsed());
                }
                latencies
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.expect("a writer task"));
        }
        Run::of(all, started.elapsed())
    }

    /// Drops the run's table.
    pub async fn finish(self) {
        if let Err(e) = self
            .admin
            .batch_execute(&format!("DROP TABLE IF EXISTS {}", self.table))
            .await
        {
            eprintln!("could not drop {}: {e}", self.table);
        }
    }
}
