//! Who may do what in baove, and how confidential fields are kept.
//!
//! - [`token`]: bearer tokens. A signed JWT (EdDSA over Ed25519) carries the
//!   user id, [`Role`], agency id, the administrative units in scope and an
//!   expiry. [`Verifier`] checks it against the configured public keys;
//!   [`Issuer`] mints one with a local private key (`baove token issue`).
//! - [`policy`]: the one table of which role may call which RPC (deny by
//!   default). Scope (which commune, which agency) is checked by each
//!   service on the record it reads, with [`Caller`].
//! - [`seal`]: per-case data keys and the AEAD that seals confidential
//!   fields before they are hashed into the log; the data keys are kept
//!   wrapped under a master key, and destroying one erases those fields.
//!
//! The signed checkpoints of the logs are the audit feature's
//! (`baove-audit`).
//! - [`client`]: the client side: an interceptor that sends the token.

pub mod client;
pub mod policy;
pub mod seal;
pub mod token;

pub use policy::{Access, allowed};
pub use token::{Caller, Claims, Issuer, Role, TokenError, Verifier};
