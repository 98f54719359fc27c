//! Reversals (§3.4): exactly once, or a tombstone when the original has not come yet.

use super::*;

/// Replacements a reversal follows from a purchase's card to the card holding its pockets now
/// (a card replaced that many times within one open batch is beyond any real case).
pub const REPLACEMENTS_FOLLOWED_MAX: usize = 16;

impl Ledger {
    /// Reverses a purchase exactly once (§3.4).
    pub async fn reverse_purchase(
        &self,
        request: ReversalRequest,
    ) -> Result<ReversalOutcome, LedgerError> {
        let _terminal = self.terminal_lock(&request.original.terminal).await;
        let _purchase = self
            .purchase_lock(&TransferId::purchase(&request.original))
            .await;
        self.settled_books().await?;
        let mut decision = self.reversal_decision(&request)?;
        if matches!(decision, Err(ReversalOutcome::Tombstoned)) {
            // The original may have been approved on another node since the last poll.
            self.follow_others().await?;
            decision = self.reversal_decision(&request)?;
        }
        let (card, legs) = match decision {
            Ok(reversible) => reversible,
            Err(ReversalOutcome::Tombstoned) => {
                if self.tombstoned(&request.original, request.at_unix_seconds)? {
                    return Ok(ReversalOutcome::Tombstoned);
                }
                let record = Record::Reversal(ReversalRecord {
                    original: request.original.clone(),
                    effect: ReversalEffect::Tombstone,
                });
                self.journal
                    .append(Entry {
                        at_unix_seconds: request.at_unix_seconds,
                        record,
                    })
                    .await?;
                return Ok(ReversalOutcome::Tombstoned);
            }
            Err(outcome) => return Ok(outcome),
        };
        let effect = ReversalEffect::Reversed {
            card,
            legs: legs.clone(),
        };
        let record = Record::Reversal(ReversalRecord {
            original: request.original.clone(),
            effect,
        });
        self.journal
            .append(Entry {
                at_unix_seconds: request.at_unix_seconds,
                record,
            })
            .await?;
        let credits = self.credits_for(card, &legs);
        self.credit_store(TransferId::reversal(&request.original), &credits)
            .await?;
        Ok(ReversalOutcome::Reversed(legs))
    }

    /// What a reversal would do: `Ok` with the card and legs to give back, or the outcome
    /// that moves nothing (`Tombstoned` meaning "the original is unknown").
    #[allow(clippy::type_complexity)]
    pub(super) fn reversal_decision(
        &self,
        request: &ReversalRequest,
    ) -> Result<Result<(CardId, Vec<PocketAmount>), ReversalOutcome>, LedgerError> {
        // An old original (in a settled batch) may be in history.
        let Some(original) = self.purchase_state(&request.original, request.at_unix_seconds)?
        else {
            return Ok(Err(ReversalOutcome::Tombstoned));
        };
        let record = &original.record;
        if record.response.code != ResponseCode::APPROVED {
            return Ok(Err(ReversalOutcome::OriginalDeclined));
        }
        if record.card != request.card || record.amount != request.amount {
            return Ok(Err(ReversalOutcome::Mismatch));
        }
        if original.reversed {
            return Ok(Err(ReversalOutcome::AlreadyReversed));
        }
        let open = self
            .journal
            .state()
            .terminals
            .get(&request.original.terminal)
            .and_then(|t| t.open)
            .map(|(sequence, _)| sequence);
        if original.batch_sequence != open {
            return Ok(Err(ReversalOutcome::Settled));
        }
        // Approved records always carry their card (checked when journaled).
        let card = record
            .card
            .ok_or_else(|| LedgerError::Internal("approved purchase without card".into()))?;
        // Replaced since: the money goes where the pockets went, never to a dead card.
        Ok(Ok((self.pockets_card(card), record.legs.clone())))
    }

    /// The card that holds `card`'s pockets now: itself, or the last of the replacements the
    /// journal has for it (at most [`REPLACEMENTS_FOLLOWED_MAX`] followed).
    pub(super) fn pockets_card(&self, card: CardId) -> CardId {
        let state = self.journal.state();
        let mut holder = card;
        for _ in 0..REPLACEMENTS_FOLLOWED_MAX {
            match state.transfers.get(&TransferId::replacement(holder)) {
                Some(Record::Replacement { new_card, .. }) => holder = *new_card,
                _ => break,
            }
        }
        holder
    }

    pub(super) fn credits_for(&self, card: CardId, legs: &[PocketAmount]) -> Vec<PocketCredit> {
        legs.iter()
            .map(|leg| PocketCredit {
                card,
                program: leg.program.clone(),
                expires: self.expiry_of(&leg.program),
                amount: leg.amount,
            })
            .collect()
    }

    /// Sends again the credits of a transfer the journal already holds (a repeated call, in
    /// case the store missed them the first time). The store takes a credit once per (card,
    /// transfer) while it keeps the card's record of it: those whose row is still in the card's
    /// working set. A row that moved to history was folded into the card's balance when the
    /// store was last built, so its credit is not sent again (after a restart from a snapshot
    /// the rebuilt store no longer knows it and would take it twice).
    pub(super) async fn credit_store_again(
        &self,
        id: TransferId,
        credits: &[PocketCredit],
    ) -> Result<(), LedgerError> {
        let pending: Vec<PocketCredit> = {
            let state = self.journal.state();
            credits
                .iter()
                .filter(|credit| {
                    state
                        .cards
                        .get(&credit.card)
                        .is_some_and(|c| c.history.iter().any(|row| row.id == id))
                })
                .cloned()
                .collect()
        };
        self.credit_store(id, &pending).await
    }

    /// Credits the store after the journal has the credit. A card the store fences as not
    /// ours is rebuilt from the journal, which already includes this credit, so it is not
    /// credited a second time.
    pub(super) async fn credit_store(
        &self,
        id: TransferId,
        credits: &[PocketCredit],
    ) -> Result<(), LedgerError> {
        let not_ours = self.balances.credit(id, credits).await?;
        if not_ours.is_empty() {
            return Ok(());
        }
        let snapshots: Vec<CardSnapshot> = {
            let state = self.journal.state();
            not_ours
                .iter()
                .map(|card| self.snapshot(&state, *card))
                .collect()
        };
        self.balances.rebuild(&snapshots).await?;
        Ok(())
    }
}
