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
    let payload = envelope.encode()?;
    let message = PublishMessage::build()
        .payload(payload.into())
        .message_id(envelope.event_id.to_string())
        .header(HEADER_EVENT_TYPE, envelope.event_type.as_str())
        .header(HEADER_STREAM_ID, envelope.stream_id.to_string().as_str())
        .header(HEADER_CORRELATION_ID, envelope.correlation_id.as_str());
    let ack: PublishAckFuture = js
        .send_publish(subject_for(spec, envelope), message)
        .await
        .map_err(|e| BusError::Unavailable(format!("publish {}: {e}", envelope.event_id)))?;
    let ack = ack
        .await
        .map_err(|e| BusError::Unavailable(format!("ack for {}: {e}", envelope.event_id)))?;
    Ok(Published {
        duplicate: ack.duplicate,
        sequence: ack.sequence,
    })
}
