//! The message type indicator.

use std::fmt;

/// A message type indicator: four ASCII digits (version, class, function, origin).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mti([u8; 4]);

impl Mti {
    /// Network management request.
    pub const NETWORK_REQUEST: Mti = Mti(*b"0800");
    /// Financial request (purchase, balance inquiry).
    pub const FINANCIAL_REQUEST: Mti = Mti(*b"0200");
    /// Reversal request.
    pub const REVERSAL_REQUEST: Mti = Mti(*b"0400");
    /// Reversal request, repeat.
    pub const REVERSAL_REPEAT: Mti = Mti(*b"0401");
    /// Reversal advice.
    pub const REVERSAL_ADVICE: Mti = Mti(*b"0420");
    /// Reversal advice, repeat.
    pub const REVERSAL_ADVICE_REPEAT: Mti = Mti(*b"0421");
    /// Reconciliation (batch close) request.
    pub const RECONCILIATION_REQUEST: Mti = Mti(*b"0500");

    /// An MTI from four ASCII digits; `None` when any is not a digit.
    pub const fn new(digits: [u8; 4]) -> Option<Mti> {
        let mut i = 0;
        while i < 4 {
            if !digits[i].is_ascii_digit() {
                return None;
            }
            i += 1;
        }
        Some(Mti(digits))
    }

    /// The four ASCII digits.
    pub const fn digits(&self) -> [u8; 4] {
        self.0
    }

    /// The MTI as a string slice.
    pub fn as_str(&self) -> &str {
        // Constructed from ASCII digits only.
        std::str::from_utf8(&self.0).unwrap_or("????")
    }

    /// The MTI as a number (`0200` is 200).
    pub fn as_u16(&self) -> u16 {
        self.0
            .iter()
            .fold(0u16, |acc, d| acc * 10 + u16::from(d - b'0'))
    }

    /// Whether this is a request or advice (third digit even) rather than a response to one.
    pub const fn is_request(&self) -> bool {
        (self.0[2] - b'0').is_multiple_of(2)
    }

    /// Whether the origin digit marks a repeat (0401, 0421).
    pub const fn is_repeat(&self) -> bool {
        (self.0[3] - b'0') % 2 == 1
    }

    /// The MTI of the response to this request: the third digit plus one, and a repeat answered
    /// as the original (0401 → 0410, 0421 → 0430), as ISO 8583:1987 hosts do. `None` for an MTI
    /// that is already a response.
    pub const fn response(&self) -> Option<Mti> {
        if !self.is_request() {
            return None;
        }
        let mut digits = self.0;
        digits[2] += 1;
        digits[3] -= (digits[3] - b'0') % 2;
        Some(Mti(digits))
    }
}

impl fmt::Debug for Mti {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mti({})", self.as_str())
    }
}

impl fmt::Display for Mti {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses() {
        let r = |s: &[u8; 4]| Mti::new(*s).and_then(|m| m.response()).map(|m| m.digits());
        assert_eq!(r(b"0200"), Some(*b"0210"));
        assert_eq!(r(b"0800"), Some(*b"0810"));
        assert_eq!(r(b"0401"), Some(*b"0410"));
        assert_eq!(r(b"0421"), Some(*b"0430"));
        assert_eq!(r(b"0100"), Some(*b"0110"));
        assert_eq!(r(b"0210"), None);
        assert!(Mti::new(*b"02a0").is_none());
        assert_eq!(Mti::new(*b"0200").map(|m| m.as_u16()), Some(200));
    }
}
