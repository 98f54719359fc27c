//! Property tests through the public API: round trips for any PIN, PAN and key, and no panic
//! on any input to a parser.

use proptest::prelude::*;
use ssn_hsm::{
    ClearPinBlock, EncryptedPinBlock, HsmError, KeyChange, KeyUsage, MasterKey, Pin, Pvki, Pvv,
    TdesKey, WrappedKey, verify_pin,
};

/// A PIN of 4 to 12 digits, as text.
fn pin_text() -> impl Strategy<Value = String> {
    "[0-9]{4,12}"
}

/// A PAN of 8 to 19 digits, as text.
fn pan_text() -> impl Strategy<Value = String> {
    "[0-9]{8,19}"
}

/// Whether two double-length keys are different 3DES keys. DES ignores the lowest bit of each
/// byte (parity), so keys that differ only there encrypt alike.
fn distinct_keys(first: &[u8; 16], second: &[u8; 16]) -> bool {
    first.iter().zip(second).any(|(a, b)| (a ^ b) & 0xFE != 0)
}

proptest! {
    #[test]
    fn build_encrypt_decrypt_parse_round_trips(
        pin in pin_text(),
        pan in pan_text(),
        tpk in any::<[u8; 16]>(),
    ) {
        let tpk = TdesKey::from_bytes(tpk);
        let block = EncryptedPinBlock::encrypt(&Pin::new(&pin).unwrap(), &pan, &tpk).unwrap();
        let wire = EncryptedPinBlock::from_hex(&block.to_hex()).unwrap();
        let parsed = wire.pin(&tpk, &pan).unwrap();
        prop_assert_eq!(parsed.reveal(), pin.as_str());
    }

    #[test]
    fn a_wrong_tpk_is_rejected_or_gives_another_pin(
        pin in pin_text(),
        pan in pan_text(),
        tpk in any::<[u8; 16]>(),
        wrong_tpk in any::<[u8; 16]>(),
    ) {
        prop_assume!(distinct_keys(&tpk, &wrong_tpk));
        let pin = Pin::new(&pin).unwrap();
        let block = EncryptedPinBlock::encrypt(&pin, &pan, &TdesKey::from_bytes(tpk)).unwrap();
        match block.pin(&TdesKey::from_bytes(wrong_tpk), &pan) {
            Ok(other) => prop_assert_ne!(other.reveal(), pin.reveal()),
            Err(error) => prop_assert!(error.counts_as_wrong_pin(), "{error}"),
        }
    }

    #[test]
    fn the_right_pin_verifies_against_its_pvv(
        pin in pin_text(),
        pan in pan_text(),
        tpk in any::<[u8; 16]>(),
        pvk in any::<[u8; 16]>(),
        pvki in 0u8..=9,
    ) {
        let (tpk, pvk) = (TdesKey::from_bytes(tpk), TdesKey::from_bytes(pvk));
        let pvki = Pvki::new(pvki).unwrap();
        let pin = Pin::new(&pin).unwrap();
        let pvv = Pvv::generate(&pvk, &pin, &pan, pvki).unwrap();
        prop_assert!(pvv.as_str().bytes().all(|digit| digit.is_ascii_digit()));
        let block = EncryptedPinBlock::encrypt(&pin, &pan, &tpk).unwrap();
        prop_assert_eq!(verify_pin(&tpk, &block, &pan, &pvk, pvki, &pvv), Ok(true));
    }

    #[test]
    fn wrapped_keys_round_trip_and_any_alteration_fails(
        key in any::<[u8; 16]>(),
        master in any::<[u8; 32]>(),
        flip_index in 0usize..WrappedKey::BYTES,
        flip_bits in 1u8..=255,
    ) {
        let master = MasterKey::from_slice(&master).unwrap();
        let key = TdesKey::from_bytes(key);
        let wrapped = master.wrap(KeyUsage::Tpk, &key).unwrap();
        let stored = WrappedKey::from_hex(&wrapped.to_hex()).unwrap();
        let unwrapped = master.unwrap(KeyUsage::Tpk, &stored).unwrap();
        prop_assert_eq!(unwrapped.reveal_hex(), key.reveal_hex());

        let mut altered = wrapped.as_bytes().to_vec();
        altered[flip_index] ^= flip_bits;
        let outcome = WrappedKey::from_slice(&altered)
            .and_then(|altered| master.unwrap(KeyUsage::Tpk, &altered));
        prop_assert!(outcome.is_err());
    }

    #[test]
    fn key_change_round_trips(
        tmk in any::<[u8; 16]>(),
        tpk in any::<[u8; 16]>(),
        tak in any::<[u8; 16]>(),
    ) {
        let (tmk, tpk, tak) =
            (TdesKey::from_bytes(tmk), TdesKey::from_bytes(tpk), TdesKey::from_bytes(tak));
        let de48 = KeyChange::encode(&tmk, &tpk, None);
        prop_assert_eq!(de48.len(), 38);
        prop_assert_eq!(KeyChange::open(&tmk, &de48).unwrap().0.reveal_hex(), tpk.reveal_hex());
        let de48 = KeyChange::encode(&tmk, &tpk, Some(&tak));
        prop_assert_eq!(de48.len(), 76);
        let (opened_tpk, opened_tak) = KeyChange::open(&tmk, &de48).unwrap();
        prop_assert_eq!(opened_tpk.reveal_hex(), tpk.reveal_hex());
        prop_assert_eq!(opened_tak.unwrap().reveal_hex(), tak.reveal_hex());
    }

    /// Every parser takes any input and answers with a value or an error, never a panic.
    #[test]
    fn parsers_never_panic(
        text in any::<String>(),
        hexish in "[0-9A-Fa-fG ]{0,100}",
        bytes in proptest::collection::vec(any::<u8>(), 0..64),
        block in any::<[u8; 8]>(),
        key in any::<[u8; 16]>(),
    ) {
        let key = TdesKey::from_bytes(key);
        let master = MasterKey::from_slice(&[7; 32]).unwrap();
        for input in [text.as_str(), hexish.as_str()] {
            let _ = TdesKey::from_hex(input);
            let _ = TdesKey::from_hex_checked(input, input);
            let _ = MasterKey::from_hex(input);
            let _ = Pin::new(input);
            let _ = Pvv::new(input);
            let _ = EncryptedPinBlock::from_hex(input);
            let _ = KeyChange::open(&key, input);
            if let Ok(wrapped) = WrappedKey::from_hex(input) {
                let _ = master.unwrap(wrapped.usage(), &wrapped);
            }
            // A clear block read for any text as PAN.
            let _ = ClearPinBlock::from_bytes(block).pin(input);
        }
        let _ = MasterKey::from_slice(&bytes);
        let _ = EncryptedPinBlock::from_slice(&bytes);
        if let Ok(wrapped) = WrappedKey::from_slice(&bytes) {
            prop_assert_eq!(master.unwrap(wrapped.usage(), &wrapped).unwrap_err(), HsmError::Unwrap);
        }
    }

    /// Any 8 bytes under any key and any PAN: a PIN of 4 to 12 digits or a format error.
    #[test]
    fn any_block_parses_to_a_valid_pin_or_a_pin_block_error(
        block in any::<[u8; 8]>(),
        key in any::<[u8; 16]>(),
        pan in pan_text(),
    ) {
        match EncryptedPinBlock::from_bytes(block).pin(&TdesKey::from_bytes(key), &pan) {
            Ok(pin) => {
                prop_assert!((Pin::DIGITS_MIN..=Pin::DIGITS_MAX).contains(&pin.digit_count()));
                prop_assert!(pin.reveal().bytes().all(|digit| digit.is_ascii_digit()));
            }
            Err(error) => prop_assert!(error.counts_as_wrong_pin(), "{error}"),
        }
    }
}
