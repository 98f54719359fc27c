//! The embedded balance store: cards in memory, sharded so concurrent debits of different
//! cards rarely wait for each other, with one mutex per shard making each card's
//! check-and-debit atomic.

use super::{
    BalanceStore, CardSnapshot, DebitOutcome, DebitRequest, PocketBalance, PocketCredit,
    SnapshotTransfer, StoreError, decide_debit, sort_pockets,
};
use crate::day::Day;
use crate::ids::{CardId, ProgramCode, TransferId};
use crate::money::Money;
use crate::record::{PocketAmount, ResponseCode};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

/// Shards of the card map. A power of two well above the core count, so two concurrent debits
/// of different cards share a lock only rarely.
pub const MEMORY_SHARDS: usize = 256;

/// One card in memory.
#[derive(Debug, Default)]
struct MemoryCard {
    /// Pockets, earliest expiry first.
    pockets: Vec<PocketBalance>,
    /// The day `purchases_today` counts.
    day: Day,
    /// Approved purchases on `day`.
    purchases_today: u32,
    /// Every transfer that touched the card, for idempotency.
    transfers: HashMap<TransferId, SnapshotTransfer>,
    /// The attempt that made each debit decision this store made (not those rebuilt from
    /// the journal): what a void names.
    attempts: HashMap<TransferId, u64>,
}

/// The embedded balance store.
#[derive(Debug)]
pub struct MemoryBalances {
    /// Cards by shard (`card id % MEMORY_SHARDS`).
    shards: Box<[Mutex<HashMap<CardId, MemoryCard>>]>,
}

impl Default for MemoryBalances {
    fn default() -> MemoryBalances {
        MemoryBalances {
            shards: (0..MEMORY_SHARDS)
                .map(|_| Mutex::new(HashMap::new()))
                .collect(),
        }
    }
}

impl MemoryBalances {
    /// An empty store.
    pub fn new() -> MemoryBalances {
        MemoryBalances::default()
    }

    fn shard(&self, card: CardId) -> MutexGuard<'_, HashMap<CardId, MemoryCard>> {
        // A panic while holding a shard lock happens between checks, never halfway through a
        // debit (the debit is computed before it is stored), so the data is still whole.
        self.shards[(card.0 % MEMORY_SHARDS as u64) as usize]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl BalanceStore for MemoryBalances {
    async fn debit(&self, request: &DebitRequest<'_>) -> Result<DebitOutcome, StoreError> {
        let mut shard = self.shard(request.card);
        let card = shard.entry(request.card).or_default();
        if let Some(SnapshotTransfer::Debit(stored)) = card.transfers.get(&request.id) {
            return Ok(DebitOutcome {
                debit: stored.clone(),
                replayed: true,
            });
        }
        let purchases_today = if card.day == request.today {
            card.purchases_today
        } else {
            0
        };
        let debit = decide_debit(&mut card.pockets, purchases_today, request);
        if debit.response.code == ResponseCode::APPROVED {
            card.day = request.today;
            card.purchases_today = purchases_today + 1;
        }
        card.transfers
            .insert(request.id, SnapshotTransfer::Debit(debit.clone()));
        card.attempts.insert(request.id, request.attempt);
        Ok(DebitOutcome {
            debit,
            replayed: false,
        })
    }

    /// A debit here is decided and answered in one call, so no attempt is ever on its way
    /// when this is called: voiding is undoing the attempt's own decision.
    async fn void_debit(
        &self,
        card: CardId,
        id: TransferId,
        attempt: u64,
    ) -> Result<(), StoreError> {
        let mut shard = self.shard(card);
        let Some(card_state) = shard.get_mut(&card) else {
            return Ok(());
        };
        if card_state.attempts.get(&id) != Some(&attempt) {
            return Ok(());
        }
        card_state.attempts.remove(&id);
        let Some(SnapshotTransfer::Debit(stored)) = card_state.transfers.remove(&id) else {
            return Ok(());
        };
        if stored.response.code != ResponseCode::APPROVED {
            return Ok(());
        }
        for leg in &stored.legs {
            if let Some(pocket) = card_state
                .pockets
                .iter_mut()
                .find(|p| p.program == leg.program)
            {
                pocket.balance = pocket
                    .balance
                    .checked_add(leg.amount)
                    .ok_or(StoreError::AmountOutOfRange)?;
            }
        }
        if card_state.day == stored.day {
            card_state.purchases_today = card_state.purchases_today.saturating_sub(1);
        }
        Ok(())
    }

    async fn credit(
        &self,
        id: TransferId,
        credits: &[PocketCredit],
    ) -> Result<Vec<CardId>, StoreError> {
        // Grouped through a map: a disbursement credits 100,000 cards in one call.
        let mut by_card: std::collections::BTreeMap<CardId, Vec<&PocketCredit>> =
            std::collections::BTreeMap::new();
        for credit in credits {
            by_card.entry(credit.card).or_default().push(credit);
        }
        for (card_id, card_credits) in by_card {
            let mut shard = self.shard(card_id);
            let card = shard.entry(card_id).or_default();
            if card.transfers.contains_key(&id) {
                continue;
            }
            for credit in card_credits {
                match card
                    .pockets
                    .iter_mut()
                    .find(|p| p.program == credit.program)
                {
                    Some(pocket) => {
                        pocket.balance = pocket
                            .balance
                            .checked_add(credit.amount)
                            .ok_or(StoreError::AmountOutOfRange)?;
                    }
                    None => {
                        card.pockets.push(PocketBalance {
                            program: credit.program.clone(),
                            expires: credit.expires,
                            balance: credit.amount,
                        });
                        sort_pockets(&mut card.pockets);
                    }
                }
            }
            card.transfers.insert(id, SnapshotTransfer::Credit);
        }
        Ok(Vec::new())
    }

    async fn drain(
        &self,
        card: CardId,
        id: TransferId,
        program: Option<&ProgramCode>,
    ) -> Result<Vec<PocketAmount>, StoreError> {
        let mut shard = self.shard(card);
        let card = shard.entry(card).or_default();
        if let Some(SnapshotTransfer::Drain(moved)) = card.transfers.get(&id) {
            return Ok(moved.clone());
        }
        let mut moved = Vec::new();
        for pocket in &mut card.pockets {
            if pocket.balance.is_positive() && program.is_none_or(|p| *p == pocket.program) {
                moved.push(PocketAmount {
                    program: pocket.program.clone(),
                    amount: pocket.balance,
                });
                pocket.balance = Money::ZERO;
            }
        }
        card.transfers
            .insert(id, SnapshotTransfer::Drain(moved.clone()));
        Ok(moved)
    }

    async fn pockets(&self, card: CardId) -> Result<Vec<PocketBalance>, StoreError> {
        Ok(self
            .shard(card)
            .get(&card)
            .map(|c| c.pockets.clone())
            .unwrap_or_default())
    }

    fn forget(&self, transfers: &[(CardId, TransferId)]) {
        for (card, id) in transfers {
            if let Some(card) = self.shard(*card).get_mut(card) {
                card.transfers.remove(id);
                card.attempts.remove(id);
            }
        }
    }

    async fn rebuild(&self, cards: &[CardSnapshot]) -> Result<(), StoreError> {
        for snapshot in cards {
            let mut pockets = snapshot.pockets.clone();
            sort_pockets(&mut pockets);
            let card = MemoryCard {
                pockets,
                day: snapshot.day,
                purchases_today: snapshot.purchases_today,
                transfers: snapshot.transfers.iter().cloned().collect(),
                attempts: HashMap::new(),
            };
            self.shard(snapshot.card).insert(snapshot.card, card);
        }
        Ok(())
    }

    async fn begin_generation(&self) -> Result<(), StoreError> {
        // One process owns the memory store, so there is no older generation to fence out.
        Ok(())
    }
}
