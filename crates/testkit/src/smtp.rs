//! A small SMTP sink on a free loopback port: it speaks enough of SMTP
//! (RFC 5321: EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT; no TLS, no
//! authentication) for a real client such as `lettre` to hand it messages,
//! keeps each message it accepts, and can refuse the first ones with a
//! temporary failure (451), as a mail server that is busy does.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// One message the sink accepted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mail {
    /// The envelope sender (`MAIL FROM`).
    pub from: String,
    /// The envelope recipients (`RCPT TO`).
    pub to: Vec<String>,
    /// The message: headers and body, as sent (dot-stuffing undone).
    pub data: String,
}

/// The sink; it stops accepting when dropped (its thread ends with the
/// process).
pub struct SmtpSink {
    port: u16,
    accepted: Arc<Mutex<Vec<Mail>>>,
    refused: Arc<AtomicUsize>,
}

impl SmtpSink {
    /// Starts a sink that refuses the first `refuse_first` messages (451 at
    /// the end of DATA) and accepts the rest.
    ///
    /// # Errors
    /// When no loopback port can be bound.
    pub fn start(refuse_first: usize) -> Result<Self, String> {
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let refused = Arc::new(AtomicUsize::new(0));
        let (kept, count) = (accepted.clone(), refused.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (kept, count) = (kept.clone(), count.clone());
                std::thread::spawn(move || {
                    let _ = session(stream, &kept, &count, refuse_first);
                });
            }
        });
        Ok(Self {
            port,
            accepted,
            refused,
        })
    }

    /// Its port on 127.0.0.1.
    #[must_use]
    pub const fn port(&self) -> u16 {
        self.port
    }

    /// The messages accepted so far.
    #[must_use]
    pub fn accepted(&self) -> Vec<Mail> {
        self.accepted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// How many messages it refused.
    #[must_use]
    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }
}

/// One client's session.
fn session(
    stream: TcpStream,
    accepted: &Mutex<Vec<Mail>>,
    refused: &AtomicUsize,
    refuse_first: usize,
) -> std::io::Result<()> {
    let mut out = stream.try_clone()?;
    let mut lines = BufReader::new(stream);
    let mut say = |text: &str| out.write_all(format!("{text}\r\n").as_bytes());
    say("220 sink.test ESMTP")?;
    let mut mail = Mail::default();
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_owned();
        let verb = command
            .split([' ', ':'])
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        match verb.as_str() {
            "EHLO" => say("250-sink.test\r\n250 8BITMIME")?,
            "HELO" | "NOOP" => say("250 OK")?,
            "RSET" => {
                mail = Mail::default();
                say("250 OK")?;
            }
            "MAIL" => {
                mail = Mail {
                    from: address(&command),
                    ..Mail::default()
                };
                say("250 OK")?;
            }
            "RCPT" => {
                mail.to.push(address(&command));
                say("250 OK")?;
            }
            "DATA" => {
                say("354 end with <CRLF>.<CRLF>")?;
                let mut data = String::new();
                loop {
                    line.clear();
                    if lines.read_line(&mut line)? == 0 {
                        return Ok(());
                    }
                    let text = line.trim_end_matches(['\r', '\n']);
                    if text == "." {
                        break;
                    }
                    data.push_str(text.strip_prefix('.').unwrap_or(text));
                    data.push('\n');
                }
                mail.data = data;
                if refused.load(Ordering::SeqCst) < refuse_first {
                    refused.fetch_add(1, Ordering::SeqCst);
                    say("451 4.3.0 busy, try again later")?;
                } else {
                    accepted
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push(std::mem::take(&mut mail));
                    say("250 OK queued")?;
                }
            }
            "QUIT" => {
                say("221 bye")?;
                return Ok(());
            }
            _ => say("502 not implemented")?,
        }
    }
}

/// The address in `MAIL FROM:<a>` or `RCPT TO:<a>`.
fn address(command: &str) -> String {
    command
        .split_once('<')
        .and_then(|(_, rest)| rest.split_once('>'))
        .map_or_else(String::new, |(address, _)| address.to_owned())
}
