//! The operations the switch and the admin API call, on keys as they are stored.
//!
//! Every key crosses this API wrapped under the master key, as keys cross a hardware HSM's API
//! wrapped under its LMK; clear keys never leave the module. That is the seam where a
//! hardware HSM can later replace [`SoftHsm`] without the callers changing shape.
//!
//! Like a hardware HSM's key cache, the module keeps the keys it unwrapped for PIN checks
//! (TPKs and the PVK, with their 3DES key schedules) in its own memory, at most
//! [`WORKING_KEYS_MAX`], so that a purchase does not pay two AES-GCM unwraps and two key
//! schedules. The master key lives in the same memory, so this widens nothing; the cached
//! keys are zeroized when dropped, like every [`TdesKey`].

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};

use zeroize::Zeroizing;

use crate::mac::{self, MAC_BYTES};
use crate::{
    CheckValue, EncryptedPinBlock, HsmError, KeyChange, KeyUsage, MasterKey, Pin, Pvki, Pvv,
    TdesKey, WrappedKey, pvv,
};

/// Unwrapped keys kept for PIN checks (one per terminal, plus the PVK); past it the cache is
/// emptied and refilled.
pub const WORKING_KEYS_MAX: usize = 16_384;

/// PINs tried after the right one by [`SoftHsm::refused_pin`]; with one PIN in 10,000
/// sharing a PVV, running out means the PVK or the PVV algorithm is broken.
pub const REFUSED_PIN_CANDIDATES_MAX: u64 = 100;

/// A software security module: the master key and the operations under it.
pub struct SoftHsm {
    /// Unwraps every stored key.
    master: MasterKey,
    /// Keys unwrapped for PIN checks, by their wrapped form (which names the usage).
    working: RwLock<HashMap<WrappedKey, Arc<TdesKey>>>,
}

impl fmt::Debug for SoftHsm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SoftHsm")
            .field("master", &self.master)
            .finish_non_exhaustive()
    }
}

/// A terminal key change, ready to store and to answer (host interface §3.1 and §10, DE70 =
/// 101).
pub struct TerminalKeyChange {
    /// The new TPK, wrapped for the terminal's record.
    pub tpk: WrappedKey,
    /// Its check value, for the record and for operators.
    pub check_value: CheckValue,
    /// The new TAK, wrapped, and its check value, for a terminal that MACs its messages.
    pub tak: Option<(WrappedKey, CheckValue)>,
    /// DE48 of the 0810 ([`KeyChange`]): the new TPK under the TMK and its check value (38
    /// characters), then, with a TAK, the new TAK under the TMK and its check value (76 in all).
    pub de48: String,
}

impl SoftHsm {
    /// A module working under `master`.
    pub fn new(master: MasterKey) -> SoftHsm {
        SoftHsm {
            master,
            working: RwLock::new(HashMap::new()),
        }
    }

    /// `wrapped` unwrapped for `usage`, from the working-key cache when it was unwrapped
    /// before. Only keys that unwrap are kept.
    fn working_key(&self, usage: KeyUsage, wrapped: &WrappedKey) -> Result<Arc<TdesKey>, HsmError> {
        if wrapped.usage() == usage {
            let working = self.working.read().unwrap_or_else(|p| p.into_inner());
            if let Some(key) = working.get(wrapped) {
                return Ok(Arc::clone(key));
            }
        }
        let key = Arc::new(self.master.unwrap(usage, wrapped)?);
        let mut working = self.working.write().unwrap_or_else(|p| p.into_inner());
        if working.len() >= WORKING_KEYS_MAX {
            working.clear();
        }
        working.insert(wrapped.clone(), Arc::clone(&key));
        Ok(key)
    }

    /// Drops `wrapped` from the working-key cache (a terminal's TPK once a key change replaced
    /// it), so the old clear key does not stay in memory until the cache is next emptied.
    pub fn forget(&self, wrapped: &WrappedKey) {
        let mut working = self.working.write().unwrap_or_else(|p| p.into_inner());
        working.remove(wrapped);
    }

    /// The master key's check value, for operators to compare across switch nodes.
    pub fn master_check_value(&self) -> CheckValue {
        self.master.check_value()
    }

    /// Imports a key given as 32 hex digits with its check value (`POST /terminals`: TMK and
    /// TPK; or the bank's PVK), refusing it when the check value does not match.
    pub fn import_key(
        &self,
        usage: KeyUsage,
        key_hex: &str,
        check_value_hex: &str,
    ) -> Result<WrappedKey, HsmError> {
        let key = TdesKey::from_hex_checked(key_hex, check_value_hex)?;
        self.master.wrap(usage, &key)
    }

    /// Makes a new random key for `usage` (a PVK when the program starts without one).
    pub fn generate_key(&self, usage: KeyUsage) -> Result<WrappedKey, HsmError> {
        self.master.wrap(usage, &TdesKey::generate()?)
    }

    /// The check value of a stored key, to show beside it.
    pub fn check_value(&self, key: &WrappedKey) -> Result<CheckValue, HsmError> {
        Ok(self.master.unwrap(key.usage(), key)?.check_value())
    }

    /// The PVV to store for `pin` on the card `pan` (card issue, replacement, PIN reset).
    pub fn generate_pvv(
        &self,
        pvk: &WrappedKey,
        pin: &Pin,
        pan: &str,
        pvki: Pvki,
    ) -> Result<Pvv, HsmError> {
        let pvk = self.master.unwrap(KeyUsage::Pvk, pvk)?;
        Pvv::generate(&pvk, pin, pan, pvki)
    }

    /// A PIN the card's PVV refuses: the first of PIN+1, PIN+2, ... (modulo 10^digits) whose
    /// PVV under `pvk` differs from `pin`'s. For test tools that need a wrong PIN that *is*
    /// wrong: a 4-digit PVV (IBM 3624 / Visa PVV) is shared by about one PIN in 10,000, so a
    /// PIN that merely differs from the right one is now and then rightly accepted.
    pub fn refused_pin(
        &self,
        pvk: &WrappedKey,
        pin: &Pin,
        pan: &str,
        pvki: Pvki,
    ) -> Result<Pin, HsmError> {
        let pvk = self.working_key(KeyUsage::Pvk, pvk)?;
        let right = Pvv::generate(&pvk, pin, pan, pvki)?;
        let digits = pin.digit_count();
        let modulus = 10u64.pow(digits as u32);
        let value: u64 = pin.reveal().parse().map_err(|_| HsmError::Pin)?;
        for step in 1..=REFUSED_PIN_CANDIDATES_MAX {
            let text = Zeroizing::new(format!("{:0digits$}", (value + step) % modulus));
            let candidate = Pin::new(&text)?;
            if !Pvv::generate(&pvk, &candidate, pan, pvki)?.matches(&right) {
                return Ok(candidate);
            }
        }
        Err(HsmError::Pin)
    }

    /// Verifies DE52 against the card's PVV: `Ok(true)` right PIN, `Ok(false)` wrong PIN, and
    /// an error for which [`HsmError::counts_as_wrong_pin`] tells a malformed block (a wrong
    /// PIN too, §8) from a fault of the switch's own data (bad stored key, bad PAN).
    pub fn verify_pin(
        &self,
        tpk: &WrappedKey,
        block: &EncryptedPinBlock,
        pan: &str,
        pvk: &WrappedKey,
        pvki: Pvki,
        expected: &Pvv,
    ) -> Result<bool, HsmError> {
        let tpk = self.working_key(KeyUsage::Tpk, tpk)?;
        let pvk = self.working_key(KeyUsage::Pvk, pvk)?;
        pvv::verify_pin(&tpk, block, pan, &pvk, pvki, expected)
    }

    /// Makes a new TPK, and a new TAK when `with_tak`, for the terminal whose stored master
    /// key is `tmk`.
    pub fn change_terminal_keys(
        &self,
        tmk: &WrappedKey,
        with_tak: bool,
    ) -> Result<TerminalKeyChange, HsmError> {
        let tmk = self.master.unwrap(KeyUsage::Tmk, tmk)?;
        let KeyChange { tpk, tak, de48 } = KeyChange::generate(&tmk, with_tak)?;
        let tak = match tak {
            Some(tak) => Some((self.master.wrap(KeyUsage::Tak, &tak)?, tak.check_value())),
            None => None,
        };
        Ok(TerminalKeyChange {
            tpk: self.master.wrap(KeyUsage::Tpk, &tpk)?,
            check_value: tpk.check_value(),
            tak,
            de48,
        })
    }

    /// The MAC (host interface §10: ISO 9797-1 algorithm 3, padding method 1) of `data` under
    /// the stored TAK `tak`.
    pub fn generate_mac(&self, tak: &WrappedKey, data: &[u8]) -> Result<[u8; MAC_BYTES], HsmError> {
        let tak = self.working_key(KeyUsage::Tak, tak)?;
        Ok(mac::retail_mac(&tak, data))
    }

    /// Whether `mac` is the MAC of `data` under the stored TAK `tak`; an error only for a
    /// stored key that does not unwrap as a TAK (the switch's fault, not the terminal's).
    pub fn verify_mac(
        &self,
        tak: &WrappedKey,
        data: &[u8],
        mac: &[u8; MAC_BYTES],
    ) -> Result<bool, HsmError> {
        let tak = self.working_key(KeyUsage::Tak, tak)?;
        Ok(mac::verify_retail_mac(&tak, data, mac))
    }
}

impl fmt::Debug for TerminalKeyChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // DE48 holds the new keys under the TMK: encrypted, yet kept out of logs like every key.
        f.debug_struct("TerminalKeyChange")
            .field("tpk", &self.tpk)
            .field("check_value", &self.check_value)
            .field("tak", &self.tak)
            .field("de48", &"[redacted]")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEST_KEY: &str = "0123456789ABCDEFFEDCBA9876543210";

    fn hsm() -> SoftHsm {
        SoftHsm::new(MasterKey::generate().unwrap())
    }

    #[test]
    fn the_refused_pin_is_one_the_pvv_refuses() {
        let hsm = hsm();
        let pvk = hsm.import_key(KeyUsage::Pvk, TEST_KEY, "08D7B4").unwrap();
        // Under this PVK, PIN 7652 and PIN+1 7653 share PVV 1543 on this card: PIN+1 would
        // be accepted.
        let pan = "6048730000066525";
        let pin = Pin::new("7652").unwrap();
        let pvv = hsm.generate_pvv(&pvk, &pin, pan, Pvki::ONE).unwrap();
        let next = Pin::new("7653").unwrap();
        assert_eq!(pvv.as_str(), "1543");
        assert!(
            hsm.generate_pvv(&pvk, &next, pan, Pvki::ONE)
                .unwrap()
                .matches(&pvv),
            "the premise: PIN+1 shares the PVV"
        );
        let refused = hsm.refused_pin(&pvk, &pin, pan, Pvki::ONE).unwrap();
        assert_eq!(refused.reveal(), "7654");
        let clear_tpk = TdesKey::from_hex(TEST_KEY).unwrap();
        let tpk = hsm.import_key(KeyUsage::Tpk, TEST_KEY, "08D7B4").unwrap();
        let block = EncryptedPinBlock::encrypt(&refused, pan, &clear_tpk).unwrap();
        assert_eq!(
            hsm.verify_pin(&tpk, &block, pan, &pvk, Pvki::ONE, &pvv),
            Ok(false)
        );
        // Where PIN+1 is refused it is the one; the count wraps within the PIN's digits.
        let pan = "1122334455667788";
        let pin = Pin::new("4524").unwrap();
        assert_eq!(
            hsm.refused_pin(&pvk, &pin, pan, Pvki::ONE)
                .unwrap()
                .reveal(),
            "4525"
        );
        let pin = Pin::new("999999").unwrap();
        let refused = hsm.refused_pin(&pvk, &pin, pan, Pvki::ONE).unwrap();
        assert_eq!(refused.digit_count(), 6);
        assert!(refused.reveal() < "000100", "{}", refused.reveal());
    }

    #[test]
    fn terminal_registration_and_a_purchase_pin() {
        let hsm = hsm();
        let tpk = hsm.import_key(KeyUsage::Tpk, TEST_KEY, "08D7B4").unwrap();
        assert_eq!(hsm.check_value(&tpk).unwrap().to_string(), "08D7B4");
        assert_eq!(
            hsm.import_key(KeyUsage::Tmk, TEST_KEY, "000000")
                .unwrap_err(),
            HsmError::CheckValueMismatch
        );

        let pvk = hsm.import_key(KeyUsage::Pvk, TEST_KEY, "08D7B4").unwrap();
        let pan = "1122334455667788";
        let pin = Pin::new("4524").unwrap();
        let pvv = hsm.generate_pvv(&pvk, &pin, pan, Pvki::ONE).unwrap();
        // The published psec vector (see pvv.rs) through the stored-key path.
        assert_eq!(pvv.as_str(), "8523");

        let clear_tpk = TdesKey::from_hex(TEST_KEY).unwrap();
        let block = EncryptedPinBlock::encrypt(&pin, pan, &clear_tpk).unwrap();
        assert_eq!(
            hsm.verify_pin(&tpk, &block, pan, &pvk, Pvki::ONE, &pvv),
            Ok(true)
        );
        let wrong =
            EncryptedPinBlock::encrypt(&Pin::new("0000").unwrap(), pan, &clear_tpk).unwrap();
        assert_eq!(
            hsm.verify_pin(&tpk, &wrong, pan, &pvk, Pvki::ONE, &pvv),
            Ok(false)
        );
        // Keys passed in the wrong places are refused before any PIN is looked at.
        assert_eq!(
            hsm.verify_pin(&pvk, &block, pan, &tpk, Pvki::ONE, &pvv)
                .unwrap_err(),
            HsmError::KeyUsage {
                expected: KeyUsage::Tpk,
                found: KeyUsage::Pvk
            }
        );
    }

    #[test]
    fn the_working_key_cache_answers_as_the_master_key_would() {
        let hsm = hsm();
        let tpk = hsm.import_key(KeyUsage::Tpk, TEST_KEY, "08D7B4").unwrap();
        let pvk = hsm.generate_key(KeyUsage::Pvk).unwrap();
        let pan = "6048720000001234";
        let pin = Pin::new("1357").unwrap();
        let pvv = hsm.generate_pvv(&pvk, &pin, pan, Pvki::ONE).unwrap();
        let block =
            EncryptedPinBlock::encrypt(&pin, pan, &TdesKey::from_hex(TEST_KEY).unwrap()).unwrap();
        for _ in 0..3 {
            assert_eq!(
                hsm.verify_pin(&tpk, &block, pan, &pvk, Pvki::ONE, &pvv),
                Ok(true)
            );
        }
        // Cached by the whole stored form: a tampered copy of a cached key is still refused,
        // and a cached TPK is still not a PVK.
        let mut hex = tpk.to_hex();
        let last = if hex.ends_with('0') { "1" } else { "0" };
        hex.replace_range(hex.len() - 1.., last);
        let tampered = WrappedKey::from_hex(&hex).unwrap();
        assert_eq!(
            hsm.verify_pin(&tampered, &block, pan, &pvk, Pvki::ONE, &pvv),
            Err(HsmError::Unwrap)
        );
        assert!(matches!(
            hsm.verify_pin(&tpk, &block, pan, &tpk, Pvki::ONE, &pvv),
            Err(HsmError::KeyUsage { .. })
        ));
        // A forgotten key leaves the cache (and is unwrapped again when used again).
        let cached = |key: &WrappedKey| hsm.working.read().unwrap().contains_key(key);
        assert!(cached(&tpk) && cached(&pvk));
        hsm.forget(&tpk);
        assert!(!cached(&tpk) && cached(&pvk));
        assert_eq!(
            hsm.verify_pin(&tpk, &block, pan, &pvk, Pvki::ONE, &pvv),
            Ok(true)
        );
        assert!(cached(&tpk));
        // Another module (another master key) cannot use this one's keys.
        assert_eq!(
            super::SoftHsm::new(MasterKey::generate().unwrap()).verify_pin(
                &tpk,
                &block,
                pan,
                &pvk,
                Pvki::ONE,
                &pvv
            ),
            Err(HsmError::Unwrap)
        );
    }

    #[test]
    fn key_change_then_pins_under_the_new_tpk() {
        let hsm = hsm();
        let tmk = hsm.import_key(KeyUsage::Tmk, TEST_KEY, "08D7B4").unwrap();
        let pvk = hsm.generate_key(KeyUsage::Pvk).unwrap();
        let change = hsm.change_terminal_keys(&tmk, false).unwrap();
        assert!(change.tak.is_none());
        assert_eq!(change.de48.len(), 38);
        assert!(change.de48.ends_with(&change.check_value.to_string()));
        assert_eq!(hsm.check_value(&change.tpk).unwrap(), change.check_value);
        assert!(!format!("{change:?}").contains(&change.de48));

        // The terminal opens DE48 with its TMK and sends a PIN block under the new TPK.
        let (terminal_tpk, _) =
            KeyChange::open(&TdesKey::from_hex(TEST_KEY).unwrap(), &change.de48).unwrap();
        let pan = "6048720000001234";
        let pin = Pin::generate(6).unwrap();
        let pvv = hsm.generate_pvv(&pvk, &pin, pan, Pvki::ONE).unwrap();
        let block = EncryptedPinBlock::encrypt(&pin, pan, &terminal_tpk).unwrap();
        assert_eq!(
            hsm.verify_pin(&change.tpk, &block, pan, &pvk, Pvki::ONE, &pvv),
            Ok(true)
        );

        // A block under the old TPK no longer decodes, or decodes to another PIN.
        let old =
            EncryptedPinBlock::encrypt(&pin, pan, &TdesKey::from_hex(TEST_KEY).unwrap()).unwrap();
        match hsm.verify_pin(&change.tpk, &old, pan, &pvk, Pvki::ONE, &pvv) {
            Ok(matched) => assert!(!matched || pvv_collides(&hsm, &pvk, pan, &pvv)),
            Err(error) => assert!(error.counts_as_wrong_pin()),
        }
    }

    #[test]
    fn macs_under_a_stored_tak_and_a_key_change_that_replaces_it() {
        let hsm = hsm();
        let tak_hex = "0123456789ABCDEFFEDCBA9876543210";
        let tak = hsm.import_key(KeyUsage::Tak, tak_hex, "08D7B4").unwrap();
        // The X9.19 example (mac.rs) through the stored-key path.
        let data = b"Now is the time for all ";
        let mac = hsm.generate_mac(&tak, data).unwrap();
        assert_eq!(mac, [0xA1, 0xC7, 0x2E, 0x74, 0xEA, 0x3F, 0xA9, 0xB6]);
        assert_eq!(hsm.verify_mac(&tak, data, &mac), Ok(true));
        assert_eq!(
            hsm.verify_mac(&tak, b"Now is the time for all!", &mac),
            Ok(false)
        );
        // A TPK is not a TAK, even with the same clear key.
        let tpk = hsm.import_key(KeyUsage::Tpk, tak_hex, "08D7B4").unwrap();
        assert!(matches!(
            hsm.generate_mac(&tpk, data),
            Err(HsmError::KeyUsage { .. })
        ));

        // A key change with a TAK: the terminal opens both from DE48 and MACs with the new TAK.
        let tmk = hsm.import_key(KeyUsage::Tmk, TEST_KEY, "08D7B4").unwrap();
        let change = hsm.change_terminal_keys(&tmk, true).unwrap();
        let (new_tak, check_value) = change.tak.clone().unwrap();
        assert_eq!(hsm.check_value(&new_tak).unwrap(), check_value);
        assert_eq!(change.de48.len(), 76);
        assert!(change.de48.ends_with(&check_value.to_string()));
        let (_, terminal_tak) =
            KeyChange::open(&TdesKey::from_hex(TEST_KEY).unwrap(), &change.de48).unwrap();
        let terminal_mac = mac::retail_mac(&terminal_tak.unwrap(), data);
        assert_eq!(hsm.verify_mac(&new_tak, data, &terminal_mac), Ok(true));
        assert_eq!(hsm.verify_mac(&tak, data, &terminal_mac), Ok(false));
        assert!(!format!("{change:?}").contains(&change.de48));
    }

    /// Whether some other 4-digit prefix shares the PVV: 4-digit PVVs collide by design, so a
    /// block under a wrong key may, rarely, decode to another PIN that verifies.
    fn pvv_collides(hsm: &SoftHsm, pvk: &WrappedKey, pan: &str, pvv: &Pvv) -> bool {
        (0..10_000)
            .filter(|n| {
                let pin = Pin::new(&format!("{n:04}")).unwrap();
                hsm.generate_pvv(pvk, &pin, pan, Pvki::ONE)
                    .unwrap()
                    .matches(pvv)
            })
            .count()
            > 1
    }
}
