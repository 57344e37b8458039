//! baove's domain: the types and rules of child-protection intake and case
//! handling, pure (no I/O, no clock, no async). Services turn requests into
//! these types at the edge, decide with them, and store their events.
//!
//! # Layout
//! - [`event`]: [`event::StoredEvent`]: stored names, schema versions,
//!   decoding and upcasting, one enum per aggregate.
//! - [`text`]: NFC normalisation, diacritic-free search keys, phone numbers.
//! - [`time`](mod@crate::time): dates and instants in Vietnam time (UTC+7).
//! - [`violation`]: [`Violation`]/[`Violations`]: every bad field at once.
//! - [`reference`](mod@crate::reference): administrative units and agencies, names valid over time.
//! - [`intake`]: Mẫu 01 reports, police notifications, their rules, the
//!   intake events, possible-duplicate matching.
//! - [`calendar`]: working days, weekends and holidays for deadlines.
//! - [`case`]: the case, its procedure and deadlines.
//! - [`referral`]: interagency handoffs, consent, acknowledgement deadlines.
//! - [`stats`]: the Thông tư 13 indicators and handling figures from case events.

pub mod calendar;
pub mod case;
pub mod event;
pub mod intake;
pub mod packed;
pub mod reference;
pub mod referral;
pub mod stats;
pub mod text;
pub mod time;
pub mod violation;

pub use violation::{Violation, Violations};
