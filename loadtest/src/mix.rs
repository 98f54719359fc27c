//! What the terminals send, by weight: `purchase=80,inquiry=8,wrong_pin=2,reversal=5,...`.

use crate::Error;
use crate::rng::Rng;

/// One kind of request a terminal can send.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// 0200 purchase with a food basket and the right PIN.
    Purchase,
    /// 0200 balance inquiry (310000).
    Inquiry,
    /// 0200 purchase with a wrong PIN (`55`, or `75` once the card's PIN locks).
    WrongPin,
    /// 0400 reversal of one of the terminal's own approved purchases (a purchase when it has
    /// none yet).
    Reversal,
    /// 0200 purchase whose basket holds a non-food category (`57`).
    NonFood,
    /// 0200 purchase with a Luhn-valid PAN no card has (`14`).
    UnknownCard,
    /// 0800 echo test (`301`).
    Echo,
}

impl Kind {
    /// Every kind, in the order reports list them.
    pub const ALL: [Kind; 7] = [
        Kind::Purchase,
        Kind::Inquiry,
        Kind::WrongPin,
        Kind::Reversal,
        Kind::NonFood,
        Kind::UnknownCard,
        Kind::Echo,
    ];

    /// The name used in `--mix` and reports.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Purchase => "purchase",
            Kind::Inquiry => "inquiry",
            Kind::WrongPin => "wrong_pin",
            Kind::Reversal => "reversal",
            Kind::NonFood => "non_food",
            Kind::UnknownCard => "unknown_card",
            Kind::Echo => "echo",
        }
    }

    fn index(self) -> usize {
        Kind::ALL.iter().position(|k| *k == self).unwrap_or(0)
    }
}

/// Weights per kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mix {
    /// Weight of each kind, indexed like [`Kind::ALL`].
    weights: [u32; 7],
    /// Their sum, > 0.
    total: u32,
}

/// The default mix: a day at the E-Warong, mostly purchases.
pub const DEFAULT_MIX: &str =
    "purchase=85,inquiry=5,wrong_pin=1,reversal=3,non_food=3,unknown_card=3";

impl Mix {
    /// Parses `name=weight,...`; kinds left out weigh 0.
    pub fn parse(text: &str) -> Result<Mix, Error> {
        let mut weights = [0u32; 7];
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, weight) = part
                .split_once('=')
                .ok_or_else(|| Error::Invalid(format!("--mix: {part:?} is not name=weight")))?;
            let kind = Kind::ALL
                .iter()
                .find(|k| k.name() == name.trim())
                .ok_or_else(|| {
                    Error::Invalid(format!(
                        "--mix: unknown kind {name:?} (kinds: {})",
                        Kind::ALL.map(Kind::name).join(", ")
                    ))
                })?;
            let weight: u32 = weight
                .trim()
                .parse()
                .map_err(|_| Error::Invalid(format!("--mix: weight of {name} is not a number")))?;
            weights[kind.index()] = weight;
        }
        let total = weights
            .iter()
            .try_fold(0u32, |a, w| a.checked_add(*w))
            .filter(|t| *t > 0)
            .ok_or_else(|| {
                Error::Invalid("--mix: the weights must add up to more than 0".into())
            })?;
        Ok(Mix { weights, total })
    }

    /// A kind drawn by weight.
    pub fn pick(&self, rng: &mut Rng) -> Kind {
        let mut x = rng.below(u64::from(self.total)) as u32;
        for (kind, weight) in Kind::ALL.iter().zip(self.weights) {
            if x < weight {
                return *kind;
            }
            x -= weight;
        }
        Kind::Purchase
    }

    /// The mix as `name=weight,...` (non-zero weights).
    pub fn describe(&self) -> String {
        Kind::ALL
            .iter()
            .zip(self.weights)
            .filter(|(_, w)| *w > 0)
            .map(|(k, w)| format!("{}={w}", k.name()))
            .collect::<Vec<_>>()
            .join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_picks_by_weight() {
        let mix = Mix::parse("purchase=3, echo=1").unwrap();
        let mut rng = Rng::new(3, 0);
        let n = 40_000;
        let echoes = (0..n).filter(|_| mix.pick(&mut rng) == Kind::Echo).count();
        assert!((echoes as f64 / n as f64 - 0.25).abs() < 0.02);
        assert_eq!(mix.describe(), "purchase=3,echo=1");
        assert!(Mix::parse(DEFAULT_MIX).is_ok());
    }

    #[test]
    fn refuses_nonsense() {
        assert!(Mix::parse("purchase").is_err());
        assert!(Mix::parse("refund=1").is_err());
        assert!(Mix::parse("purchase=0").is_err());
        assert!(Mix::parse("purchase=x").is_err());
    }
}
