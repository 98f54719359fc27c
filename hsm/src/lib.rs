//! A software security module for the SSN switch, with no I/O: what the switch needs for PIN
//! verification and key change, and what the admin API needs for terminal keys and PVVs
//! (`../shared/spec/iso8583-host-interface.md` §3.1 and §8).
//!
//! - [`SoftHsm`]: the operations on keys as stored (wrapped under the master key); the API the
//!   switch and the admin API call.
//! - [`TdesKey`], [`CheckValue`]: double-length 3DES keys (K1 K2 K1) and key check values.
//! - [`ClearPinBlock`], [`EncryptedPinBlock`]: ISO 9564-1 format 0 PIN blocks under a TPK.
//! - [`Pvv`], [`Pvki`], [`verify_pin`]: the Visa PVV method.
//! - [`MasterKey`], [`WrappedKey`], [`KeyUsage`]: AES-256-GCM key wrapping at rest.
//! - [`KeyChange`]: a new TPK (and TAK) under the terminal's TMK for DE48 (DE70 = 101).
//! - [`retail_mac`], [`verify_retail_mac`]: ISO 9797-1 MAC algorithm 3 (ANSI X9.19) with
//!   padding method 1, the MAC of host interface §10.
//! - [`Pin`]: a PIN that never prints, and random PINs for card issue.
//!
//! Architecture invariants: nothing here reads the environment, files or the network (the only
//! call out is to the operating system's random number generator); no input makes it panic;
//! no `Debug`, `Display` or error text shows key material, a PIN, a PIN block or a PAN; clear
//! keys, PINs and PIN blocks are zeroized when dropped.

mod account;
mod error;
mod hex;
mod key;
mod key_change;
mod mac;
mod master;
mod pin;
mod pin_block;
mod pvv;
mod soft;

pub use error::{HsmError, PinBlockFault};
pub use key::{CheckValue, TdesKey};
pub use key_change::{KEY_CHANGE_DE48_CHARS, KEY_CHANGE_WITH_TAK_DE48_CHARS, KeyChange};
pub use mac::{MAC_BYTES, retail_mac, verify_retail_mac};
pub use master::{KeyUsage, MasterKey, WrappedKey};
pub use pin::Pin;
pub use pin_block::{ClearPinBlock, EncryptedPinBlock};
pub use pvv::{Pvki, Pvv, verify_pin};
pub use soft::{REFUSED_PIN_CANDIDATES_MAX, SoftHsm, TerminalKeyChange, WORKING_KEYS_MAX};
