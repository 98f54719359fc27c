//! The SSN switch: ISO 8583 listeners for E-Warong terminals (host interface,
//! `../shared/spec/iso8583-host-interface.md`) in front of the ledger.
//!
//! - [`net`]: the TCP side — accept loop, connection limit, framing, pipelining, timeouts,
//!   graceful shutdown. Knows nothing of cards or money.

pub mod net;
