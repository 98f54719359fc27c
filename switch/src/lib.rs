//! The SSN switch: ISO 8583 listeners for E-Warong terminals (host interface,
//! `../shared/spec/iso8583-host-interface.md`) in front of the ledger.
//!
//! - [`net`]: the TCP side — accept loop, connection limit, framing, pipelining, timeouts,
//!   graceful shutdown. Knows nothing of cards or money.
//! - [`host`]: the card host — every request of the host interface answered in §6's order,
//!   with the ledger for money and the HSM for PINs and keys.
//! - [`fields`]: the private field formats (basket, balances, totals, original data).
//! - [`fingerprint`]: §7's "same content" of a purchase, which tells a duplicate from a
//!   conflict.
//! - [`mac`]: message authentication on the wire (§10): the MAC field, its input, checking a
//!   request's MAC and signing an answer.
//! - [`keys`]: the master key's check value and the issuer PVK as the registry records them,
//!   so every node on a shared registry holds the same keys or refuses to start.

pub mod demo;
pub mod fields;
pub mod fingerprint;
pub mod host;
pub mod keys;
pub mod mac;
pub mod net;
