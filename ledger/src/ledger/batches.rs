//! Terminal batches (0500) and the settlement of a business date with the bank's answers.

use super::*;
use crate::record::DayLine;

/// A terminal's open batch: the purchases approved since its last 0500.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenBatch {
    /// DE41.
    pub terminal: TerminalId,
    /// The switch's sequence number the batch will close under.
    pub sequence: u64,
    /// The journal's totals so far.
    pub totals: BatchTotals,
}

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

    /// The terminal batches closed (0500) on business date `date`, in the order they closed:
    /// from history once the date is settled and they have moved there, and from memory.
    pub fn closed_on(&self, date: Day) -> Result<Vec<(TerminalId, u64)>, LedgerError> {
        let mut batches = match &self.history {
            Some(history) => history.closed_on(date)?,
            None => Vec::new(),
        };
        let state = self.journal.state();
        if let Some(in_memory) = state.days.closed_batches.get(&date) {
            // A move may have stored them and not yet dropped them from memory.
            let held: std::collections::HashSet<(TerminalId, u64)> =
                batches.iter().cloned().collect();
            batches.extend(in_memory.iter().filter(|b| !held.contains(*b)).cloned());
        }
        Ok(batches)
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

    /// A page of the terminals' open batches (an approved purchase since their last 0500),
    /// by terminal id: `(total, page)` for the `limit` batches after the first `offset`. It
    /// reads each terminal's batch state in memory (one entry per terminal, never a purchase),
    /// so its cost grows with the terminals, not with history.
    pub fn open_batches(&self, offset: usize, limit: usize) -> (usize, Vec<OpenBatch>) {
        let state = self.journal.state();
        let mut open: Vec<(&TerminalId, u64, BatchTotals)> = state
            .terminals
            .iter()
            .filter_map(|(terminal, batches)| {
                batches
                    .open
                    .map(|(sequence, totals)| (terminal, sequence, totals))
            })
            .collect();
        open.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let total = open.len();
        let page = open
            .into_iter()
            .skip(offset)
            .take(limit)
            .map(|(terminal, sequence, totals)| OpenBatch {
                terminal: terminal.clone(),
                sequence,
                totals,
            })
            .collect();
        (total, page)
    }

    /// Journals the settlement cut-over (seconds after a WITA day's midnight at which its
    /// business day ends; 86,400 for midnight) in force from `at_unix_seconds`, when it is not
    /// the one in force already. Purchases accepted before keep the business dates they had.
    pub async fn keep_settlement_cutover(
        &self,
        seconds: u32,
        at_unix_seconds: i64,
    ) -> Result<(), LedgerError> {
        if !(1..=86_400).contains(&seconds) {
            return Err(LedgerError::Invalid(format!(
                "a cut-over is 1 to 86,400 seconds after midnight, not {seconds}"
            )));
        }
        let _admin = self.admin_turn().await?;
        if self.journal.state().days.cutover() == seconds {
            return Ok(());
        }
        self.journal
            .append(Entry {
                at_unix_seconds,
                record: Record::Cutover {
                    from_unix_seconds: at_unix_seconds,
                    seconds,
                },
            })
            .await?;
        Ok(())
    }

    /// When business date `date` ends (UTC seconds), under the cut-over in force.
    pub fn business_date_end(&self, date: Day) -> i64 {
        self.journal.state().days.end_of(date)
    }

    /// The business date of a purchase accepted at `unix_seconds` under the cut-overs journaled.
    pub fn business_date_of(&self, unix_seconds: i64) -> Day {
        self.journal.state().days.date_of(unix_seconds)
    }

    /// Settles a WITA business date (admin API `POST /settlements`): journals one
    /// [`Record::DaySettlement`] moving, per E-Warong, the approved purchases authorized on
    /// that date net of their reversals and of adjustments (reversals of purchases of dates
    /// settled before) from the programs' giro accounts to its payable account, with the
    /// amounts the bank rejected before carried into its line. It closes no terminal batch and
    /// reads no purchase. Refused before the date's cut-over has passed at `at_unix_seconds`.
    /// Idempotent per date: a second call returns the settlement journaled first (also one
    /// made by batch before settlement by date) and never moves money twice.
    pub async fn settle(
        &self,
        business_date: Day,
        at_unix_seconds: i64,
    ) -> Result<SettlementOutcome, LedgerError> {
        let _admin = self.admin_turn().await?;
        if let Some(done) = self.settlement(business_date) {
            return Ok(done);
        }
        let end = self.business_date_end(business_date);
        if at_unix_seconds < end {
            let local = end + crate::day::WITA_OFFSET_SECONDS;
            let minute = local.rem_euclid(86_400) / 60;
            return Err(LedgerError::Refused(format!(
                "business date {business_date} ends at {} {:02}:{:02} WITA; settle it after its cut-over",
                Day::wita_of_unix_seconds(end),
                minute / 60,
                minute % 60
            )));
        }
        let record = Record::DaySettlement {
            business_date,
            lines: self.journal.state().day_lines(business_date).0,
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

    /// The settlement of a business date, if the journal has one (by date, or by batch as
    /// journals before settlement by date hold them: their lines have no adjustments).
    pub fn settlement(&self, business_date: Day) -> Option<SettlementOutcome> {
        let state = self.journal.state();
        let id = TransferId::settlement(business_date);
        let (batches, lines) = match state.transfers.get(&id)? {
            Record::DaySettlement { lines, .. } => (Vec::new(), lines.clone()),
            Record::Settlement { batches, lines, .. } => (
                batches.clone(),
                lines
                    .iter()
                    .map(|line| DayLine {
                        merchant: line.merchant.clone(),
                        purchase_count: line.purchase_count,
                        purchase_amount: line.purchase_amount,
                        reversal_count: line.reversal_count,
                        reversal_amount: line.reversal_amount,
                        adjustment_count: 0,
                        adjustment_amount: Money::ZERO,
                        net: line.net.clone(),
                        carried: line.carried,
                        amount: line.amount,
                    })
                    .collect(),
            ),
            _ => return None,
        };
        Some(SettlementOutcome {
            id,
            business_date,
            batches,
            lines,
            at_unix_seconds: state.transfer_times.get(&id).copied().unwrap_or(0),
        })
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
        let _admin = self.admin_turn().await?;
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
            if !state.is_settled(business_date) {
                return Err(LedgerError::Refused(format!(
                    "no settlement for {business_date}"
                )));
            }
            match state.settlement_line_amount(business_date, merchant) {
                None => {
                    return Err(LedgerError::Refused(format!(
                        "the {business_date} settlement has no line for {merchant}"
                    )));
                }
                Some(line) if line != amount => {
                    return Err(LedgerError::Refused(format!(
                        "the {business_date} line of {merchant} is {line}, not {amount}"
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
