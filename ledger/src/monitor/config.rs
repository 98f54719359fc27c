//! The monitor's thresholds, one struct per rule, with the defaults documented on each field.
//!
//! The defaults are set against the honest traffic the tests shape: a busy E-Warong's cashier
//! needs a minute or more per customer (basket, card, PIN), a family shares one shop, and at
//! the headline city (100,000 cards, 500 E-Warong) one shop serves about 0.2% of a program's
//! cards in a whole month.

use serde::{Deserialize, Serialize};

/// Every rule's thresholds.
#[derive(Clone, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MonitorConfig {
    /// Rule 1.
    pub card_collection: CardCollectionConfig,
    /// Rule 2.
    pub fixed_package: FixedPackageConfig,
    /// Rule 3.
    pub sweep: SweepConfig,
    /// Rule 4.
    pub split_purchase: SplitPurchaseConfig,
    /// Rule 5.
    pub pin_guessing: PinGuessingConfig,
    /// Rule 6.
    pub price: PriceConfig,
    /// Rule 7 (ghost shops; borrowed terminals use `borrowed_window_seconds`).
    pub ghost_shop: GhostShopConfig,
    /// Rule 8.
    pub dormant: DormantConfig,
    /// Every rule: how soon one rule may raise again about the same subject.
    pub repeat: RepeatConfig,
}

/// Repeats: a rule that keeps matching the same subject (a terminal, an E-Warong, a card at a
/// terminal) raises one alert and then stays quiet about it for a while, so a pattern that
/// goes on all day is one alert for Dinas Sosial to open, not one per purchase (and the
/// registry is not written at the rate of purchases).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RepeatConfig {
    /// After an alert, the same rule about the same subject raises nothing for this long
    /// (journal time). Default 86,400 s (a day); 0 raises every match.
    pub quiet_seconds: i64,
}

impl Default for RepeatConfig {
    fn default() -> Self {
        RepeatConfig {
            quiet_seconds: 86_400,
        }
    }
}

/// Card collection: PIN-entered purchases (approved, or declined for a wrong PIN) at one
/// terminal.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CardCollectionConfig {
    /// The window distinct cards are counted over. Default 600 s.
    pub window_seconds: i64,
    /// Distinct cards in the window that fire. Default 15 (an honest cashier serves about 6).
    pub distinct_cards_min: usize,
    /// Longest gap between two cards' PINs that still counts as rapid succession. Default 20 s.
    pub rapid_gap_seconds: i64,
    /// Distinct cards in one run of rapid succession that fire. Default 6.
    pub rapid_cards_min: usize,
}

impl Default for CardCollectionConfig {
    fn default() -> Self {
        CardCollectionConfig {
            window_seconds: 600,
            distinct_cards_min: 15,
            rapid_gap_seconds: 20,
            rapid_cards_min: 6,
        }
    }
}

/// Fixed packages: approved purchases with a basket at one E-Warong.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FixedPackageConfig {
    /// The window baskets are compared over. Default 86,400 s (a day).
    pub window_seconds: i64,
    /// Distinct cards with the identical basket (categories, quantities, amounts) that fire.
    /// Default 10.
    pub cards_min: usize,
    /// And the share of the E-Warong's baskets in the window that basket must be, percent.
    /// Default 50.
    pub share_percent: u64,
}

impl Default for FixedPackageConfig {
    fn default() -> Self {
        FixedPackageConfig {
            window_seconds: 86_400,
            cards_min: 10,
            share_percent: 50,
        }
    }
}

/// Sweeps after a disbursement: distinct cards of the program spent at one E-Warong.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SweepConfig {
    /// How long after the disbursement's acceptance purchases count. Default 21,600 s (6 h).
    pub window_seconds: i64,
    /// Share of the disbursement's cards that fires, in permille. Default 10 (1%, five times
    /// what an honest shop serves in a month at the headline city).
    pub share_permille: u64,
    /// And never fewer cards than this. Default 50.
    pub cards_min: usize,
}

impl Default for SweepConfig {
    fn default() -> Self {
        SweepConfig {
            window_seconds: 21_600,
            share_permille: 10,
            cards_min: 50,
        }
    }
}

/// Split purchases: approved purchases on one card at one terminal.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SplitPurchaseConfig {
    /// The window purchases are summed over. Default 900 s.
    pub window_seconds: i64,
    /// Purchases in the window, at least. Default 2.
    pub purchases_min: usize,
}

impl Default for SplitPurchaseConfig {
    fn default() -> Self {
        SplitPurchaseConfig {
            window_seconds: 900,
            purchases_min: 2,
        }
    }
}

/// PIN guessing: wrong PINs (`55`, `75`) at one terminal.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PinGuessingConfig {
    /// The window wrong PINs are counted over. Default 600 s.
    pub window_seconds: i64,
    /// Wrong PINs in the window that fire. Default 6.
    pub wrong_pins_min: usize,
    /// On at least this many distinct cards. Default 3 (one person mistyping is one card).
    pub cards_min: usize,
}

impl Default for PinGuessingConfig {
    fn default() -> Self {
        PinGuessingConfig {
            window_seconds: 600,
            wrong_pins_min: 6,
            cards_min: 3,
        }
    }
}

/// Prices: each basket item's unit amount (amount / quantity) against the city's median for
/// its category that week (WITA weeks counted from the Unix epoch).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PriceConfig {
    /// An item above the median by this factor, in percent, is overpriced. Default 200.
    pub above_median_percent: u64,
    /// Items of the category the city must have seen that week before any is judged.
    /// Default 30.
    pub samples_min: usize,
    /// Overpriced items of one category at one E-Warong in one week that fire. Default 5.
    pub items_min: usize,
}

impl Default for PriceConfig {
    fn default() -> Self {
        PriceConfig {
            above_median_percent: 200,
            samples_min: 30,
            items_min: 5,
        }
    }
}

/// Ghost shops (the last approved baskets of an E-Warong) and borrowed terminals.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GhostShopConfig {
    /// Approved baskets judged, the most recent. Default 50.
    pub baskets_window: usize,
    /// Baskets seen, at least, before judging. Default 20.
    pub baskets_min: usize,
    /// Share of them mostly non-food (categories `90`-`99` more than half the amount) that
    /// fires, percent. Default 50.
    pub non_food_percent: u64,
    /// A terminal approved at two E-Warong within this long is borrowed. Default 604,800 s.
    pub borrowed_window_seconds: i64,
}

impl Default for GhostShopConfig {
    fn default() -> Self {
        GhostShopConfig {
            baskets_window: 50,
            baskets_min: 20,
            non_food_percent: 50,
            borrowed_window_seconds: 604_800,
        }
    }
}

/// Dormant cards drained at once.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DormantConfig {
    /// A card with no approved purchase for this long (since its last one, or since its first
    /// credit) is dormant. Default 7,776,000 s (90 days).
    pub dormant_seconds: i64,
    /// Disbursements credited while dormant, at least. Default 2.
    pub credits_min: u32,
    /// Purchases within this long of the first after dormancy form one draining. Default
    /// 3,600 s.
    pub drain_window_seconds: i64,
    /// Share of what was credited while dormant that the draining must spend, percent.
    /// Default 80.
    pub drained_percent: u64,
}

impl Default for DormantConfig {
    fn default() -> Self {
        DormantConfig {
            dormant_seconds: 7_776_000,
            credits_min: 2,
            drain_window_seconds: 3_600,
            drained_percent: 80,
        }
    }
}
