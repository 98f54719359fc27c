//! Cards: replacement (the old card's pockets to the new one) and wrong-PIN counts.

use super::*;

impl Ledger {
    /// Moves every pocket of `old_card` to `new_card`, exactly once. The old card is marked
    /// replaced in the registry first, so the switch stops authorizing it before its pockets
    /// are emptied.
    pub async fn replace_card(
        &self,
        old_card: CardId,
        new_card: CardId,
        at_unix_seconds: i64,
    ) -> Result<Vec<PocketAmount>, LedgerError> {
        let _admin = self.admin_turn().await?;
        let id = TransferId::replacement(old_card);
        let existing = match self.journal.state().transfers.get(&id) {
            Some(Record::Replacement {
                new_card: recorded,
                moves,
                ..
            }) => Some((*recorded, moves.clone())),
            _ => None,
        };
        if let Some((recorded, moves)) = existing {
            if recorded != new_card {
                return Err(LedgerError::Conflict(format!(
                    "card {old_card} was replaced by another card"
                )));
            }
            // A repeat: the store may have missed the first time's credits.
            self.credit_store_again(id, &self.credits_for(new_card, &moves))
                .await?;
            return Ok(moves);
        }
        self.mark_replaced(old_card, new_card, at_unix_seconds)
            .await?;
        let moves = self.drain_store(old_card, id, None).await?;
        let record = Record::Replacement {
            old_card,
            new_card,
            moves: moves.clone(),
        };
        self.journal
            .append(Entry {
                at_unix_seconds,
                record,
            })
            .await?;
        self.credit_store(id, &self.credits_for(new_card, &moves))
            .await?;
        Ok(moves)
    }

    pub(super) async fn mark_replaced(
        &self,
        old_card: CardId,
        new_card: CardId,
        at_unix_seconds: i64,
    ) -> Result<(), LedgerError> {
        let old: Card = self
            .registry
            .card(old_card)
            .await?
            .ok_or_else(|| LedgerError::NotFound(format!("card {old_card}")))?;
        if self.registry.card(new_card).await?.is_none() {
            return Err(LedgerError::NotFound(format!("card {new_card}")));
        }
        if old.replaced_by == Some(new_card) {
            return Ok(());
        }
        let mut replaced = old.clone();
        // A lost or stolen card keeps saying so (`41`/`43`) after its replacement.
        replaced.mark_replaced(new_card, Day::wita_of_unix_seconds(at_unix_seconds));
        self.registry
            .apply(vec![RegistryOp::Replace {
                expected: RegistryRecord::Card(old),
                new: RegistryRecord::Card(replaced),
            }])
            .await?;
        Ok(())
    }

    /// Records the result of a PIN check on `card` (§8: a correct PIN resets the count; the
    /// third wrong one in a row locks the PIN). The registry write is a compare-and-set, so
    /// two terminals checking the same card at once both count. A locked PIN stays locked
    /// whatever is entered, until an operator resets it. The WITA day of `at_unix_seconds` is
    /// the day a lock is recorded on (what a report as of a past day reads).
    pub async fn record_pin_check(
        &self,
        card: CardId,
        correct: bool,
        at_unix_seconds: i64,
    ) -> Result<PinOutcome, LedgerError> {
        let current = self
            .registry
            .card(card)
            .await?
            .ok_or_else(|| LedgerError::NotFound(format!("card {card}")))?;
        self.record_pin_check_from(&current, correct, at_unix_seconds)
            .await
    }

    /// [`Ledger::record_pin_check`] for a card the caller has just read (the switch reads it
    /// by PAN for the same request): one registry read fewer when nothing changed meanwhile;
    /// the compare-and-set still sees any change, and then the card is read again.
    pub async fn record_pin_check_from(
        &self,
        seen: &Card,
        correct: bool,
        at_unix_seconds: i64,
    ) -> Result<PinOutcome, LedgerError> {
        let card = seen.card_id;
        // A right PIN on a card with no wrong ones, nearly every purchase, copies nothing.
        let mut reread: Option<Card> = None;
        for attempt in 0..PIN_UPDATE_ATTEMPTS_MAX {
            if attempt > 0 {
                reread = Some(
                    self.registry
                        .card(card)
                        .await?
                        .ok_or_else(|| LedgerError::NotFound(format!("card {card}")))?,
                );
            }
            let current = reread.as_ref().unwrap_or(seen);
            if current.pin_locked() {
                return Ok(PinOutcome::Locked);
            }
            let (count, outcome) = match correct {
                true => (0, PinOutcome::Correct),
                false if current.wrong_pin_count + 1 >= crate::registry::WRONG_PIN_COUNT_MAX => {
                    (crate::registry::WRONG_PIN_COUNT_MAX, PinOutcome::Locked)
                }
                false => (current.wrong_pin_count + 1, PinOutcome::Wrong),
            };
            if count == current.wrong_pin_count {
                return Ok(outcome);
            }
            let mut updated = current.clone();
            updated.set_wrong_pin_count(count, Day::wita_of_unix_seconds(at_unix_seconds));
            let op = RegistryOp::Replace {
                expected: RegistryRecord::Card(current.clone()),
                new: RegistryRecord::Card(updated),
            };
            match self.registry.apply(vec![op]).await {
                Ok(()) => return Ok(outcome),
                Err(RegistryError::Conflict(_)) => continue,
                Err(other) => return Err(other.into()),
            }
        }
        Err(LedgerError::Unavailable(format!(
            "card {card} changed {PIN_UPDATE_ATTEMPTS_MAX} times during one PIN check"
        )))
    }
}
