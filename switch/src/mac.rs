//! Message authentication on the wire (host interface §10): which field carries the MAC,
//! which bytes it covers, and checking a request's MAC and signing an answer with the
//! terminal's TAK. The algorithm itself (ISO 9797-1 algorithm 3, padding method 1) is the HSM's
//! ([`SoftHsm::generate_mac`]); which response code a failure gets is the host's.
//!
//! The MAC input is the message as encoded in its listener's profile, without the framing (no
//! length header, no TPDU), from the first byte of the MTI up to the first byte of the MAC
//! field, with the MAC field's bit set in the bitmap: in `bcd` the whole message but its last 8
//! bytes, in `ascii` the whole message but its last 16 hex digits. That is what a jPOS terminal
//! MACs when it sets the MAC field to 8 zero bytes, packs the message with its packager
//! (`ISO87BPackager` or `ISO87APackager`) and cuts the MAC field's bytes off the end.

use bytes::BytesMut;
use ssn_codec::{Bitmap, Message, MessageView, Profile};
use ssn_hsm::{HsmError, MAC_BYTES, SoftHsm, WrappedKey};

/// The data element that carries a message's MAC: DE128 when the message needs a secondary
/// bitmap (a field of 65-128 is present), DE64 otherwise. A secondary bitmap with no field set
/// counts as absent, as jPOS drops it when it packs.
pub fn mac_field(present: Bitmap) -> u8 {
    if present.needs_secondary() { 128 } else { 64 }
}

/// What a request's MAC says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The MAC field is present and holds the MAC of the message under the TAK.
    Verified,
    /// The message has no MAC in its MAC field.
    Missing,
    /// The MAC field holds another MAC, or DE64 is present where DE128 carries the MAC.
    Wrong,
}

impl Verdict {
    /// The `reason` label of `ssn_mac_refused_total`.
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Verified => "verified",
            Verdict::Missing => "missing",
            Verdict::Wrong => "wrong",
        }
    }
}

/// Checks `request`'s MAC under the stored TAK `tak`. An error only when the TAK does not
/// unwrap, which is the switch's fault, not the terminal's.
pub fn verify(hsm: &SoftHsm, tak: &WrappedKey, request: &MessageView) -> Result<Verdict, HsmError> {
    let field = mac_field(request.present());
    let (Some(data), Some(mac)) = (
        request.bytes_before(field),
        request.binary::<MAC_BYTES>(field),
    ) else {
        return Ok(Verdict::Missing);
    };
    if field == 128 && request.has(64) {
        return Ok(Verdict::Wrong);
    }
    Ok(if hsm.verify_mac(tak, data, &mac)? {
        Verdict::Verified
    } else {
        Verdict::Wrong
    })
}

/// Sets `answer`'s MAC field to its MAC under the stored TAK `tak`, as `profile` encodes it.
pub fn sign(
    hsm: &SoftHsm,
    tak: &WrappedKey,
    answer: &mut Message,
    profile: Profile,
) -> Result<(), SignError> {
    let field = mac_field(answer.present());
    answer
        .set(field, &[0; MAC_BYTES])
        .map_err(|_| SignError::Encode)?;
    let mut wire = BytesMut::new();
    answer.encode(profile, &mut wire);
    let encoded = MessageView::decode(profile, wire.freeze()).map_err(|_| SignError::Encode)?;
    let data = encoded.bytes_before(field).ok_or(SignError::Encode)?;
    let mac = hsm.generate_mac(tak, data).map_err(SignError::Hsm)?;
    answer.set(field, &mac).map_err(|_| SignError::Encode)?;
    Ok(())
}

/// Why an answer could not be signed: a bug or a damaged key, never the terminal's input.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The answer did not encode and decode back with its MAC field.
    #[error("the answer does not encode with a MAC field")]
    Encode,
    /// The TAK did not unwrap.
    #[error("the TAK: {0}")]
    Hsm(HsmError),
}

#[cfg(test)]
mod tests {
    use ssn_codec::Mti;
    use ssn_hsm::{KeyUsage, MasterKey, TdesKey, retail_mac};

    use super::*;

    const TAK: &str = "0123456789ABCDEFFEDCBA9876543210";

    fn signed_request(profile: Profile, with_secondary: bool, tak: &TdesKey) -> BytesMut {
        let mut message = Message::new(Mti::new(*b"0800").unwrap());
        message.set(7, b"1207101010").unwrap();
        message.set(11, b"000001").unwrap();
        message.set(41, b"EWR10004").unwrap();
        let field = if with_secondary {
            message.set(70, b"301").unwrap();
            128
        } else {
            64
        };
        message.set(field, &[0; 8]).unwrap();
        let wire = message.to_bytes(profile);
        let cut = if profile == Profile::Bcd { 8 } else { 16 };
        let mac = retail_mac(tak, &wire[..wire.len() - cut]);
        message.set(field, &mac).unwrap();
        message.to_bytes(profile)
    }

    #[test]
    fn a_request_macd_over_its_bytes_verifies_and_any_change_does_not() {
        let hsm = SoftHsm::new(MasterKey::generate().unwrap());
        let tak = hsm.import_key(KeyUsage::Tak, TAK, "08D7B4").unwrap();
        let clear = TdesKey::from_hex(TAK).unwrap();
        for profile in [Profile::Bcd, Profile::Ascii] {
            for secondary in [false, true] {
                let wire = signed_request(profile, secondary, &clear);
                let view = MessageView::decode(profile, wire.clone().freeze()).unwrap();
                assert_eq!(verify(&hsm, &tak, &view), Ok(Verdict::Verified));
                // DE11's last digit changed (ASCII digit or BCD nibble): still decodes, fails.
                let mut changed = wire.clone();
                let stan_end = view.bytes_before(41).unwrap().len() - 1;
                changed[stan_end] ^= 0x01;
                let view = MessageView::decode(profile, changed.freeze()).unwrap();
                assert_eq!(verify(&hsm, &tak, &view), Ok(Verdict::Wrong), "{profile:?}");
            }
            // No MAC at all, and a MAC in DE64 of a message that needs DE128.
            let mut message = Message::new(Mti::new(*b"0800").unwrap());
            message.set(11, b"000001").unwrap();
            let view = MessageView::decode(profile, message.to_bytes(profile).freeze()).unwrap();
            assert_eq!(verify(&hsm, &tak, &view), Ok(Verdict::Missing));
            message.set(70, b"301").unwrap();
            message.set(64, &[1; 8]).unwrap();
            let view = MessageView::decode(profile, message.to_bytes(profile).freeze()).unwrap();
            assert_eq!(verify(&hsm, &tak, &view), Ok(Verdict::Missing));
            message.set(128, &[1; 8]).unwrap();
            let view = MessageView::decode(profile, message.to_bytes(profile).freeze()).unwrap();
            assert_eq!(verify(&hsm, &tak, &view), Ok(Verdict::Wrong));
        }
    }

    #[test]
    fn a_signed_answer_verifies_under_the_same_tak() {
        let hsm = SoftHsm::new(MasterKey::generate().unwrap());
        let tak = hsm.import_key(KeyUsage::Tak, TAK, "08D7B4").unwrap();
        for profile in [Profile::Bcd, Profile::Ascii] {
            for secondary in [false, true] {
                let mut answer = Message::new(Mti::new(*b"0810").unwrap());
                answer.set(11, b"000001").unwrap();
                answer.set(39, b"00").unwrap();
                if secondary {
                    answer.set(70, b"301").unwrap();
                }
                sign(&hsm, &tak, &mut answer, profile).unwrap();
                assert!(answer.has(if secondary { 128 } else { 64 }));
                assert!(!answer.has(if secondary { 64 } else { 128 }));
                let view = MessageView::decode(profile, answer.to_bytes(profile).freeze()).unwrap();
                assert_eq!(verify(&hsm, &tak, &view), Ok(Verdict::Verified));
            }
        }
    }
}
