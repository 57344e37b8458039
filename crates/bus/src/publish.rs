//! Publishing one envelope per message.

use async_nats::jetstream::{self, context::PublishAckFuture, message::PublishMessage};
use baove_eventlog::Envelope;

use crate::{BusError, StreamSpec};

/// Header carrying the event's correlation id (also in the payload), so that
/// traces can follow a flow without decoding it.
pub const HEADER_CORRELATION_ID: &str = "Baove-Correlation-Id";
/// Header carrying the event type.
pub const HEADER_EVENT_TYPE: &str = "Baove-Event-Type";
/// Header carrying the stream id.
pub const HEADER_STREAM_ID: &str = "Baove-Stream-Id";

/// The subject an envelope is published on: `<prefix>.<event type>`.
#[must_use]
pub fn subject_for(spec: StreamSpec, envelope: &Envelope) -> String {
    format!("{}.{}", spec.prefix, envelope.event_type)
}

/// What JetStream said of a publish.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Published {
    /// It had already stored a message with that id (a re-publish).
    pub duplicate: bool,
    /// The stream sequence of the stored message.
    pub sequence: u64,
}

/// Publishes `envelope` (its stored JSON) with `Nats-Msg-Id` = event id and
/// waits for JetStream's ack.
///
/// # Errors
/// [`BusError::Unavailable`] when the message could not be sent or the ack
/// did not come; the caller retries with the same envelope.
pub async fn publish(
    js: &jetstream::Context,
    spec: StreamSpec,
    envelope: &Envelope,
) -> Result<Published, BusError> {
    send(js, spec, envelope, None).await?.acked().await
}

/// A message sent and not yet acknowledged ([`send`]).
pub struct Sent {
    event_id: uuid::Uuid,
    ack: PublishAckFuture,
}

/// Why JetStream did not store a message [`send`] sent.
#[derive(Debug)]
pub enum NotStored {
    /// The stream's last message is not the one it was sent after
    /// (`Nats-Expected-Last-Msg-Id`): the one before it was not stored, or
    /// another publisher's message came between. Nothing was stored.
    NotAfter(String),
    /// It may or may not have been stored (no answer, no stream, a lost
    /// connection): send it again, and JetStream drops it if it was.
    Failed(BusError),
}

impl Sent {
    /// Waits for JetStream's ack.
    ///
    /// # Errors
    /// [`BusError::Unavailable`] when the ack did not come or JetStream
    /// refused the message.
    pub async fn acked(self) -> Result<Published, BusError> {
        self.stored().await.map_err(|e| match e {
            NotStored::NotAfter(why) => BusError::Unavailable(why),
            NotStored::Failed(e) => e,
        })
    }

    /// As [`Sent::acked`], telling a message refused because it was not
    /// sent right after the stream's last one from any other failure.
    ///
    /// # Errors
    /// [`NotStored`].
    pub async fn stored(self) -> Result<Published, NotStored> {
        use async_nats::jetstream::context::PublishErrorKind;
        match self.ack.await {
            Ok(ack) => Ok(Published {
                duplicate: ack.duplicate,
                sequence: ack.sequence,
            }),
            Err(e) if e.kind() == PublishErrorKind::WrongLastMessageId => Err(NotStored::NotAfter(
                format!("{} not stored: {e}", self.event_id),
            )),
            Err(e) => Err(NotStored::Failed(BusError::Unavailable(format!(
                "ack for {}: {e}",
                self.event_id
            )))),
        }
    }
}

/// Sends `envelope` (its stored JSON) with `Nats-Msg-Id` = event id, and,
/// when `after` names an event id, `Nats-Expected-Last-Msg-Id` = `after`:
/// JetStream then stores it only right after that event, so a message of
/// a pipeline can never overtake one before it that was lost. Returns once
/// it is sent, without waiting for the ack ([`Sent::stored`]): messages
/// sent one after another on one connection reach the stream in that
/// order. A re-publish is acknowledged as a duplicate whatever `after`
/// says (JetStream checks the message id first).
///
/// # Errors
/// [`BusError::Unavailable`] when the message could not be sent.
pub async fn send(
    js: &jetstream::Context,
    spec: StreamSpec,
    envelope: &Envelope,
    after: Option<&str>,
) -> Result<Sent, BusError> {
    let payload = envelope.encode()?;
    let mut message = PublishMessage::build()
        .payload(payload.into())
        .message_id(envelope.event_id.to_string())
        .header(HEADER_EVENT_TYPE, envelope.event_type.as_str())
        .header(HEADER_STREAM_ID, envelope.stream_id.to_string().as_str())
        .header(HEADER_CORRELATION_ID, envelope.correlation_id.as_str());
    if let Some(after) = after {
        message = message.expected_last_message_id(after);
    }
    let ack = js
        .send_publish(subject_for(spec, envelope), message)
        .await
        .map_err(|e| BusError::Unavailable(format!("publish {}: {e}", envelope.event_id)))?;
    Ok(Sent {
        event_id: envelope.event_id,
        ack,
    })
}
