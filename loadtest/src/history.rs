//! Writes history fast: approved purchases through the ledger's own call
//! ([`Ledger::authorize_purchase`]), in-process, without the network, the HSM or the switch,
//! spread evenly over `days` days before `now`, so a benchmark can start the switch on a city
//! with millions of purchases behind it. Every purchase is journaled and durable exactly as
//! the switch's are (group commit); only the terminals are skipped.

use crate::city::City;
use ssn_ledger::{
    AuthorizationId, CardId, Fingerprint, Ledger, LedgerError, MerchantId, Money, PurchaseKey,
    PurchaseRequest, Rrn, Stan, TerminalId, TransmissionTime,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Each purchase's amount (minor units): Rp 100, so a seeded card's pocket lasts for
/// hundreds of thousands of them.
pub const HISTORY_PURCHASE_MINOR: i64 = 10_000;
/// Purchases in flight at once (what keeps group commit's batches full).
pub const HISTORY_IN_FLIGHT: usize = 512;

/// What [`write`] did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Written {
    /// Approved.
    pub approved: u64,
    /// Answered otherwise (a decline is journaled too).
    pub declined: u64,
}

/// When purchase `i` of `total` is made, over `days` days ending at `now`: never decreasing
/// with `i`.
fn accepted_at(i: u64, total: u64, days: u64, now: i64) -> i64 {
    let span = i128::from(days) * 86_400;
    let offset = i128::from(i) * span / i128::from(total.max(1));
    now - i64::try_from(span - offset).unwrap_or(i64::MAX)
}

/// One purchase of the history: number `i` of `total`, over `days` days ending at `now`.
fn purchase(
    city: &City,
    i: u64,
    total: u64,
    days: u64,
    now: i64,
) -> Result<PurchaseRequest, LedgerError> {
    let invalid = |e: ssn_ledger::InvalidId| LedgerError::Invalid(e.to_string());
    let terminals = city.terminals.len() as u64;
    let terminal = &city.terminals[(i % terminals) as usize];
    let card = &city.cards[((i / terminals) * 7_919 + i % terminals) as usize % city.cards.len()];
    let at = accepted_at(i, total, days, now);
    // DE7 is UTC.
    let utc_day = ssn_ledger::Day(i32::try_from(at.div_euclid(86_400)).unwrap_or_default());
    let (_, month, dom) = utc_day.ymd();
    let second = at.rem_euclid(86_400);
    let transmitted = format!(
        "{month:02}{dom:02}{:02}{:02}{:02}",
        second / 3600,
        second / 60 % 60,
        second % 60
    );
    Ok(PurchaseRequest {
        key: PurchaseKey {
            terminal: TerminalId::new(terminal.terminal_id.clone()).map_err(invalid)?,
            stan: Stan::new(format!("{:06}", (i / terminals) % 1_000_000)).map_err(invalid)?,
            transmitted: TransmissionTime::new(transmitted).map_err(invalid)?,
        },
        fingerprint: Fingerprint::of(&i),
        card: CardId(card.card_id),
        merchant: MerchantId::new(terminal.merchant_id.clone()).map_err(invalid)?,
        amount: Money::from_minor(HISTORY_PURCHASE_MINOR),
        basket: None,
        rrn: Rrn::new(format!("H{i:011}")).map_err(invalid)?,
        authorization_id: AuthorizationId::new(format!("{:06}", i % 1_000_000)).map_err(invalid)?,
        at_unix_seconds: at,
        // History is written as the city's cards stand: every pocket may pay.
        enrolments: None,
    })
}

/// Writes `total` purchases of `city` into `ledger`, a WITA business day at a time, each
/// day settled after its purchases (as the bank's daily run does) and what has left the
/// working set then moved to history; `progress` is called with the count done every 100,000.
pub async fn write(
    ledger: Arc<Ledger>,
    city: Arc<City>,
    total: u64,
    days: u64,
    now: i64,
    progress: impl Fn(u64) + Send + Sync + 'static,
) -> Result<Written, LedgerError> {
    let progress = Arc::new(progress);
    let mut written = Written::default();
    let mut from = 0u64;
    while from < total {
        let day = ssn_ledger::Day::wita_of_unix_seconds(accepted_at(from, total, days, now));
        // The first purchase of a later day (`accepted_at` never decreases).
        let (mut low, mut high) = (from, total);
        while low < high {
            let middle = low + (high - low) / 2;
            if ssn_ledger::Day::wita_of_unix_seconds(accepted_at(middle, total, days, now)) > day {
                high = middle;
            } else {
                low = middle + 1;
            }
        }
        let day_written = write_range(
            ledger.clone(),
            city.clone(),
            from..low,
            (total, days, now),
            progress.clone(),
        )
        .await?;
        written.approved += day_written.approved;
        written.declined += day_written.declined;
        let last = accepted_at(low - 1, total, days, now);
        // A date is settled once it has ended (the history's cut-over is midnight).
        ledger
            .settle(day, ledger.business_date_end(day).max(last + 1))
            .await?;
        // What has left the working set moves now, as a switch's mover does every few
        // seconds: writing far faster than any switch would outrun it and fill memory.
        ledger.move_to_history(last + 1, ssn_ledger::window::WORKING_SET_PURCHASES_MAX)?;
        from = low;
    }
    Ok(written)
}

/// Writes purchases `range` of the history.
async fn write_range(
    ledger: Arc<Ledger>,
    city: Arc<City>,
    range: std::ops::Range<u64>,
    (total, days, now): (u64, u64, i64),
    progress: Arc<impl Fn(u64) + Send + Sync + 'static>,
) -> Result<Written, LedgerError> {
    let next = Arc::new(AtomicU64::new(range.start));
    let approved = Arc::new(AtomicU64::new(0));
    let declined = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(HISTORY_IN_FLIGHT);
    for _ in 0..HISTORY_IN_FLIGHT {
        let (ledger, city, next) = (ledger.clone(), city.clone(), next.clone());
        let (approved, declined, progress) = (approved.clone(), declined.clone(), progress.clone());
        let end = range.end;
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= end {
                    return Ok::<(), LedgerError>(());
                }
                let request = purchase(&city, i, total, days, now)?;
                let answer = ledger.authorize_purchase(request).await?;
                if answer.response.code == ssn_ledger::ResponseCode::APPROVED {
                    approved.fetch_add(1, Ordering::Relaxed);
                } else {
                    declined.fetch_add(1, Ordering::Relaxed);
                }
                if (i + 1) % 100_000 == 0 {
                    progress(i + 1);
                }
            }
        }));
    }
    for task in tasks {
        task.await
            .map_err(|e| LedgerError::Internal(format!("history task: {e}")))??;
    }
    Ok(Written {
        approved: approved.load(Ordering::Relaxed),
        declined: declined.load(Ordering::Relaxed),
    })
}
