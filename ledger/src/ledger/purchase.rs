//! Purchases (§6 orders 2-3 and what the ledger decides: basket, limits, balance), the
//! declines the switch decides itself, balance inquiries, and the debits in doubt.

use super::*;

impl Ledger {
    /// Checks 2 and 3 of §6 for a purchase key: duplicate, conflict or tombstone. Waits for a
    /// request with the same key that is still in flight, so a duplicate is only ever answered
    /// from a durable original.
    pub async fn lookup_purchase(
        &self,
        key: &PurchaseKey,
        fingerprint: &Fingerprint,
    ) -> PurchaseLookup {
        let id = TransferId::purchase(key);
        let _guard = self.purchase_lock(&id).await;
        if self.settled_books().await.is_err() {
            // Nothing to answer from; the authorization that follows answers `91`.
            return PurchaseLookup::New;
        }
        let now = unix_now();
        let found = match self.purchase_state(key, now) {
            Ok(found) => found,
            // History unreadable: the authorization that follows answers `91`.
            Err(_) => return PurchaseLookup::New,
        };
        match found {
            Some(found) if found.record.fingerprint == *fingerprint => {
                PurchaseLookup::Duplicate(found.record.response)
            }
            Some(_) => PurchaseLookup::Conflict,
            None if self.tombstoned(key, now).unwrap_or(false) => PurchaseLookup::Tombstoned,
            None => PurchaseLookup::New,
        }
    }

    /// The stored answer to a purchase key, whatever its content or age (for operators and
    /// reports).
    pub fn find_authorization(
        &self,
        key: &PurchaseKey,
    ) -> Result<Option<AuthResponse>, LedgerError> {
        Ok(self
            .purchase_state(key, unix_now())?
            .map(|p| p.record.response))
    }

    /// A purchase by key: the working set, or history for a key not recent at `now`.
    pub(super) fn purchase_state(
        &self,
        key: &PurchaseKey,
        now: i64,
    ) -> Result<Option<PurchaseState>, LedgerError> {
        if let Some(found) = self.journal.state().purchase(key) {
            return Ok(Some(found.clone()));
        }
        self.purchase_in_history(key, now)
    }

    /// The stored answer for a duplicate, `Err(Conflict)` for other content, `None` for new.
    pub(super) fn duplicate_of(
        &self,
        key: &PurchaseKey,
        fingerprint: &Fingerprint,
        now: i64,
    ) -> Result<Option<Authorization>, LedgerError> {
        match self.purchase_state(key, now)? {
            Some(found) => duplicate_answer(found, fingerprint).map(Some),
            None => Ok(None),
        }
    }

    /// Authorizes a purchase: the switch's one call on the hot path. Handles duplicates (same
    /// answer again), conflicts (`Err(Conflict)` → `94`), tombstones (`05`), basket and limits
    /// (`57`, `61`, `65`), balance (`51`), and approves only once the debit is durable in the
    /// journal. Every answer, approval or decline, is journaled for later duplicates.
    pub async fn authorize_purchase(
        &self,
        request: PurchaseRequest,
    ) -> Result<Authorization, LedgerError> {
        if !request.amount.is_positive() {
            return Err(LedgerError::Invalid(
                "a purchase amount must be positive".into(),
            ));
        }
        let id = TransferId::purchase(&request.key);
        let _guard = self.purchase_lock(&id).await;
        self.settled_books().await?;
        // One look at the projection for checks 2 and 3 and the card's pockets: the journal's
        // sequencer takes the same lock to apply each batch, so every look costs.
        let mut precheck = self.precheck(&id, &request)?;
        if matches!(&precheck, Precheck::New { card_programs } if card_programs.is_empty()) {
            // No pockets here: the card may have been funded through another node since the
            // last poll of its chain.
            self.follow_others().await?;
            precheck = self.precheck(&id, &request)?;
        }
        let card_programs = match precheck {
            Precheck::Duplicate(duplicate) => return Ok(duplicate),
            Precheck::Tombstoned => {
                return self
                    .journal_decision(&request, ResponseCode::DO_NOT_HONOUR, None)
                    .await;
            }
            Precheck::New { card_programs } => card_programs,
        };
        // A program the holder is no longer enrolled in pays nothing, whatever its pocket
        // still holds (a revocation's money is returned right after it is recorded).
        let mut card_programs = card_programs;
        if let Some(enrolments) = &request.enrolments {
            card_programs.retain(|program| enrolments.include(program));
        }
        self.know_programs(&card_programs.iter().collect::<Vec<_>>())
            .await?;
        let Some((allowed, amount_max, daily_max)) =
            self.eligible(&card_programs, request.basket.as_deref())
        else {
            return self
                .journal_decision(&request, ResponseCode::NOT_PERMITTED, None)
                .await;
        };
        if request.amount > amount_max {
            return self
                .journal_decision(&request, ResponseCode::EXCEEDS_AMOUNT_LIMIT, None)
                .await;
        }
        let debit_request = DebitRequest {
            id,
            card: request.card,
            amount: request.amount,
            today: Day::wita_of_unix_seconds(request.at_unix_seconds),
            allowed: &allowed,
            daily_max,
            rrn: &request.rrn,
            authorization_id: &request.authorization_id,
            attempt: self.attempts.next(),
        };
        // An earlier attempt of this purchase whose outcome is unknown is voided first, so
        // this attempt never adopts a decision that is about to be undone.
        self.resolve_doubt(&id).await?;
        if self.doubts.full() {
            return Err(LedgerError::Unavailable(format!(
                "{} debits in doubt wait for the balance store",
                self.doubts.len()
            )));
        }
        let debit = match self.debit(&debit_request).await {
            Err(fenced @ StoreError::Fenced { .. }) => {
                self.recover_fenced(fenced).await?;
                self.debit(&debit_request).await?
            }
            other => other?,
        };
        // A replayed decision was made by another node (a terminal retrying elsewhere) or is
        // ours (a retried script whose first reply was lost). Another node's may already be
        // in its chain: follow, and answer from the journal when it is there.
        if debit.replayed {
            self.follow_others().await?;
            if let Precheck::Duplicate(duplicate) = self.precheck(&id, &request)? {
                return Ok(duplicate);
            }
        }
        // Not journaled by anyone yet: it still has to be.
        self.journal_decision(
            &request,
            debit.debit.response.code,
            Some((debit.debit, debit_request.attempt)),
        )
        .await
    }

    /// Asks the balance store to debit. An attempt whose outcome the store did not tell (no
    /// answer in time, or an answer that cannot be read) may still run: it is held in doubt
    /// until it is voided (the `doubt` module).
    pub(super) async fn debit(
        &self,
        request: &DebitRequest<'_>,
    ) -> Result<DebitOutcome, StoreError> {
        let outcome = self.balances.debit(request).await;
        if let Err(StoreError::Unavailable(_) | StoreError::Malformed(_)) = &outcome {
            self.doubts.add(
                request.id,
                Attempt {
                    card: request.card,
                    attempt: request.attempt,
                    rrn: request.rrn.clone(),
                },
            );
        }
        outcome
    }

    /// Voids the attempts of one purchase whose outcome is unknown, under the purchase's
    /// lock and with the books settled. An attempt whose own decision is journaled (another
    /// node answered a retry with it) belongs to the books and is left alone. On several
    /// nodes one race remains: another node replays this attempt's decision for a retry and
    /// this void runs between its Redis reply and its journal write (milliseconds); the
    /// other node's approval then stands in the journal with the card's cache higher than
    /// it by that amount until the next rebuild (`Ledger::cache_differences` lists it).
    pub(super) async fn resolve_doubt(&self, id: &TransferId) -> Result<(), LedgerError> {
        let mut attempts = self.doubts.take(id);
        if attempts.is_empty() {
            return Ok(());
        }
        if let Err(error) = self.follow_others().await {
            self.doubts.put_back(*id, attempts);
            return Err(error);
        }
        // From history too: a doubt can outlast the purchase's time in memory.
        let journaled = match self.purchase_by_id(id) {
            Ok(found) => found.map(|p| p.record.response.rrn),
            Err(error) => {
                self.doubts.put_back(*id, attempts);
                return Err(error);
            }
        };
        let mut resolved = 0;
        while let Some(attempt) = attempts.pop() {
            if journaled.as_ref() != Some(&attempt.rrn)
                && let Err(error) = self.void_attempt(*id, &attempt).await
            {
                attempts.push(attempt);
                self.doubts.put_back(*id, attempts);
                self.doubts.settled(resolved);
                return Err(error);
            }
            resolved += 1;
        }
        self.doubts.settled(resolved);
        Ok(())
    }

    pub(super) async fn void_attempt(
        &self,
        id: TransferId,
        attempt: &Attempt,
    ) -> Result<(), LedgerError> {
        match self
            .balances
            .void_debit(attempt.card, id, attempt.attempt)
            .await
        {
            Err(fenced @ StoreError::Fenced { .. }) => {
                // The card is rebuilt from the journal at our generation first; an attempt that
                // arrives after the void is then refused.
                self.recover_fenced(fenced).await?;
                Ok(self
                    .balances
                    .void_debit(attempt.card, id, attempt.attempt)
                    .await?)
            }
            other => Ok(other?),
        }
    }

    /// Resolves debits in doubt (the `doubt` module): voids, in the balance store, each debit
    /// attempt whose outcome the ledger could not learn, so the store comes back to the
    /// journal's truth without a restart. Returns how many remain; `Unavailable` while the
    /// store or the journal is still away (what was not resolved is tried again next time).
    /// The switch calls this every [`crate::DOUBT_RESOLVE_INTERVAL`].
    pub async fn resolve_debits_in_doubt(&self) -> Result<usize, LedgerError> {
        for id in self.doubts.ids(DOUBT_RESOLVE_BATCH_MAX) {
            let _guard = self.purchase_lock(&id).await;
            self.settled_books().await?;
            self.resolve_doubt(&id).await?;
        }
        Ok(self.doubts.len())
    }

    /// Debit attempts in doubt now (also the gauge `ssn_debits_in_doubt`).
    pub fn debits_in_doubt(&self) -> usize {
        self.doubts.len()
    }

    /// Journals the decision on a purchase and answers once it is durable.
    pub(super) async fn journal_decision(
        &self,
        request: &PurchaseRequest,
        code: ResponseCode,
        debit: Option<(StoredDebit, u64)>,
    ) -> Result<Authorization, LedgerError> {
        let attempt = debit.as_ref().map(|(_, attempt)| *attempt);
        let (response, legs, day) = match debit {
            Some((debit, _)) => (debit.response, debit.legs, debit.day),
            None => (
                AuthResponse {
                    code,
                    rrn: request.rrn.clone(),
                    authorization_id: None,
                    balance_after: None,
                },
                Vec::new(),
                Day::wita_of_unix_seconds(request.at_unix_seconds),
            ),
        };
        let record = PurchaseRecord {
            key: request.key.clone(),
            fingerprint: request.fingerprint,
            card: Some(request.card),
            merchant: request.merchant.clone(),
            amount: request.amount,
            day,
            response: response.clone(),
            legs: legs.clone(),
            basket: if legs.is_empty() {
                Vec::new()
            } else {
                request.basket.clone().unwrap_or_default()
            },
        };
        let entry = Entry {
            at_unix_seconds: request.at_unix_seconds,
            record: Record::Purchase(record),
        };
        if let Err(error) = self.journal.append(entry).await {
            if let Some(attempt) = attempt {
                // Not journaled, so this attempt's decision must not stand: a retry decides
                // afresh. If the void fails too, the attempt is held in doubt until it works.
                // (A decision another attempt made and this one replayed is that attempt's.)
                let id = TransferId::purchase(&request.key);
                let attempt = Attempt {
                    card: request.card,
                    attempt,
                    rrn: request.rrn.clone(),
                };
                if self.void_attempt(id, &attempt).await.is_err() {
                    self.doubts.add(id, attempt);
                }
            }
            return Err(error.into());
        }
        Ok(Authorization {
            response,
            legs,
            duplicate: false,
        })
    }

    /// The programs whose pockets may pay for this basket on this card, with the highest
    /// per-purchase and per-day limits among them; `None` when there are none (`57`).
    pub(super) fn eligible(
        &self,
        card_programs: &[ProgramCode],
        basket: Option<&[BasketLine]>,
    ) -> Option<(Vec<ProgramCode>, Money, u32)> {
        let programs = self.programs_read();
        let eligible: Vec<&Program> = card_programs
            .iter()
            .filter_map(|code| programs.get(code))
            .filter(|program| match basket {
                Some(items) => program.allows(items.iter().map(|item| item.category.as_str())),
                None => !program.basket_required,
            })
            .collect();
        let amount_max = eligible.iter().map(|p| p.purchase_amount_max).max()?;
        let daily_max = eligible.iter().map(|p| p.purchases_per_day_max).max()?;
        Some((
            eligible.iter().map(|p| p.code.clone()).collect(),
            amount_max,
            daily_max,
        ))
    }

    /// Checks 2 and 3 of §6 and the card's programs, under one read of the projection.
    pub(super) fn precheck(
        &self,
        id: &TransferId,
        request: &PurchaseRequest,
    ) -> Result<Precheck, LedgerError> {
        let (card_programs, horizon) = {
            let state = self.journal.state();
            if let Some(found) = state.purchases.get(id) {
                return duplicate_answer(found.clone(), &request.fingerprint)
                    .map(Precheck::Duplicate);
            }
            if state.tombstones.contains(id) {
                return Ok(Precheck::Tombstoned);
            }
            let programs = state
                .cards
                .get(&request.card)
                .map(|c| c.pockets.keys().cloned().collect())
                .unwrap_or_default();
            (programs, state.horizon)
        };
        // An old key (never a new purchase's): history may hold its answer or tombstone. A
        // new purchase's key is recent, so its check takes no second read of the projection.
        if let Some(history) = self.history_for(&request.key, request.at_unix_seconds, horizon) {
            if let Some(found) = self.purchase_from_history(history, id)? {
                return duplicate_answer(found, &request.fingerprint).map(Precheck::Duplicate);
            }
            if history.tombstoned(id)? {
                return Ok(Precheck::Tombstoned);
            }
        }
        Ok(Precheck::New { card_programs })
    }

    /// Records a decline the switch decided itself, so a duplicate gets the same answer. A
    /// tombstone wins (`05`, check 3 of §6 comes first); an earlier answer to the same key is
    /// returned as a duplicate.
    pub async fn record_decline(
        &self,
        request: DeclineRequest,
    ) -> Result<Authorization, LedgerError> {
        let id = TransferId::purchase(&request.key);
        let _guard = self.purchase_lock(&id).await;
        self.settled_books().await?;
        let now = request.at_unix_seconds;
        if let Some(duplicate) = self.duplicate_of(&request.key, &request.fingerprint, now)? {
            return Ok(duplicate);
        }
        let code = if self.tombstoned(&request.key, now)? {
            ResponseCode::DO_NOT_HONOUR
        } else {
            request.code
        };
        if code == ResponseCode::APPROVED {
            return Err(LedgerError::Invalid("an approval is not a decline".into()));
        }
        let response = AuthResponse {
            code,
            rrn: request.rrn.clone(),
            authorization_id: None,
            balance_after: None,
        };
        let record = PurchaseRecord {
            key: request.key.clone(),
            fingerprint: request.fingerprint,
            card: request.card,
            merchant: request.merchant.clone(),
            amount: request.amount,
            day: Day::wita_of_unix_seconds(request.at_unix_seconds),
            response: response.clone(),
            legs: Vec::new(),
            basket: Vec::new(),
        };
        self.journal
            .append(Entry {
                at_unix_seconds: request.at_unix_seconds,
                record: Record::Purchase(record),
            })
            .await?;
        Ok(Authorization {
            response,
            legs: Vec::new(),
            duplicate: false,
        })
    }

    /// A balance inquiry (DE3 `310000`): the spendable balance, from the balance store.
    pub async fn balance(&self, card: CardId, at_unix_seconds: i64) -> Result<Money, LedgerError> {
        let pockets = self.pockets(card).await?;
        spendable(&pockets, Day::wita_of_unix_seconds(at_unix_seconds))
            .ok_or_else(|| LedgerError::Internal("balance overflow".into()))
    }

    /// The card's pockets as the balance store has them, earliest expiry first.
    pub async fn pockets(&self, card: CardId) -> Result<Vec<PocketBalance>, LedgerError> {
        match self.balances.pockets(card).await {
            // Not cached by this generation (Redis restarted empty): rebuilt from the journal.
            Err(fenced @ StoreError::Fenced { .. }) => {
                self.recover_fenced(fenced).await?;
                Ok(self.balances.pockets(card).await?)
            }
            other => Ok(other?),
        }
    }
}

/// The stored answer to a purchase for a request with this fingerprint: the same answer
/// again, or `Err(Conflict)` (`94`) for other content under the same key.
fn duplicate_answer(
    found: PurchaseState,
    fingerprint: &Fingerprint,
) -> Result<Authorization, LedgerError> {
    if found.record.fingerprint != *fingerprint {
        return Err(LedgerError::Conflict(
            "same terminal, STAN and DE7 with other content".into(),
        ));
    }
    Ok(Authorization {
        response: found.record.response,
        legs: found.record.legs,
        duplicate: true,
    })
}

pub(super) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
