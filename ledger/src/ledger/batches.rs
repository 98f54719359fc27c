//! Terminal batches (0500) and the settlement of a business date with the bank's answers.

use super::*;

impl Ledger {
    /// Closes the terminal's open batch on the journal's totals (§3.5). A repeat of the last
    /// close (same DE60, nothing approved since) returns the same outcome.
    pub async fn close_batch(
        &self,
        request: BatchCloseRequest,
    ) -> Result<BatchCloseOutcome, LedgerError> {
        let _terminal = self.terminal_lock(&request.terminal).await;
        self.settled_books().await?;
        // The batch's purchases may have been made on other nodes: count them all.
        self.follow_others().await?;
        {
            let state = self.journal.state();
            if let Some(batches) = state.terminals.get(&request.terminal)
                && batches.open.is_none()
                && let Some(last) = batches.closed.last()
                && last.batch_number == request.batch_number
                && last.terminal_totals == request.terminal_totals
            {
                return Ok(BatchCloseOutcome {
                    matched: last.switch_totals == last.terminal_totals,
                    batch: last.clone(),
                });
            }
        }
        let record = Record::BatchClose {
            terminal: request.terminal.clone(),
            batch_number: request.batch_number.clone(),
            terminal_totals: request.terminal_totals,
        };
        match self
            .journal
            .append(Entry {
                at_unix_seconds: request.at_unix_seconds,
                record,
            })
            .await?
        {
            Applied::BatchClosed(batch) => Ok(BatchCloseOutcome {
                matched: batch.switch_totals == batch.terminal_totals,
                batch,
            }),
            Applied::Done => Err(LedgerError::Internal(
                "batch close applied without closing".into(),
            )),
        }
    }

    /// Closed batch `sequence` of a terminal, whatever its age: from memory while it waits for
    /// settlement (or is the terminal's last), from history once settled and gone.
    pub fn closed_batch(
        &self,
        terminal: &TerminalId,
        sequence: u64,
    ) -> Result<Option<ClosedBatch>, LedgerError> {
        {
            let state = self.journal.state();
            let in_memory = state
                .terminals
                .get(terminal)
                .and_then(|t| t.closed(sequence))
                .or_else(|| {
                    state
                        .departed_batches
                        .iter()
                        .find(|(t, c)| t == terminal && c.sequence == sequence)
                        .map(|(_, c)| c)
                });
            if let Some(found) = in_memory {
                return Ok(Some(found.clone()));
            }
        }
        match &self.history {
            Some(history) => Ok(history.closed_batch(terminal, sequence)?),
            None => Ok(None),
        }
    }

    /// The totals of the terminal's open batch (zeros when none is open).
    pub fn open_batch_totals(&self, terminal: &TerminalId) -> BatchTotals {
        self.journal
            .state()
            .terminals
            .get(terminal)
            .and_then(|t| t.open)
            .map(|(_, totals)| totals)
            .unwrap_or_default()
    }

    /// Settles a WITA business day (admin API `POST /settlements`): closes every terminal
    /// batch still open (DE60 [`SETTLEMENT_BATCH_NUMBER`], no terminal totals), then journals
    /// one [`Record::Settlement`] over every closed batch not settled yet, moving each
    /// E-Warong's net per program from the giro accounts to its payable account, with the
    /// amounts the bank rejected before carried into its line. Idempotent per date: a second
    /// call (or a rerun after a crash between the two steps) returns the settlement journaled
    /// first and never moves money twice.
    pub async fn settle(
        &self,
        business_date: Day,
        at_unix_seconds: i64,
    ) -> Result<SettlementOutcome, LedgerError> {
        let _admin = self.admin_lock.lock().await;
        // Decided from the projection: after a failed write, from what is durable.
        self.settled_books().await?;
        // Batches and purchases of other nodes count too.
        self.follow_others().await?;
        if let Some(done) = self.settlement(business_date) {
            return Ok(done);
        }
        let open: Vec<TerminalId> = {
            let state = self.journal.state();
            let mut open: Vec<TerminalId> = state
                .terminals
                .iter()
                .filter(|(_, batches)| batches.open.is_some())
                .map(|(terminal, _)| terminal.clone())
                .collect();
            open.sort();
            open
        };
        for terminal in open {
            let _terminal = self.terminal_lock(&terminal).await;
            let still_open = self
                .journal
                .state()
                .terminals
                .get(&terminal)
                .is_some_and(|b| b.open.is_some());
            if still_open {
                self.journal
                    .append(Entry {
                        at_unix_seconds,
                        record: Record::BatchClose {
                            terminal,
                            batch_number: SETTLEMENT_BATCH_NUMBER.to_string(),
                            terminal_totals: BatchTotals::default(),
                        },
                    })
                    .await?;
            }
        }
        let record = {
            let state = self.journal.state();
            let batches = state.unsettled_batches();
            let lines = state.settlement_lines(&batches);
            Record::Settlement {
                business_date,
                batches,
                lines,
            }
        };
        self.journal
            .append(Entry {
                at_unix_seconds,
                record,
            })
            .await?;
        self.settlement(business_date).ok_or_else(|| {
            LedgerError::Internal("a settlement the journal accepted is not in it".into())
        })
    }

    /// The settlement of a business day, if the journal has one.
    pub fn settlement(&self, business_date: Day) -> Option<SettlementOutcome> {
        let state = self.journal.state();
        let id = TransferId::settlement(business_date);
        match state.transfers.get(&id) {
            Some(Record::Settlement { batches, lines, .. }) => Some(SettlementOutcome {
                id,
                business_date,
                batches: batches.clone(),
                lines: lines.clone(),
                at_unix_seconds: state.transfer_times.get(&id).copied().unwrap_or(0),
            }),
            _ => None,
        }
    }

    /// Records the bank's answer to one settlement line (admin API `POST
    /// /settlements/{date}/confirmation`): paid moves the line's amount from the E-Warong's
    /// payable account out of the books (`Account::PaidOut`); rejected leaves it payable and
    /// the next settlement carries it. Idempotent per (date, E-Warong); another answer for the
    /// same line is a conflict; a line that does not exist, or another amount, is refused.
    pub async fn record_payout(
        &self,
        business_date: Day,
        merchant: &MerchantId,
        amount: Money,
        paid: bool,
        bank_reference: &str,
        at_unix_seconds: i64,
    ) -> Result<(), LedgerError> {
        let _admin = self.admin_lock.lock().await;
        // Decided from the projection: after a failed write, from what is durable.
        self.settled_books().await?;
        let record = Record::Payout {
            business_date,
            merchant: merchant.clone(),
            amount,
            paid,
            bank_reference: bank_reference.to_string(),
        };
        let id = TransferId::payout(business_date, merchant);
        {
            let state = self.journal.state();
            if let Some(existing) = state.transfers.get(&id) {
                return if *existing == record {
                    Ok(())
                } else {
                    Err(LedgerError::Conflict(format!(
                        "the {business_date} line of {merchant} was confirmed already, with other content"
                    )))
                };
            }
            let line = match state.transfers.get(&TransferId::settlement(business_date)) {
                Some(Record::Settlement { lines, .. }) => {
                    lines.iter().find(|l| l.merchant == *merchant).cloned()
                }
                _ => {
                    return Err(LedgerError::Refused(format!(
                        "no settlement for {business_date}"
                    )));
                }
            };
            match line {
                None => {
                    return Err(LedgerError::Refused(format!(
                        "the {business_date} settlement has no line for {merchant}"
                    )));
                }
                Some(line) if line.amount != amount => {
                    return Err(LedgerError::Refused(format!(
                        "the {business_date} line of {merchant} is {}, not {amount}",
                        line.amount
                    )));
                }
                Some(_) => {}
            }
        }
        self.journal
            .append(Entry {
                at_unix_seconds,
                record,
            })
            .await?;
        Ok(())
    }
}
