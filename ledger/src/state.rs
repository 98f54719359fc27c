//! The journal's projection: every balance, every authorization, tombstones and terminal
//! batches, rebuilt by replaying the journal and kept current by the journal writer.
//!
//! `apply` is the only way state changes, and it checks the ledger's invariants before it
//! changes anything: a record that would break one is refused whole, so the journal never
//! holds a record that breaks an invariant, and `verify` can re-run the same function.

use crate::day::Day;
use crate::days::{BusinessDays, LineSums};
use crate::ids::{CardId, MerchantId, ProgramCode, PurchaseKey, TerminalId, TransferId};
use crate::money::Money;
use crate::record::{
    Account, BatchTotals, Entry, Leg, PocketAmount, PurchaseRecord, Record, ResponseCode,
    ReversalEffect, ReversalRecord, SettlementLine,
};
use crate::totals::{CardFlows, Period, Totals, add_to, card_flows, sub_from};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

/// Why a record cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvariantError {
    /// The record's transfer id is already in the journal.
    #[error("transfer {0} is already in the journal")]
    DuplicateTransfer(TransferId),
    /// A leg with a zero or negative amount.
    #[error("a leg of transfer {0} has a non-positive amount")]
    NonPositiveAmount(TransferId),
    /// The record would take an account below zero.
    #[error("transfer {transfer} would take {account:?} below zero")]
    Overdrawn {
        /// The offending transfer.
        transfer: TransferId,
        /// The account.
        account: Account,
    },
    /// A program close naming a card twice.
    #[error("program close {0} names a card twice")]
    CloseCardTwice(TransferId),
    /// Arithmetic overflow.
    #[error("transfer {0} overflows a balance")]
    Overflow(TransferId),
    /// An approved purchase whose legs do not add up to its amount, or a decline with legs.
    #[error("purchase {0}: legs do not add up to the amount")]
    LegsDoNotAddUp(TransferId),
    /// A reversal whose original is not an approved, unreversed purchase in an open batch.
    #[error("reversal {0} does not match an open, approved, unreversed purchase")]
    ReversalWithoutOriginal(TransferId),
    /// A settlement naming a batch that is open, unknown or settled already, or whose lines
    /// are not what the journal's purchases and carried amounts say.
    #[error("settlement {0} does not match the journal's closed batches and purchases")]
    SettlementMismatch(TransferId),
    /// A payout (bank confirmation) for a line that no settlement has, or with another amount.
    #[error("payout {0} does not match a settlement line")]
    PayoutWithoutLine(TransferId),
    /// The record needs a purchase that has left memory, and history cannot be read.
    #[error("transfer {0} needs a purchase from history, which cannot be read: {1}")]
    HistoryUnreadable(TransferId, String),
}

/// A card as the journal knows it: its pockets and today's approved purchase count.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CardState {
    /// Pocket balances by program. A pocket exists once it has been credited, even at zero.
    pub pockets: BTreeMap<ProgramCode, Money>,
    /// The WITA day `purchases_today` counts.
    pub day: Day,
    /// Approved purchases on `day`, reversed ones included (§5 of the host interface).
    pub purchases_today: u32,
    /// The transfers that touched the card and are still in memory's log, oldest first (the
    /// older ones are in [`crate::history`]), so a balance store can be rebuilt with the
    /// idempotency records its scripts check.
    pub history: Vec<CardRow>,
    /// What moved through the card's pockets per half-year, oldest first (the report's read
    /// model: [`crate::totals`]).
    pub flows: Vec<(Period, CardFlows)>,
}

/// How a transfer touched a card.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CardTransfer {
    /// A purchase authorization (look it up in `State::purchases`).
    Purchase,
    /// Money arrived (disbursement, reversal, replacement's new card).
    Credit,
    /// Every pocket left (replacement's old card).
    Drain,
}

/// A transfer that touched a card.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CardRow {
    /// Its number in the log ([`State::log_base`] + position).
    pub index: u64,
    /// The transfer.
    pub id: TransferId,
    /// How it touched the card.
    pub how: CardTransfer,
}

/// A purchase as the journal knows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PurchaseState {
    /// The record as journaled.
    pub record: PurchaseRecord,
    /// True once reversed.
    pub reversed: bool,
    /// The switch-side sequence number of the terminal batch it is in (approved ones only).
    pub batch_sequence: Option<u64>,
    /// When the ledger accepted it (UTC seconds).
    pub at_unix_seconds: i64,
}

/// A terminal batch the switch closed.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClosedBatch {
    /// Switch-side batch sequence number (1, 2, ... per terminal).
    pub sequence: u64,
    /// DE60 as the terminal sent it.
    pub batch_number: String,
    /// The journal's totals: the truth the batch closes on.
    pub switch_totals: BatchTotals,
    /// DE63 as the terminal sent it.
    pub terminal_totals: BatchTotals,
    /// When it closed.
    pub closed_at_unix_seconds: i64,
}

/// A terminal's batches.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TerminalBatches {
    /// The open batch, if an approved purchase opened one since the last close.
    pub open: Option<(u64, BatchTotals)>,
    /// The sequence number the next batch gets.
    pub next_sequence: u64,
    /// The batches closed and not settled yet, and the last one closed even when settled
    /// (a repeated 0500 is answered from it), oldest first. A settled batch leaves once it is
    /// not the last ([`State::departed_batches`]), so this stays as short as the days a
    /// terminal's batches wait for settlement.
    pub closed: Vec<ClosedBatch>,
}

impl TerminalBatches {
    /// Closed batch `sequence`, if still here.
    pub fn closed(&self, sequence: u64) -> Option<&ClosedBatch> {
        self.closed.iter().find(|c| c.sequence == sequence)
    }
}

/// What one terminal batch holds per business date and E-Warong, for a batch settlement
/// ([`Record::Settlement`], before settlement by date).
pub type BatchSums = BTreeMap<(Day, MerchantId), LineSums>;

/// What applying a record produced, for the caller waiting on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// Nothing beyond the record itself.
    Done,
    /// A batch closed: on these totals, with this switch-side sequence number.
    BatchClosed(ClosedBatch),
}

/// Maps in [`Purchases`]: a power of two, indexed by a byte of the id.
pub const PURCHASE_SHARDS: usize = 256;

/// Every purchase by id, in [`PURCHASE_SHARDS`] maps chosen by the id's first byte (ids are
/// SHA-256 prefixes, so the maps fill evenly). The projection grows to millions of purchases
/// and is applied under one lock that every purchase waits for: one map would rehash all of
/// them at once on each doubling (tens of milliseconds at a million, every request waiting);
/// here each doubling is one small map's. Records are boxed so a rehash moves pointers.
#[derive(Debug)]
pub struct Purchases {
    shards: Vec<HashMap<TransferId, Box<PurchaseState>>>,
}

impl Default for Purchases {
    fn default() -> Purchases {
        Purchases {
            shards: (0..PURCHASE_SHARDS).map(|_| HashMap::new()).collect(),
        }
    }
}

impl Purchases {
    fn shard(id: &TransferId) -> usize {
        usize::from(id.0[0]) % PURCHASE_SHARDS
    }

    /// The purchase with this id.
    pub fn get(&self, id: &TransferId) -> Option<&PurchaseState> {
        self.shards[Self::shard(id)].get(id).map(|p| &**p)
    }

    /// The purchase with this id, to change.
    pub fn get_mut(&mut self, id: &TransferId) -> Option<&mut PurchaseState> {
        self.shards[Self::shard(id)].get_mut(id).map(|p| &mut **p)
    }

    /// Whether the id is known.
    pub fn contains_key(&self, id: &TransferId) -> bool {
        self.shards[Self::shard(id)].contains_key(id)
    }

    /// Stores a purchase; the one it replaces, if any.
    pub fn insert(&mut self, id: TransferId, purchase: PurchaseState) -> Option<PurchaseState> {
        self.shards[Self::shard(&id)]
            .insert(id, Box::new(purchase))
            .map(|p| *p)
    }

    /// How many purchases.
    pub fn len(&self) -> usize {
        self.shards.iter().map(HashMap::len).sum()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.shards.iter().all(HashMap::is_empty)
    }

    /// Removes a purchase (it has moved to history).
    pub fn remove(&mut self, id: &TransferId) -> Option<PurchaseState> {
        self.shards[Self::shard(id)].remove(id).map(|p| *p)
    }

    /// Every purchase with its id, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&TransferId, &PurchaseState)> {
        self.shards
            .iter()
            .flat_map(|s| s.iter().map(|(id, p)| (id, &**p)))
    }

    /// Every purchase, in no particular order.
    pub fn values(&self) -> impl Iterator<Item = &PurchaseState> {
        self.shards.iter().flat_map(|s| s.values().map(|p| &**p))
    }
}

/// The journal's projection.
#[derive(Debug, Default)]
pub struct State {
    /// Balances of every account but pockets (those live in `cards`).
    pub accounts: HashMap<Account, Money>,
    /// Cards with at least one pocket or purchase.
    pub cards: HashMap<CardId, CardState>,
    /// Every purchase authorization, approved or declined.
    pub purchases: Purchases,
    /// Reversals that arrived before their original.
    pub tombstones: HashSet<TransferId>,
    /// Transfers other than purchases, by id, with the record that made them.
    pub transfers: HashMap<TransferId, Record>,
    /// Batches per terminal.
    pub terminals: HashMap<TerminalId, TerminalBatches>,
    /// When each entry in `transfers` was accepted (UTC seconds); purchases carry theirs.
    pub transfer_times: HashMap<TransferId, i64>,
    /// What each unsettled terminal batch (DE41, switch-side sequence) holds per E-Warong,
    /// kept as purchases and reversals are applied: a settlement (applied under the
    /// projection's lock, and again by every replay and `verify`) sums its batches' lines
    /// without reading a purchase, so purchases may leave memory before they are settled.
    /// Kept only until the first settlement by date ([`BusinessDays::by_date`]).
    pub batch_sums: HashMap<(TerminalId, u64), BatchSums>,
    /// Closed batches already in a settlement that are still in their terminal's
    /// [`TerminalBatches::closed`] (its last): (DE41, switch-side sequence).
    pub settled_batches: HashSet<(TerminalId, u64)>,
    /// Settled batches that left their terminal's [`TerminalBatches::closed`], oldest first,
    /// until the mover takes them to history ([`crate::window`]); a replay without history
    /// keeps them all.
    pub departed_batches: Vec<(TerminalId, ClosedBatch)>,
    /// Business dates: the cut-overs journaled and what each date not settled yet holds.
    pub days: BusinessDays,
    /// Per E-Warong, settlement amounts the bank rejected that the next settlement must carry.
    pub carried: HashMap<MerchantId, Money>,
    /// Every purchase, reversal, funding, disbursement and replacement in journal order, with
    /// when it was accepted, from entry [`State::log_base`] on (the earlier ones are in
    /// [`crate::history`]). A ring: moving its front to history costs what moves, not what
    /// stays (after a full replay it holds all of history until the mover has taken it).
    pub log: VecDeque<(i64, TransferId)>,
    /// Log entries moved to history ([`crate::window`]): the number of `log[0]`.
    pub log_base: u64,
    /// Purchases and reversals whose log entry has moved to history but which stay in
    /// memory for now (not before the cutoff yet, or brought back by `State::restore`),
    /// looked at again each time the log moves.
    pub pinned: Vec<TransferId>,
    /// The latest cutoff anything left memory at ([`crate::window`]): keys whose DE7 is after
    /// it are answered from memory alone.
    pub horizon: i64,
    /// Cards of `log[0]` whose rows have left for history already: an entry naming more cards
    /// than a move's round takes (a disbursement names every card) leaves in slices
    /// ([`crate::window`]). Not in snapshots: a projection that starts over finds those rows
    /// in memory again and moves them again (history keeps each row once).
    pub card_rows_moved: usize,
    /// Where what left memory is, so a reversal of a purchase that left can bring it back;
    /// `None` when nothing leaves.
    pub history: Option<std::sync::Arc<crate::history::History>>,
    /// Entries applied.
    pub entries: u64,
    /// When the newest entry applied was accepted (UTC seconds): the time the ledger moves
    /// what has left the working set as of ([`crate::window`]), so records made with a
    /// clock of their own (a test's, a history writer's) never leave ahead of their time.
    pub newest_at: i64,
    /// How far each other node's chain is applied (a Scylla keyspace shared by several
    /// nodes), so following them goes on from there.
    pub followed: HashMap<String, crate::journal::FollowedChain>,
    /// Flows per half-year, per program and category, kept as records are applied: what the
    /// reports read instead of walking `log` ([`crate::totals`]).
    pub totals: Totals,
}

impl State {
    /// The balance of any account (zero if never touched).
    pub fn balance(&self, account: &Account) -> Money {
        match account {
            Account::Pocket(card, program) => self
                .cards
                .get(card)
                .and_then(|card| card.pockets.get(program))
                .copied()
                .unwrap_or(Money::ZERO),
            other => self.accounts.get(other).copied().unwrap_or(Money::ZERO),
        }
    }

    /// Sum of every balance: zero whenever the books are consistent.
    pub fn sum_of_balances(&self) -> Option<Money> {
        let pockets = self
            .cards
            .values()
            .flat_map(|card| card.pockets.values().copied());
        Money::checked_sum(self.accounts.values().copied().chain(pockets))
    }

    /// Every closed batch not settled yet, sorted by terminal and sequence.
    pub fn unsettled_batches(&self) -> Vec<(TerminalId, u64)> {
        let mut batches: Vec<(TerminalId, u64)> = self
            .terminals
            .iter()
            .flat_map(|(terminal, batches)| {
                batches
                    .closed
                    .iter()
                    .map(move |closed| (terminal.clone(), closed.sequence))
            })
            .filter(|batch| !self.settled_batches.contains(batch))
            .collect();
        batches.sort();
        batches
    }

    /// The settlement lines of these batches as the journal has them: approved purchases per
    /// E-Warong, reversals among them, the net per program, and what rejected payouts carry.
    pub fn settlement_lines(&self, batches: &[(TerminalId, u64)]) -> Vec<SettlementLine> {
        let mut lines: BTreeMap<MerchantId, (SettlementLine, BTreeMap<ProgramCode, Money>)> =
            BTreeMap::new();
        let blank = |merchant: &MerchantId| {
            (
                SettlementLine {
                    merchant: merchant.clone(),
                    purchase_count: 0,
                    purchase_amount: Money::ZERO,
                    reversal_count: 0,
                    reversal_amount: Money::ZERO,
                    net: Vec::new(),
                    carried: Money::ZERO,
                    amount: Money::ZERO,
                },
                BTreeMap::new(),
            )
        };
        let sums = batches
            .iter()
            .filter_map(|batch| self.batch_sums.get(batch))
            .flatten();
        for ((_, merchant), sums) in sums {
            let (line, net) = lines
                .entry(merchant.clone())
                .or_insert_with(|| blank(merchant));
            line.purchase_count += sums.purchase_count;
            line.purchase_amount = line
                .purchase_amount
                .checked_add(sums.purchase_amount)
                .unwrap_or(line.purchase_amount);
            line.reversal_count += sums.reversal_count;
            line.reversal_amount = line
                .reversal_amount
                .checked_add(sums.reversal_amount)
                .unwrap_or(line.reversal_amount);
            for (program, amount) in &sums.net {
                let total = net.entry(program.clone()).or_insert(Money::ZERO);
                *total = total.checked_add(*amount).unwrap_or(*total);
            }
        }
        for (merchant, carried) in &self.carried {
            if carried.is_positive() {
                lines
                    .entry(merchant.clone())
                    .or_insert_with(|| blank(merchant))
                    .0
                    .carried = *carried;
            }
        }
        lines
            .into_values()
            .map(|(mut line, net)| {
                line.net = net
                    .into_iter()
                    .filter(|(_, amount)| amount.is_positive())
                    .map(|(program, amount)| PocketAmount { program, amount })
                    .collect();
                line.amount = Money::checked_sum(
                    line.net
                        .iter()
                        .map(|n| n.amount)
                        .chain(std::iter::once(line.carried)),
                )
                .unwrap_or(Money::ZERO);
                line
            })
            .collect()
    }

    /// The purchase with this key, if the journal has it.
    pub fn purchase(&self, key: &PurchaseKey) -> Option<&PurchaseState> {
        self.purchases.get(&TransferId::purchase(key))
    }

    /// As [`State::apply`], taking the entry by value so the projection keeps it without a copy.
    /// Purchases, nearly every entry, take a path that changes only the pockets and giro
    /// accounts they name, without building legs or copying the record: the journal's writer
    /// holds the projection's lock while it applies, and every purchase waits for that.
    pub fn apply_owned(&mut self, entry: Entry) -> Result<Applied, InvariantError> {
        match entry.record {
            Record::Purchase(purchase) => {
                let id = TransferId::purchase(&purchase.key);
                if let Some(existing) = self.purchases.get(&id) {
                    if existing.record != purchase {
                        return Err(InvariantError::DuplicateTransfer(id));
                    }
                    self.entries += 1;
                    return Ok(Applied::Done);
                }
                self.apply_purchase(id, purchase, entry.at_unix_seconds)?;
                self.log.push_back((entry.at_unix_seconds, id));
                self.entries += 1;
                self.newest_at = self.newest_at.max(entry.at_unix_seconds);
                Ok(Applied::Done)
            }
            record => self.apply(&Entry {
                at_unix_seconds: entry.at_unix_seconds,
                record,
            }),
        }
    }

    fn apply_purchase(
        &mut self,
        id: TransferId,
        purchase: PurchaseRecord,
        at_unix_seconds: i64,
    ) -> Result<(), InvariantError> {
        let approved = purchase.response.code == ResponseCode::APPROVED;
        let paid = Money::checked_sum(purchase.legs.iter().map(|leg| leg.amount));
        let distinct = purchase
            .legs
            .iter()
            .enumerate()
            .all(|(i, leg)| purchase.legs[..i].iter().all(|l| l.program != leg.program));
        if (approved && (paid != Some(purchase.amount) || purchase.card.is_none() || !distinct))
            || (!approved && !purchase.legs.is_empty())
        {
            return Err(InvariantError::LegsDoNotAddUp(id));
        }
        // Every check before any change: new pocket and giro balances first.
        let mut new_balances = Vec::with_capacity(purchase.legs.len());
        if let Some(card) = purchase.card {
            let pockets = self.cards.get(&card).map(|c| &c.pockets);
            for leg in &purchase.legs {
                if !leg.amount.is_positive() {
                    return Err(InvariantError::NonPositiveAmount(id));
                }
                let pocket = pockets
                    .and_then(|p| p.get(&leg.program))
                    .copied()
                    .unwrap_or(Money::ZERO);
                let pocket = pocket
                    .checked_sub(leg.amount)
                    .ok_or(InvariantError::Overflow(id))?;
                if pocket.is_negative() {
                    return Err(InvariantError::Overdrawn {
                        transfer: id,
                        account: Account::Pocket(card, leg.program.clone()),
                    });
                }
                let giro_account = Account::Giro(leg.program.clone());
                let giro = self
                    .balance(&giro_account)
                    .checked_add(leg.amount)
                    .ok_or(InvariantError::Overflow(id))?;
                new_balances.push((giro_account, pocket, giro));
            }
            let card_state = self.cards.entry(card).or_default();
            for (leg, (_, pocket, _)) in purchase.legs.iter().zip(&new_balances) {
                match card_state.pockets.get_mut(&leg.program) {
                    Some(balance) => *balance = *pocket,
                    None => {
                        card_state.pockets.insert(leg.program.clone(), *pocket);
                    }
                }
            }
        }
        for (giro_account, _, giro) in new_balances {
            self.accounts.insert(giro_account, giro);
        }
        self.record_purchase(id, purchase, at_unix_seconds);
        Ok(())
    }

    /// Checks `record` against every invariant and applies it, or changes nothing.
    ///
    /// A record whose transfer id is already applied is accepted, and changes nothing but the
    /// entry count, when it is *identical* to the one applied: the same decision journaled
    /// twice (on Scylla, a terminal's retry on another node, answered there from Redis, which
    /// keeps each transfer's decision). It is kept once. Other content under the same id is
    /// [`InvariantError::DuplicateTransfer`].
    pub fn apply(&mut self, entry: &Entry) -> Result<Applied, InvariantError> {
        if let Record::Purchase(_) = &entry.record {
            return self.apply_owned(entry.clone());
        }
        let record = &entry.record;
        if let Record::Reversal(ReversalRecord {
            original,
            effect: ReversalEffect::Reversed { .. },
        }) = record
        {
            self.restore(
                &TransferId::purchase(original),
                TransferId::reversal(original),
            )?;
        }
        let id = match self.check_new(record) {
            Err(InvariantError::DuplicateTransfer(id))
                if self.transfers.get(&id) == Some(record) =>
            {
                self.entries += 1;
                return Ok(Applied::Done);
            }
            other => other?,
        };
        if let Record::Purchase(purchase) = record {
            let paid = Money::checked_sum(purchase.legs.iter().map(|leg| leg.amount));
            let approved = purchase.response.code == ResponseCode::APPROVED;
            if approved && (paid != Some(purchase.amount) || purchase.card.is_none()) {
                return Err(InvariantError::LegsDoNotAddUp(id));
            }
            if !approved && !purchase.legs.is_empty() {
                return Err(InvariantError::LegsDoNotAddUp(id));
            }
        }
        match record {
            Record::Settlement { batches, lines, .. } => {
                if self.days.by_date {
                    return Err(InvariantError::SettlementMismatch(id));
                }
                self.check_settlement(id, batches, lines)?;
            }
            Record::DaySettlement {
                business_date,
                lines,
            } if self.day_lines(*business_date).0 != *lines => {
                return Err(InvariantError::SettlementMismatch(id));
            }
            Record::Payout {
                business_date,
                merchant,
                amount,
                ..
            } => self.check_payout(id, *business_date, merchant, *amount)?,
            Record::ProgramClose { returns, .. } | Record::Revocation { returns, .. } => {
                let mut cards = HashSet::with_capacity(returns.len());
                if !returns.iter().all(|(card, _)| cards.insert(*card)) {
                    return Err(InvariantError::CloseCardTwice(id));
                }
            }
            _ => {}
        }
        let legs = record.legs();
        let late = self.late_reversal_legs(record);
        let changes = self.balance_changes(id, &legs, &late)?;
        if let Record::Reversal(reversal) = record
            && let ReversalEffect::Reversed { .. } = reversal.effect
        {
            self.check_reversible(id, &reversal.original)?;
        }
        for (account, balance) in changes {
            self.set_balance(account, balance);
        }
        self.entries += 1;
        self.newest_at = self.newest_at.max(entry.at_unix_seconds);
        let applied = self.record_effects(id, entry);
        if !matches!(
            entry.record,
            Record::BatchClose { .. } | Record::Cutover { .. }
        ) {
            self.log.push_back((entry.at_unix_seconds, id));
            self.transfer_times.insert(id, entry.at_unix_seconds);
        }
        Ok(applied)
    }

    fn check_new(&self, record: &Record) -> Result<TransferId, InvariantError> {
        let (id, seen) = match record {
            Record::Purchase(purchase) => {
                let id = TransferId::purchase(&purchase.key);
                (id, self.purchases.contains_key(&id))
            }
            Record::BatchClose { terminal, .. } => {
                let sequence = self.terminals.get(terminal).map_or(0, |t| t.next_sequence);
                (TransferId::batch_close(terminal, sequence), false)
            }
            Record::Funding { reference, .. } => self.seen(TransferId::funding(reference)),
            Record::Disbursement {
                program, period, ..
            } => self.seen(TransferId::disbursement(program, period)),
            Record::Reversal(reversal) => self.seen(TransferId::reversal(&reversal.original)),
            Record::Replacement { old_card, .. } => self.seen(TransferId::replacement(*old_card)),
            Record::Settlement { business_date, .. }
            | Record::DaySettlement { business_date, .. } => {
                self.seen(TransferId::settlement(*business_date))
            }
            Record::Cutover {
                from_unix_seconds,
                seconds,
            } => (TransferId::cutover(*from_unix_seconds, *seconds), false),
            Record::Payout {
                business_date,
                merchant,
                ..
            } => self.seen(TransferId::payout(*business_date, merchant)),
            Record::ProgramClose { program, as_of, .. } => {
                self.seen(TransferId::program_close(program, *as_of))
            }
            Record::Revocation {
                program, reference, ..
            } => self.seen(TransferId::revocation(program, reference)),
        };
        if seen {
            Err(InvariantError::DuplicateTransfer(id))
        } else {
            Ok(id)
        }
    }

    fn check_settlement(
        &self,
        id: TransferId,
        batches: &[(TerminalId, u64)],
        lines: &[SettlementLine],
    ) -> Result<(), InvariantError> {
        let mut seen = HashSet::new();
        for (terminal, sequence) in batches {
            let closed = self
                .terminals
                .get(terminal)
                .is_some_and(|t| t.closed.iter().any(|c| c.sequence == *sequence));
            if !closed
                || self
                    .settled_batches
                    .contains(&(terminal.clone(), *sequence))
                || !seen.insert((terminal, *sequence))
            {
                return Err(InvariantError::SettlementMismatch(id));
            }
        }
        if self.settlement_lines(batches) != lines {
            return Err(InvariantError::SettlementMismatch(id));
        }
        Ok(())
    }

    fn check_payout(
        &self,
        id: TransferId,
        business_date: Day,
        merchant: &MerchantId,
        amount: Money,
    ) -> Result<(), InvariantError> {
        match self.settlement_line_amount(business_date, merchant) {
            Some(line) if line == amount => Ok(()),
            _ => Err(InvariantError::PayoutWithoutLine(id)),
        }
    }

    fn seen(&self, id: TransferId) -> (TransferId, bool) {
        (id, self.transfers.contains_key(&id))
    }

    /// The new balance of every account the legs touch, with every invariant checked.
    /// A giro account may end below zero only by adjustments not settled yet
    /// ([`State::giro_floor`]): `late` is what this record adds to them.
    fn balance_changes(
        &self,
        id: TransferId,
        legs: &[Leg],
        late: &[PocketAmount],
    ) -> Result<Vec<(Account, Money)>, InvariantError> {
        let mut changes: Vec<(Account, Money)> = Vec::with_capacity(legs.len() * 2);
        // Where each account is in `changes`: a disbursement has one leg per card, and a
        // linear search per leg would make it quadratic.
        let mut index: HashMap<&Account, usize> = HashMap::with_capacity(legs.len() * 2);
        for leg in legs {
            if !leg.amount.is_positive() {
                return Err(InvariantError::NonPositiveAmount(id));
            }
            for (account, delta) in [
                (&leg.from, leg.amount.checked_neg()),
                (&leg.to, Some(leg.amount)),
            ] {
                let delta = delta.ok_or(InvariantError::Overflow(id))?;
                let position = index.get(account).copied();
                let current = position.map_or_else(|| self.balance(account), |p| changes[p].1);
                let next = current
                    .checked_add(delta)
                    .ok_or(InvariantError::Overflow(id))?;
                match position {
                    Some(p) => changes[p].1 = next,
                    None => {
                        index.insert(account, changes.len());
                        changes.push((account.clone(), next));
                    }
                }
            }
        }
        for (account, balance) in &changes {
            let within_floor = match account {
                Account::Giro(program) => *balance >= self.giro_floor(program, late),
                _ => false,
            };
            if balance.is_negative() && !account.may_be_negative() && !within_floor {
                return Err(InvariantError::Overdrawn {
                    transfer: id,
                    account: account.clone(),
                });
            }
        }
        Ok(changes)
    }

    fn check_reversible(
        &self,
        id: TransferId,
        original: &PurchaseKey,
    ) -> Result<(), InvariantError> {
        let purchase = self
            .purchase(original)
            .ok_or(InvariantError::ReversalWithoutOriginal(id))?;
        let open = self
            .terminals
            .get(&original.terminal)
            .and_then(|t| t.open)
            .map(|(sequence, _)| sequence);
        let approved = purchase.record.response.code == ResponseCode::APPROVED;
        if !approved || purchase.reversed || purchase.batch_sequence != open {
            return Err(InvariantError::ReversalWithoutOriginal(id));
        }
        Ok(())
    }

    fn set_balance(&mut self, account: Account, balance: Money) {
        match account {
            Account::Pocket(card, program) => {
                self.cards
                    .entry(card)
                    .or_default()
                    .pockets
                    .insert(program, balance);
            }
            other => {
                self.accounts.insert(other, balance);
            }
        }
    }

    fn record_effects(&mut self, id: TransferId, entry: &Entry) -> Applied {
        match &entry.record {
            Record::Purchase(purchase) => {
                self.record_purchase(id, purchase.clone(), entry.at_unix_seconds);
                Applied::Done
            }
            Record::Reversal(reversal) => {
                match &reversal.effect {
                    ReversalEffect::Tombstone => {
                        self.tombstones
                            .insert(TransferId::purchase(&reversal.original));
                    }
                    ReversalEffect::Reversed { card, legs } => {
                        self.touch(*card, id, CardTransfer::Credit);
                        self.record_reversal(&reversal.original);
                        let at = entry.at_unix_seconds;
                        for leg in legs {
                            add_to(
                                &mut self.totals.program(at, &leg.program).reversed,
                                leg.amount,
                            );
                            self.card_flows(*card, at, |flows| {
                                add_to(&mut flows.reversed, leg.amount);
                                add_to(&mut flows.change, leg.amount);
                            });
                        }
                    }
                }
                self.transfers.insert(id, entry.record.clone());
                Applied::Done
            }
            Record::BatchClose {
                terminal,
                batch_number,
                terminal_totals,
            } => {
                let batches = self.terminals.entry(terminal.clone()).or_default();
                let (sequence, switch_totals) = batches
                    .open
                    .take()
                    .unwrap_or((batches.next_sequence, BatchTotals::default()));
                batches.next_sequence = sequence + 1;
                let closed = ClosedBatch {
                    sequence,
                    batch_number: batch_number.clone(),
                    switch_totals,
                    terminal_totals: *terminal_totals,
                    closed_at_unix_seconds: entry.at_unix_seconds,
                };
                // The last closed batch, if settled (or once dates are settled, whatever it
                // is: it waits for nothing), is no longer the last.
                if let Some(last) = batches.closed.last()
                    && (self
                        .settled_batches
                        .remove(&(terminal.clone(), last.sequence))
                        || self.days.by_date)
                    && let Some(last) = batches.closed.pop()
                {
                    self.departed_batches.push((terminal.clone(), last));
                }
                batches.closed.push(closed.clone());
                self.totals.batch_closed(terminal, &closed);
                let date = self.days.date_of(entry.at_unix_seconds);
                self.days
                    .closed_batches
                    .entry(date)
                    .or_default()
                    .push((terminal.clone(), sequence));
                Applied::BatchClosed(closed)
            }
            Record::Disbursement {
                program, credits, ..
            } => {
                let at = entry.at_unix_seconds;
                for (card, amount) in credits {
                    self.touch(*card, id, CardTransfer::Credit);
                    add_to(&mut self.totals.program(at, program).disbursed, *amount);
                    self.card_flows(*card, at, |flows| {
                        add_to(&mut flows.disbursed, *amount);
                        add_to(&mut flows.change, *amount);
                        flows.credited = true;
                    });
                }
                self.transfers.insert(id, entry.record.clone());
                Applied::Done
            }
            Record::Replacement {
                old_card,
                new_card,
                moves,
            } => {
                self.touch(*old_card, id, CardTransfer::Drain);
                self.touch(*new_card, id, CardTransfer::Credit);
                let moved =
                    Money::checked_sum(moves.iter().map(|leg| leg.amount)).unwrap_or_default();
                let at = entry.at_unix_seconds;
                self.card_flows(*old_card, at, |flows| sub_from(&mut flows.change, moved));
                self.card_flows(*new_card, at, |flows| {
                    add_to(&mut flows.change, moved);
                    flows.credited = true;
                });
                self.transfers.insert(id, entry.record.clone());
                Applied::Done
            }
            Record::ProgramClose {
                program, returns, ..
            }
            | Record::Revocation {
                program, returns, ..
            } => {
                let at = entry.at_unix_seconds;
                for (card, amount) in returns {
                    self.touch(*card, id, CardTransfer::Drain);
                    add_to(&mut self.totals.program(at, program).returned, *amount);
                    self.card_flows(*card, at, |flows| {
                        add_to(&mut flows.returned, *amount);
                        sub_from(&mut flows.change, *amount);
                    });
                }
                self.transfers.insert(id, entry.record.clone());
                Applied::Done
            }
            Record::Funding {
                program, amount, ..
            } => {
                add_to(
                    &mut self.totals.program(entry.at_unix_seconds, program).funded,
                    *amount,
                );
                self.transfers.insert(id, entry.record.clone());
                Applied::Done
            }
            Record::Settlement { batches, lines, .. } => {
                // A settled batch's purchases are never summed again, by batch or by date.
                for batch in batches {
                    if let Some(sums) = self.batch_sums.remove(batch) {
                        self.days.settled_by_batch(&sums);
                    }
                    self.settle_batch(batch);
                }
                for line in lines {
                    if line.carried.is_positive() {
                        self.carried.remove(&line.merchant);
                    }
                    for net in &line.net {
                        add_to(
                            &mut self
                                .totals
                                .program(entry.at_unix_seconds, &net.program)
                                .settled,
                            net.amount,
                        );
                    }
                }
                self.transfers.insert(id, entry.record.clone());
                Applied::Done
            }
            Record::DaySettlement {
                business_date,
                lines,
            } => {
                self.transfers.insert(id, entry.record.clone());
                self.settle_date(*business_date, lines, entry.at_unix_seconds);
                Applied::Done
            }
            Record::Cutover {
                from_unix_seconds,
                seconds,
            } => {
                let at = self
                    .days
                    .cutovers
                    .partition_point(|(from, _)| from <= from_unix_seconds);
                self.days
                    .cutovers
                    .insert(at, (*from_unix_seconds, *seconds));
                Applied::Done
            }
            Record::Payout {
                merchant,
                amount,
                paid,
                ..
            } => {
                if !paid {
                    let carried = self.carried.entry(merchant.clone()).or_insert(Money::ZERO);
                    *carried = carried.checked_add(*amount).unwrap_or(*carried);
                }
                self.transfers.insert(id, entry.record.clone());
                Applied::Done
            }
        }
    }

    /// Marks a closed batch settled: it stays while it is its terminal's last (a repeated
    /// 0500 is answered from it), and otherwise departs for history.
    fn settle_batch(&mut self, (terminal, sequence): &(TerminalId, u64)) {
        let Some(batches) = self.terminals.get_mut(terminal) else {
            return;
        };
        let Some(at) = batches.closed.iter().position(|c| c.sequence == *sequence) else {
            return;
        };
        if at + 1 == batches.closed.len() {
            self.settled_batches.insert((terminal.clone(), *sequence));
        } else {
            let closed = batches.closed.remove(at);
            self.departed_batches.push((terminal.clone(), closed));
        }
    }

    /// Brings purchase `id` back from history into memory when it has left (a late reversal
    /// of it, `by`, is being applied): what memory and history hold together is unchanged.
    fn restore(&mut self, id: &TransferId, by: TransferId) -> Result<(), InvariantError> {
        if self.purchases.contains_key(id) {
            return Ok(());
        }
        let Some(history) = &self.history else {
            return Ok(());
        };
        let found = history
            .purchase(id)
            .map_err(|e| InvariantError::HistoryUnreadable(by, e.to_string()))?;
        if let Some(mut purchase) = found {
            // History may hold it as it was after this very reversal (the live mover took it
            // then, and a replay is behind the live projection): as of this point of the
            // journal it is reversed only if a reversal of it applied here.
            purchase.reversed = matches!(
                self.transfers.get(&by),
                Some(Record::Reversal(ReversalRecord {
                    effect: ReversalEffect::Reversed { .. },
                    ..
                }))
            );
            self.purchases.insert(*id, purchase);
            self.pinned.push(*id);
        }
        Ok(())
    }

    /// Changes a card's flows in the period of `at_unix_seconds`.
    fn card_flows(
        &mut self,
        card: CardId,
        at_unix_seconds: i64,
        change: impl FnOnce(&mut CardFlows),
    ) {
        let card = self.cards.entry(card).or_default();
        change(card_flows(&mut card.flows, at_unix_seconds));
    }

    /// Records that the entry about to join the log touched `card`.
    fn touch(&mut self, card: CardId, id: TransferId, how: CardTransfer) {
        let index = self.log_base + self.log.len() as u64;
        self.cards
            .entry(card)
            .or_default()
            .history
            .push(CardRow { index, id, how });
    }

    fn record_purchase(&mut self, id: TransferId, purchase: PurchaseRecord, at_unix_seconds: i64) {
        if let Some(card) = purchase.card {
            self.touch(card, id, CardTransfer::Purchase);
        }
        let mut batch_sequence = None;
        if purchase.response.code == ResponseCode::APPROVED {
            if let Some(card) = purchase.card {
                let card = self.cards.entry(card).or_default();
                if card.day != purchase.day {
                    card.day = purchase.day;
                    card.purchases_today = 0;
                }
                card.purchases_today += 1;
                if !purchase.legs.is_empty() {
                    let flows = card_flows(&mut card.flows, at_unix_seconds);
                    add_to(&mut flows.spent, purchase.amount);
                    sub_from(&mut flows.change, purchase.amount);
                    flows.used = true;
                }
            }
            for leg in &purchase.legs {
                add_to(
                    &mut self.totals.program(at_unix_seconds, &leg.program).spent,
                    leg.amount,
                );
            }
            if !purchase.legs.is_empty() {
                self.totals.sold(
                    at_unix_seconds,
                    &purchase.merchant,
                    &purchase.basket,
                    purchase.amount,
                );
            }
            let date = self.purchase_date(at_unix_seconds);
            if !self.terminals.contains_key(&purchase.key.terminal) {
                self.terminals
                    .insert(purchase.key.terminal.clone(), TerminalBatches::default());
            }
            let batches = self
                .terminals
                .get_mut(&purchase.key.terminal)
                .expect("inserted above");
            let next = batches.next_sequence;
            let (sequence, totals) = batches.open.get_or_insert((next, BatchTotals::default()));
            if batches.next_sequence <= *sequence {
                batches.next_sequence = *sequence + 1;
            }
            totals.sales_count += 1;
            // Checked when the purchase's legs were applied: an amount that fits a pocket
            // fits a batch total many times over; saturate rather than panic on a report value.
            totals.sales_amount = totals
                .sales_amount
                .checked_add(purchase.amount)
                .unwrap_or(Money::from_minor(i64::MAX));
            batch_sequence = Some(*sequence);
            if !self.days.by_date {
                self.batch_sums
                    .entry((purchase.key.terminal.clone(), *sequence))
                    .or_default()
                    .entry((date, purchase.merchant.clone()))
                    .or_default()
                    .purchase(purchase.amount, &purchase.legs);
            }
            self.days
                .sums(date, &purchase.merchant)
                .purchase(purchase.amount, &purchase.legs);
        }
        self.purchases.insert(
            id,
            PurchaseState {
                record: purchase,
                reversed: false,
                batch_sequence,
                at_unix_seconds,
            },
        );
    }

    fn record_reversal(&mut self, original: &PurchaseKey) {
        let Some(purchase) = self.purchases.get_mut(&TransferId::purchase(original)) else {
            return;
        };
        purchase.reversed = true;
        let amount = purchase.record.amount;
        self.totals
            .unsold(purchase.at_unix_seconds, &purchase.record.basket, amount);
        let date = self.days.date_of(purchase.at_unix_seconds);
        if let Some(sums) = purchase
            .batch_sequence
            .and_then(|sequence| {
                self.batch_sums
                    .get_mut(&(original.terminal.clone(), sequence))
            })
            .and_then(|sums| sums.get_mut(&(date, purchase.record.merchant.clone())))
        {
            sums.reversal(amount, &purchase.record.legs, false);
        }
        let (merchant, legs) = (
            purchase.record.merchant.clone(),
            purchase.record.legs.clone(),
        );
        self.date_reversal(date, &merchant, amount, &legs);
        if let Some((_, totals)) = self
            .terminals
            .get_mut(&original.terminal)
            .and_then(|t| t.open.as_mut())
        {
            totals.sales_count -= 1;
            totals.sales_amount = totals
                .sales_amount
                .checked_sub(amount)
                .unwrap_or(Money::ZERO);
            totals.reversal_count += 1;
            totals.reversal_amount = totals
                .reversal_amount
                .checked_add(amount)
                .unwrap_or(Money::from_minor(i64::MAX));
        }
    }
}
