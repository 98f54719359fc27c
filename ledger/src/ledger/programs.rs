//! Programs' money: definitions, funding, disbursement, and the year-end close.

use super::*;

impl Ledger {
    /// Registers a program (admin API `POST /programs`).
    pub async fn define_program(&self, program: Program) -> Result<(), LedgerError> {
        if let Some(category) = program
            .allowed_categories
            .iter()
            .find(|c| crate::registry::is_non_food_category(c))
        {
            return Err(LedgerError::Refused(format!(
                "category {category} is not food (90-99: cigarettes, phone credit, ...): a \
                 program buys food and staples only"
            )));
        }
        self.registry
            .apply(vec![RegistryOp::Insert(RegistryRecord::Program(
                program.clone(),
            ))])
            .await?;
        self.programs
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(program.code.clone(), program);
        Ok(())
    }

    /// Money from the city budget into the program's giro account, idempotent on `reference`.
    pub async fn fund_program(
        &self,
        program: &ProgramCode,
        amount: Money,
        reference: &str,
        at_unix_seconds: i64,
    ) -> Result<TransferId, LedgerError> {
        if !amount.is_positive() {
            return Err(LedgerError::Invalid(
                "a funding amount must be positive".into(),
            ));
        }
        let _admin = self.admin_turn().await?;
        let id = TransferId::funding(reference);
        let record = Record::Funding {
            reference: reference.to_string(),
            program: program.clone(),
            amount,
        };
        if let Some(existing) = self.journal.state().transfers.get(&id) {
            return if *existing == record {
                Ok(id)
            } else {
                Err(LedgerError::Conflict(format!(
                    "funding {reference} exists with other content"
                )))
            };
        }
        self.know_programs(&[program]).await?;
        if !self.programs_read().contains_key(program) {
            return Err(LedgerError::NotFound(format!("program {program}")));
        }
        self.journal
            .append(Entry {
                at_unix_seconds,
                record,
            })
            .await?;
        Ok(id)
    }

    /// Credits the program's benefit to every determined beneficiary with a live card, from the
    /// giro account, all or nothing; idempotent on (program, period).
    pub async fn disburse(
        &self,
        program: &ProgramCode,
        period: &str,
        at_unix_seconds: i64,
    ) -> Result<DisbursementOutcome, LedgerError> {
        let _admin = self.admin_turn().await?;
        let id = TransferId::disbursement(program, period);
        let in_memory = match self.journal.state().transfers.get(&id) {
            Some(Record::Disbursement { credits, .. }) => Some(credits.clone()),
            _ => None,
        };
        // An old disbursement has left memory (history has it): its credits reached the
        // store long ago, which no longer keeps their records, so they are not sent again.
        let from_history = match in_memory {
            Some(_) => None,
            None => match self.transfer_by_id(&id)? {
                Some((_, Record::Disbursement { credits, .. })) => Some(credits),
                _ => None,
            },
        };
        let credits = match (in_memory, from_history) {
            (_, Some(credits)) => credits,
            (Some(credits), None) => {
                // A repeat: the store may have missed the first time's credits.
                self.credit_store_again(id, &self.pocket_credits(program, &credits))
                    .await?;
                credits
            }
            (None, None) => {
                let credits = self
                    .journal_disbursement(program, period, at_unix_seconds)
                    .await?;
                self.credit_store(id, &self.pocket_credits(program, &credits))
                    .await?;
                credits
            }
        };
        let total = Money::checked_sum(credits.iter().map(|(_, amount)| *amount))
            .ok_or_else(|| LedgerError::Internal("overflow".into()))?;
        Ok(DisbursementOutcome {
            id,
            cards: credits.len(),
            total,
        })
    }

    /// A disbursement's credits as the balance store takes them.
    fn pocket_credits(
        &self,
        program: &ProgramCode,
        credits: &[(CardId, Money)],
    ) -> Vec<PocketCredit> {
        credits
            .iter()
            .map(|(card, amount)| PocketCredit {
                card: *card,
                program: program.clone(),
                expires: self.expiry_of(program),
                amount: *amount,
            })
            .collect()
    }

    pub(super) async fn journal_disbursement(
        &self,
        program: &ProgramCode,
        period: &str,
        at_unix_seconds: i64,
    ) -> Result<Vec<(CardId, Money)>, LedgerError> {
        self.know_programs(&[program]).await?;
        let definition = self
            .programs_read()
            .get(program)
            .cloned()
            .ok_or_else(|| LedgerError::NotFound(format!("program {program}")))?;
        if let Some(first_day) = period_first_day(period)
            && first_day > definition.pocket_expires_at
        {
            return Err(LedgerError::Refused(format!(
                "period {period} begins after the program's pockets expire \
                 ({}): nothing credited then could be spent",
                definition.pocket_expires_at
            )));
        }
        let cards = self.live_cards_of(program).await?;
        let credits: Vec<(CardId, Money)> = cards
            .into_iter()
            .map(|card| (card, definition.benefit_amount))
            .collect();
        let total = Money::checked_sum(credits.iter().map(|(_, a)| *a))
            .ok_or_else(|| LedgerError::Refused("total overflows".into()))?;
        let giro = self
            .journal
            .state()
            .balance(&crate::record::Account::Giro(program.clone()));
        if giro < total {
            return Err(LedgerError::Refused(format!(
                "giro account holds {giro}, the disbursement needs {total}"
            )));
        }
        if credits.is_empty() {
            return Err(LedgerError::Refused(
                "no determined beneficiary of the program has a live card".into(),
            ));
        }
        let record = Record::Disbursement {
            program: program.clone(),
            period: period.to_string(),
            credits: credits.clone(),
        };
        self.journal
            .append(Entry {
                at_unix_seconds,
                record,
            })
            .await?;
        Ok(credits)
    }

    /// Cards that receive a program's disbursement: the live card of every beneficiary
    /// determined for the program.
    pub(super) async fn live_cards_of(
        &self,
        program: &ProgramCode,
    ) -> Result<Vec<CardId>, LedgerError> {
        let beneficiaries = self.registry.beneficiaries().await?;
        let enrolled: std::collections::HashSet<String> = beneficiaries
            .into_iter()
            .filter(|b| {
                b.status == crate::registry::BeneficiaryStatus::Determined
                    && b.enrolments.contains(program)
            })
            .map(|b| b.ssn)
            .collect();
        let mut cards: Vec<CardId> = self
            .registry
            .cards()
            .await?
            .into_iter()
            .filter(|c| {
                enrolled.contains(&c.ssn)
                    && matches!(
                        c.status,
                        CardStatus::Issued | CardStatus::Active | CardStatus::Blocked
                    )
            })
            .map(|c| c.card_id)
            .collect();
        cards.sort();
        Ok(cards)
    }

    /// The year-end close of a program (Pasal 5, 14): every pocket of the program, expired
    /// by `as_of`, goes back to the program's giro account. Idempotent per (program, as_of):
    /// a repeat returns the first close. A later close sweeps what reversals of purchases made
    /// before expiry credited to expired pockets since.
    ///
    /// Each pocket is emptied in the balance store first (no purchase can spend an expired
    /// pocket, so nothing races with it but a reversal's credit), then the close is journaled
    /// with what the store took; a retry drains nothing more and journals the same amounts.
    pub async fn close_program(
        &self,
        program: &ProgramCode,
        as_of: Day,
        at_unix_seconds: i64,
    ) -> Result<ProgramCloseOutcome, LedgerError> {
        let _admin = self.admin_turn().await?;
        let id = TransferId::program_close(program, as_of);
        if let Some(outcome) = self.program_close(program, as_of)? {
            return Ok(outcome);
        }
        self.know_programs(&[program]).await?;
        let expires = self
            .programs_read()
            .get(program)
            .map(|p| p.pocket_expires_at)
            .ok_or_else(|| LedgerError::NotFound(format!("program {program}")))?;
        if as_of <= expires {
            return Err(LedgerError::Refused(format!(
                "pockets of {program} may be spent until {expires}: close as of a later day"
            )));
        }
        if as_of > Day::wita_of_unix_seconds(at_unix_seconds) {
            return Err(LedgerError::Refused(format!(
                "{as_of} is in the future: a close is as of today or an earlier day"
            )));
        }
        let mut holders: Vec<CardId> = {
            let state = self.journal.state();
            state
                .cards
                .iter()
                .filter(|(_, card)| card.pockets.get(program).is_some_and(|b| b.is_positive()))
                .map(|(card, _)| *card)
                .collect()
        };
        holders.sort();
        let returns = self.drain_pockets(id, program, holders).await?;
        self.journal
            .append(Entry {
                at_unix_seconds,
                record: Record::ProgramClose {
                    program: program.clone(),
                    as_of,
                    returns,
                },
            })
            .await?;
        let mut outcome = self
            .program_close(program, as_of)?
            .ok_or_else(|| LedgerError::Internal("journaled close not in the projection".into()))?;
        outcome.created = true;
        Ok(outcome)
    }

    /// A revocation of enrolment in `program` (the Mayor's decree, for one person or a
    /// determination's people): what the pockets of the program on `cards` hold goes back to
    /// the program's giro account, in one journaled movement. Idempotent per (program,
    /// `reference`): a repeat returns the first. Spending stops before this, when the registry
    /// drops the enrolment (a purchase pays only from the programs its holder is enrolled in);
    /// each pocket is emptied in the balance store first, then journaled with what it took.
    pub async fn revoke_pockets(
        &self,
        program: &ProgramCode,
        reference: &str,
        cards: &[CardId],
        at_unix_seconds: i64,
    ) -> Result<RevocationOutcome, LedgerError> {
        let _admin = self.admin_turn().await?;
        let id = TransferId::revocation(program, reference);
        if let Some(outcome) = self.revocation(program, reference)? {
            return Ok(outcome);
        }
        let mut cards = cards.to_vec();
        cards.sort();
        cards.dedup();
        let returns = self.drain_pockets(id, program, cards).await?;
        self.journal
            .append(Entry {
                at_unix_seconds,
                record: Record::Revocation {
                    program: program.clone(),
                    reference: reference.to_string(),
                    returns,
                },
            })
            .await?;
        let mut outcome = self.revocation(program, reference)?.ok_or_else(|| {
            LedgerError::Internal("journaled revocation not in the projection".into())
        })?;
        outcome.created = true;
        Ok(outcome)
    }

    /// A revocation as journaled (from history once it has left memory).
    pub fn revocation(
        &self,
        program: &ProgramCode,
        reference: &str,
    ) -> Result<Option<RevocationOutcome>, LedgerError> {
        let id = TransferId::revocation(program, reference);
        let Some((_, Record::Revocation { returns, .. })) = self.transfer_by_id(&id)? else {
            return Ok(None);
        };
        Ok(Some(RevocationOutcome {
            id,
            returned: sum_of(&returns)?,
            returns,
            created: false,
        }))
    }

    /// A program's close as of a day, as journaled (from history once it has left memory).
    pub fn program_close(
        &self,
        program: &ProgramCode,
        as_of: Day,
    ) -> Result<Option<ProgramCloseOutcome>, LedgerError> {
        let id = TransferId::program_close(program, as_of);
        let Some((at_unix_seconds, Record::ProgramClose { returns, .. })) =
            self.transfer_by_id(&id)?
        else {
            return Ok(None);
        };
        Ok(Some(ProgramCloseOutcome {
            id,
            as_of,
            returned: sum_of(&returns)?,
            returns,
            at_unix_seconds,
            created: false,
        }))
    }

    /// Empties the pockets of `program` on `cards` (sorted) in the balance store for transfer
    /// `id`: what each held, positive amounts only, in card order.
    async fn drain_pockets(
        &self,
        id: TransferId,
        program: &ProgramCode,
        cards: Vec<CardId>,
    ) -> Result<Vec<(CardId, Money)>, LedgerError> {
        let mut returns = Vec::with_capacity(cards.len());
        for card in cards {
            let taken = self.drain_store(card, id, Some(program)).await?;
            let amount = Money::checked_sum(taken.iter().map(|t| t.amount))
                .ok_or_else(|| LedgerError::Internal("overflow".into()))?;
            if amount.is_positive() {
                returns.push((card, amount));
            }
        }
        Ok(returns)
    }

    /// Drains a card's pockets (one program's when given) in the balance store, rebuilding
    /// the card first when this generation of the cache does not hold it.
    pub(super) async fn drain_store(
        &self,
        card: CardId,
        id: TransferId,
        program: Option<&ProgramCode>,
    ) -> Result<Vec<PocketAmount>, LedgerError> {
        match self.balances.drain(card, id, program).await {
            Err(fenced @ StoreError::Fenced { .. }) => {
                self.recover_fenced(fenced).await?;
                Ok(self.balances.drain(card, id, program).await?)
            }
            other => Ok(other?),
        }
    }
}

/// The first day of a disbursement period `YYYY-MM`; `None` when it is not one.
fn period_first_day(period: &str) -> Option<Day> {
    let (year, month) = period.split_once('-')?;
    Day::from_ymd(year.parse().ok()?, month.parse().ok()?, 1)
}

/// The total of per-card amounts the journal accepted.
fn sum_of(per_card: &[(CardId, Money)]) -> Result<Money, LedgerError> {
    Money::checked_sum(per_card.iter().map(|(_, amount)| *amount))
        .ok_or_else(|| LedgerError::Internal("overflow".into()))
}
