//! What the journal holds: one [`Record`] per business event, each self-contained so that
//! `verify` can recompute every balance from the journal alone, without the registry.
//!
//! A record names the business facts (which card, which pockets, how much); the double-entry
//! legs follow from them deterministically through [`Record::legs`], so the journal cannot hold
//! a transfer whose legs do not balance.

use crate::day::Day;
use crate::ids::{
    AuthorizationId, CardId, Fingerprint, MerchantId, ProgramCode, PurchaseKey, Rrn, TerminalId,
};
use crate::money::Money;
use serde::{Deserialize, Serialize};
use std::fmt;

/// An account in the double-entry books.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
pub enum Account {
    /// The Bank Penyalur's funding source: where city budget money enters. Its balance is minus
    /// everything funded, which is what keeps the sum of all balances at zero.
    FundingSource,
    /// A program's giro account at the Bank Penyalur: funded money not yet in a pocket, plus
    /// money spent at E-Warong that is not settled yet, minus reversals of settled purchases
    /// whose adjustments are not settled yet (the one way it goes below zero:
    /// `State::giro_floor`).
    Giro(ProgramCode),
    /// A card's pocket for one program.
    Pocket(CardId, ProgramCode),
    /// What the switch owes an E-Warong after settlement.
    Payable(MerchantId),
    /// What the Bank Penyalur has paid an E-Warong from the program's money (bank confirmation
    /// `PAID`): money that has left the program.
    PaidOut(MerchantId),
}

impl Account {
    /// Accounts that may go below zero. Only the funding source: every other account holds
    /// real money and a negative balance there is a bug or a double spend.
    pub fn may_be_negative(&self) -> bool {
        matches!(self, Account::FundingSource)
    }
}

/// One leg of a transfer: `amount` leaves `from` and arrives in `to`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Leg {
    /// The account debited.
    pub from: Account,
    /// The account credited.
    pub to: Account,
    /// Always positive.
    pub amount: Money,
}

/// A DE39 response code as the ledger stores it: two ASCII characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ResponseCode(pub [u8; 2]);

impl ResponseCode {
    /// `00`: approved.
    pub const APPROVED: ResponseCode = ResponseCode(*b"00");
    /// `05`: the reversal arrived before this purchase (tombstone).
    pub const DO_NOT_HONOUR: ResponseCode = ResponseCode(*b"05");
    /// `51`: spendable balance below the amount.
    pub const INSUFFICIENT_FUNDS: ResponseCode = ResponseCode(*b"51");
    /// `57`: a basket category no program of the card allows, or no basket where required.
    pub const NOT_PERMITTED: ResponseCode = ResponseCode(*b"57");
    /// `61`: above the per-purchase limit.
    pub const EXCEEDS_AMOUNT_LIMIT: ResponseCode = ResponseCode(*b"61");
    /// `65`: above the daily count limit.
    pub const EXCEEDS_FREQUENCY_LIMIT: ResponseCode = ResponseCode(*b"65");

    /// The code from two ASCII digits (`None` otherwise).
    pub fn new(text: &str) -> Option<ResponseCode> {
        let bytes: [u8; 2] = text.as_bytes().try_into().ok()?;
        bytes
            .iter()
            .all(u8::is_ascii_alphanumeric)
            .then_some(ResponseCode(bytes))
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        // Constructed only from ASCII alphanumerics.
        std::str::from_utf8(&self.0).unwrap_or("??")
    }
}

impl fmt::Debug for ResponseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ResponseCode({})", self.as_str())
    }
}

/// Everything the switch assigns in a 0210, stored so a duplicate gets the same bytes back.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct AuthResponse {
    /// DE39.
    pub code: ResponseCode,
    /// DE37, assigned by the switch for the first attempt and kept for every duplicate.
    pub rrn: Rrn,
    /// DE38, on approvals only.
    pub authorization_id: Option<AuthorizationId>,
    /// The amount in DE54: spendable balance after an approved purchase.
    pub balance_after: Option<Money>,
}

/// How much one pocket (program) of a card gave or received.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct PocketAmount {
    /// The program whose pocket it is.
    pub program: ProgramCode,
    /// Always positive.
    pub amount: Money,
}

/// One item of a DE48 basket (§4 of the host interface), kept with an approved purchase so
/// reports can say what the money bought.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct BasketLine {
    /// Commodity category, two digits (`01` rice ... `90`-`99` non-food).
    pub category: String,
    /// Quantity as the terminal sent it.
    pub quantity: u8,
    /// The item's amount.
    pub amount: Money,
}

/// A purchase authorization as answered: approved (with legs) or declined (no legs).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct PurchaseRecord {
    /// DE41 + DE11 + DE7.
    pub key: PurchaseKey,
    /// The request's content, for telling a retry from a conflict.
    pub fingerprint: Fingerprint,
    /// The card, when the switch could resolve the PAN to one.
    pub card: Option<CardId>,
    /// DE42.
    pub merchant: MerchantId,
    /// DE4.
    pub amount: Money,
    /// The WITA day of the authorization, for the daily count.
    pub day: Day,
    /// What the terminal was (and will again be) told.
    pub response: AuthResponse,
    /// Pockets debited, earliest expiry first; empty for a decline.
    pub legs: Vec<PocketAmount>,
    /// The DE48 basket of an approved purchase; empty for a decline or a purchase without one.
    pub basket: Vec<BasketLine>,
}

/// The one reversal of a purchase that moves state: either money back, or a tombstone.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct ReversalRecord {
    /// The original purchase's key (from DE90 and DE41).
    pub original: PurchaseKey,
    /// What happened.
    pub effect: ReversalEffect,
}

/// The state-changing outcomes of a reversal. The others (already reversed, declined original,
/// mismatch, settled batch) change nothing and are not journaled.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum ReversalEffect {
    /// The original's legs go back to the same card's pockets.
    Reversed {
        /// The card of the original.
        card: CardId,
        /// The original's legs, returned in full.
        legs: Vec<PocketAmount>,
    },
    /// The original was not found: if it arrives later it is declined with `05`.
    Tombstone,
}

/// Terminal batch totals as in DE63.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct BatchTotals {
    /// Approved purchases not reversed.
    pub sales_count: u32,
    /// Their amount.
    pub sales_amount: Money,
    /// Reversed purchases.
    pub reversal_count: u32,
    /// Their amount.
    pub reversal_amount: Money,
}

/// One E-Warong's line of a business day's settlement.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct SettlementLine {
    /// DE42.
    pub merchant: MerchantId,
    /// Approved purchases in the settled batches, reversed ones included.
    pub purchase_count: u32,
    /// Their amount.
    pub purchase_amount: Money,
    /// Reversed purchases among them.
    pub reversal_count: u32,
    /// Their amount.
    pub reversal_amount: Money,
    /// Purchases minus reversals, per program: what moves from each program's giro account to
    /// the E-Warong's payable account (programs with a positive net only, in code order).
    pub net: Vec<PocketAmount>,
    /// Earlier lines the bank rejected, paid again with this one.
    pub carried: Money,
    /// What the bank is asked to pay: the net over all programs plus `carried`.
    pub amount: Money,
}

/// One E-Warong's line of a business date's settlement ([`Record::DaySettlement`]).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct DayLine {
    /// DE42.
    pub merchant: MerchantId,
    /// Approved purchases authorized on the business date, reversed ones included.
    pub purchase_count: u32,
    /// Their amount.
    pub purchase_amount: Money,
    /// Those of them reversed before the date was settled.
    pub reversal_count: u32,
    /// Their amount.
    pub reversal_amount: Money,
    /// Purchases of earlier, already settled dates reversed since: taken back from this line.
    pub adjustment_count: u32,
    /// Their amount.
    pub adjustment_amount: Money,
    /// Purchases minus reversals minus adjustments, per program (non-zero only, in code
    /// order): a positive amount moves from the program's giro account to the E-Warong's
    /// payable account, a negative one back.
    pub net: Vec<PocketAmount>,
    /// Earlier lines the bank rejected, paid again with this one.
    pub carried: Money,
    /// What the bank is asked to pay: the net over all programs plus `carried`; never negative.
    pub amount: Money,
}

/// A journal record: one business event.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum Record {
    /// Money from the city budget into a program's giro account.
    Funding {
        /// The bank's reference, the idempotency key.
        reference: String,
        /// The program funded.
        program: ProgramCode,
        /// Positive.
        amount: Money,
    },
    /// A period's benefit into every eligible card's pocket, all or nothing.
    Disbursement {
        /// The program paying.
        program: ProgramCode,
        /// The period (e.g. `2025-10`).
        period: String,
        /// One credit per card.
        credits: Vec<(CardId, Money)>,
    },
    /// A purchase authorization, approved or declined.
    Purchase(PurchaseRecord),
    /// A reversal that changed state.
    Reversal(ReversalRecord),
    /// Every pocket of a card moved to its replacement.
    Replacement {
        /// The card replaced.
        old_card: CardId,
        /// The new card.
        new_card: CardId,
        /// What moved, pocket by pocket.
        moves: Vec<PocketAmount>,
    },
    /// A business day's settlement: every closed, unsettled terminal batch netted per
    /// E-Warong, moved from the programs' giro accounts to the E-Warongs' payable accounts.
    Settlement {
        /// The WITA business date.
        business_date: Day,
        /// The batches settled: (DE41, switch-side batch sequence), sorted.
        batches: Vec<(TerminalId, u64)>,
        /// One line per E-Warong with a purchase or a carried amount, by DE42.
        lines: Vec<SettlementLine>,
    },
    /// The bank's confirmation of one settlement line: `PAID` moves the line's amount out of
    /// the payable account; `REJECTED` leaves it there to be carried into the next settlement.
    Payout {
        /// The settlement's business date.
        business_date: Day,
        /// DE42.
        merchant: MerchantId,
        /// The line's amount.
        amount: Money,
        /// Whether the bank paid it.
        paid: bool,
        /// The bank's reference.
        bank_reference: String,
    },
    /// The year-end close of a program: expired pockets back to the program's giro account
    /// (Pasal 5, 14). Idempotent per (program, as_of); a later close sweeps what reversals
    /// credited to expired pockets after this one.
    ProgramClose {
        /// The program closed.
        program: ProgramCode,
        /// The WITA day the close is as of (after the program's pocket expiry).
        as_of: Day,
        /// What each card's pocket returned, by card id; positive amounts only.
        returns: Vec<(CardId, Money)>,
    },
    /// A terminal's open batch closed on the switch's totals.
    BatchClose {
        /// DE41.
        terminal: TerminalId,
        /// DE60 as the terminal sent it.
        batch_number: String,
        /// DE63 as the terminal sent it; the switch's own totals follow from the journal.
        terminal_totals: BatchTotals,
    },
    /// A revocation of people's enrolment in a program (the Mayor's decree): what their cards'
    /// pockets of the program held goes back to the program's giro account. Idempotent per
    /// (program, reference). (Last, so journals written before it still decode.)
    Revocation {
        /// The program.
        program: ProgramCode,
        /// The decree and whom it revokes (`DECREE:SSN...`, or a determination).
        reference: String,
        /// What each card's pocket returned, by card id; positive amounts only.
        returns: Vec<(CardId, Money)>,
    },
    /// The settlement cut-over in force from an instant on: which business date (WITA) a
    /// purchase accepted from then on belongs to. Journaled so a replay dates every purchase
    /// as it was dated live, whatever the flag says later. Before the first one: midnight.
    Cutover {
        /// From when it is in force (UTC seconds; the entry's acceptance time).
        from_unix_seconds: i64,
        /// Seconds after a WITA day's midnight at which its business day ends (86,400: the
        /// midnight at its end).
        seconds: u32,
    },
    /// A business date's settlement: the approved purchases authorized on that date, net of
    /// their reversals and of adjustments, per E-Warong, moved between the programs' giro
    /// accounts and the E-Warongs' payable accounts. Replaces [`Record::Settlement`], which
    /// settled terminal batches and still replays as it did.
    DaySettlement {
        /// The WITA business date.
        business_date: Day,
        /// One line per E-Warong with a purchase, an adjustment or a carried amount, by DE42.
        lines: Vec<DayLine>,
    },
}

/// One line of a settlement of either kind as [`Record::settlement`] reads it: the E-Warong,
/// the amount the bank is asked to pay, and the net moved per program.
pub type SettledLine<'a> = (&'a MerchantId, Money, &'a [PocketAmount]);

impl Record {
    /// A settlement's business date and lines, by batch ([`Record::Settlement`], journals
    /// from before settlement by date) or by date ([`Record::DaySettlement`]); `None` for any
    /// other record.
    pub fn settlement(&self) -> Option<(Day, Vec<SettledLine<'_>>)> {
        fn read<'a, L>(
            date: Day,
            lines: &'a [L],
            line: impl Fn(&'a L) -> SettledLine<'a>,
        ) -> Option<(Day, Vec<SettledLine<'a>>)> {
            Some((date, lines.iter().map(line).collect()))
        }
        match self {
            Record::Settlement {
                business_date,
                lines,
                ..
            } => read(*business_date, lines, |l| {
                (&l.merchant, l.amount, l.net.as_slice())
            }),
            Record::DaySettlement {
                business_date,
                lines,
            } => read(*business_date, lines, |l| {
                (&l.merchant, l.amount, l.net.as_slice())
            }),
            _ => None,
        }
    }

    /// The double-entry legs of this record.
    pub fn legs(&self) -> Vec<Leg> {
        match self {
            Record::Funding {
                program, amount, ..
            } => vec![Leg {
                from: Account::FundingSource,
                to: Account::Giro(program.clone()),
                amount: *amount,
            }],
            Record::Disbursement {
                program, credits, ..
            } => credits
                .iter()
                .map(|(card, amount)| Leg {
                    from: Account::Giro(program.clone()),
                    to: Account::Pocket(*card, program.clone()),
                    amount: *amount,
                })
                .collect(),
            Record::Purchase(purchase) => match purchase.card {
                Some(card) => purchase
                    .legs
                    .iter()
                    .map(|leg| Leg {
                        from: Account::Pocket(card, leg.program.clone()),
                        to: Account::Giro(leg.program.clone()),
                        amount: leg.amount,
                    })
                    .collect(),
                None => Vec::new(),
            },
            Record::Reversal(ReversalRecord {
                effect: ReversalEffect::Reversed { card, legs },
                ..
            }) => legs
                .iter()
                .map(|leg| Leg {
                    from: Account::Giro(leg.program.clone()),
                    to: Account::Pocket(*card, leg.program.clone()),
                    amount: leg.amount,
                })
                .collect(),
            Record::Reversal(_) => Vec::new(),
            Record::Replacement {
                old_card,
                new_card,
                moves,
            } => moves
                .iter()
                .map(|leg| Leg {
                    from: Account::Pocket(*old_card, leg.program.clone()),
                    to: Account::Pocket(*new_card, leg.program.clone()),
                    amount: leg.amount,
                })
                .collect(),
            Record::Settlement { lines, .. } => lines
                .iter()
                .flat_map(|line| {
                    line.net.iter().map(|net| Leg {
                        from: Account::Giro(net.program.clone()),
                        to: Account::Payable(line.merchant.clone()),
                        amount: net.amount,
                    })
                })
                .collect(),
            Record::Payout {
                merchant,
                amount,
                paid: true,
                ..
            } => vec![Leg {
                from: Account::Payable(merchant.clone()),
                to: Account::PaidOut(merchant.clone()),
                amount: *amount,
            }],
            Record::ProgramClose {
                program, returns, ..
            }
            | Record::Revocation {
                program, returns, ..
            } => returns
                .iter()
                .map(|(card, amount)| Leg {
                    from: Account::Pocket(*card, program.clone()),
                    to: Account::Giro(program.clone()),
                    amount: *amount,
                })
                .collect(),
            Record::DaySettlement { lines, .. } => {
                let leg = |merchant: &MerchantId, net: &PocketAmount| {
                    let payable = Account::Payable(merchant.clone());
                    let giro = Account::Giro(net.program.clone());
                    match net.amount.checked_neg() {
                        Some(back) if net.amount.is_negative() => Leg {
                            from: payable,
                            to: giro,
                            amount: back,
                        },
                        _ => Leg {
                            from: giro,
                            to: payable,
                            amount: net.amount,
                        },
                    }
                };
                lines
                    .iter()
                    .flat_map(|line| line.net.iter().map(|net| leg(&line.merchant, net)))
                    .collect()
            }
            Record::Payout { .. } | Record::BatchClose { .. } | Record::Cutover { .. } => {
                Vec::new()
            }
        }
    }
}

/// A journal entry's body: the record and when the ledger accepted it.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Entry {
    /// UTC seconds since the Unix epoch when the ledger accepted the record.
    pub at_unix_seconds: i64,
    /// The business event.
    pub record: Record,
}
