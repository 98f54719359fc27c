//! The card host: what the switch answers to each request of the host interface
//! (`../shared/spec/iso8583-host-interface.md` §3-8), in the order of §6.
//!
//! One dispatcher branches on MTI and processing code; each branch checks what it must in
//! §6's order and asks the ledger for what moves money. The checks before the ledger are the
//! switch's; the ones after the PIN (basket, limits, balance) are the ledger's, because they
//! must be atomic with the debit.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ssn_codec::{Message, MessageView, Pan};
use ssn_hsm::{EncryptedPinBlock, Pvki, Pvv, SoftHsm, WrappedKey};
use ssn_ledger::{
    AuthResponse, AuthorizationId, BasketLine, BatchCloseRequest, BatchTotals, Card, CardStatus,
    DeclineRequest, Enrolments, Fingerprint, Ledger, LedgerError, MerchantId, Money, PurchaseKey,
    PurchaseLookup, PurchaseRequest, RegistryOp, RegistryRecord, ResponseCode, ReversalRequest,
    Rrn, Stan, Terminal, TerminalId, TransmissionTime,
};

use crate::fields::{self, OriginalData, Totals};
use crate::fingerprint::content_fingerprint;
use crate::mac;

/// How long a registry read (terminal, merchant, card) may take before the answer is `91`.
/// Reads only: a debit is never abandoned half-way by a timeout (the ledger's own bounded
/// queue answers `91` before it starts one).
pub const REGISTRY_READ_TIMEOUT: Duration = Duration::from_millis(500);

/// Response codes of §6.
mod code {
    pub const APPROVED: [u8; 2] = *b"00";
    pub const INVALID_MERCHANT: [u8; 2] = *b"03";
    pub const INVALID_TRANSACTION: [u8; 2] = *b"12";
    pub const INVALID_AMOUNT: [u8; 2] = *b"13";
    pub const INVALID_CARD: [u8; 2] = *b"14";
    pub const FORMAT_ERROR: [u8; 2] = *b"30";
    pub const LOST: [u8; 2] = *b"41";
    pub const STOLEN: [u8; 2] = *b"43";
    pub const EXPIRED: [u8; 2] = *b"54";
    pub const WRONG_PIN: [u8; 2] = *b"55";
    pub const NOT_PERMITTED: [u8; 2] = *b"57";
    pub const TERMINAL_NOT_PERMITTED: [u8; 2] = *b"58";
    pub const RESTRICTED_CARD: [u8; 2] = *b"62";
    pub const SECURITY_VIOLATION: [u8; 2] = *b"63";
    pub const PIN_TRIES_EXCEEDED: [u8; 2] = *b"75";
    pub const UNAVAILABLE: [u8; 2] = *b"91";
    pub const DUPLICATE_CONFLICT: [u8; 2] = *b"94";
    pub const RECONCILE_ERROR: [u8; 2] = *b"95";
    pub const SYSTEM_ERROR: [u8; 2] = *b"96";
}

/// Fields a purchase or balance inquiry echoes (§3.2).
const FINANCIAL_ECHO: [u8; 10] = [2, 3, 4, 7, 11, 12, 13, 41, 42, 49];
/// Fields a reversal echoes (§3.4).
const REVERSAL_ECHO: [u8; 9] = [2, 3, 4, 7, 11, 41, 42, 49, 90];
/// Fields network management echoes (§3.1).
const NETWORK_ECHO: [u8; 4] = [7, 11, 41, 70];
/// Fields a batch close echoes.
const BATCH_ECHO: [u8; 6] = [3, 7, 11, 41, 42, 60];

/// Mandatory fields (§3).
const PURCHASE_MANDATORY: [u8; 14] = [2, 3, 4, 7, 11, 12, 13, 14, 22, 25, 41, 42, 49, 52];
const REVERSAL_MANDATORY: [u8; 9] = [2, 3, 4, 7, 11, 41, 42, 49, 90];
const NETWORK_MANDATORY: [u8; 4] = [7, 11, 41, 70];
const BATCH_MANDATORY: [u8; 7] = [3, 7, 11, 41, 42, 60, 63];

/// What the host needs besides the ledger.
#[derive(Debug)]
pub struct HostConfig {
    /// One character (0-9, A-Z) that starts every RRN this node assigns, so nodes sharing a
    /// journal never assign the same RRN.
    pub node_id: u8,
    /// The issuer's PIN verification key, wrapped under the master key.
    pub pvk: WrappedKey,
}

/// The card host: answers every request of §3 for one switch process.
#[derive(Debug)]
pub struct Host {
    ledger: Arc<Ledger>,
    hsm: Arc<SoftHsm>,
    pvk: WrappedKey,
    node_id: u8,
    /// Counter behind RRNs and authorization ids. Starts at the start-up time in microseconds,
    /// so a restarted node never repeats an RRN unless it had assigned more than a million a
    /// second on average since the previous start.
    sequence: AtomicU64,
}

/// A request's amounts are in the listener's currency exponent (§2: IDR is 2, but some hosts
/// send 0); the ledger keeps minor units of exponent 2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AmountExponent(u8);

impl AmountExponent {
    /// The exponents a listener may use: 0, 1 or 2 (the ledger's minor units are hundredths).
    pub const SUPPORTED: std::ops::RangeInclusive<u8> = 0..=2;

    /// An exponent of [`AmountExponent::SUPPORTED`]; `None` for any other.
    pub fn new(exponent: u8) -> Option<AmountExponent> {
        AmountExponent::SUPPORTED
            .contains(&exponent)
            .then_some(AmountExponent(exponent))
    }

    fn factor(self) -> u64 {
        match self.0 {
            0 => 100,
            1 => 10,
            // 2, the only other value `new` allows.
            _ => 1,
        }
    }
    /// Wire amount to ledger minor units.
    fn to_minor(self, wire: u64) -> Option<u64> {
        wire.checked_mul(self.factor())
    }
    /// Ledger minor units to wire amount (rounded down).
    fn to_wire(self, minor: u64) -> u64 {
        minor / self.factor()
    }
}

fn now_unix_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn text(value: &[u8]) -> String {
    String::from_utf8_lossy(value).into_owned()
}

const BASE36: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";

fn base36(mut value: u64, out: &mut [u8]) {
    for slot in out.iter_mut().rev() {
        *slot = BASE36[(value % 36) as usize];
        value /= 36;
    }
}

/// The answer to one request: the reply being built, and the code it will carry.
struct Reply {
    message: Message,
}

impl Reply {
    fn new(request: &MessageView, echo: &[u8]) -> Option<Reply> {
        Message::reply_to(request, echo).map(|message| Reply { message })
    }

    fn code(mut self, code: [u8; 2]) -> Message {
        let _ = self.message.set(39, &code);
        self.message
    }
}

impl Host {
    /// A host over `ledger`, verifying PINs and changing keys with `hsm`.
    pub fn new(ledger: Arc<Ledger>, hsm: Arc<SoftHsm>, config: HostConfig) -> Host {
        let start_micros = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        Host {
            ledger,
            hsm,
            pvk: config.pvk,
            node_id: config.node_id,
            sequence: AtomicU64::new(start_micros),
        }
    }

    /// The ledger this host answers from.
    pub fn ledger(&self) -> &Arc<Ledger> {
        &self.ledger
    }

    fn next_rrn(&self) -> (Rrn, AuthorizationId) {
        let n = self.sequence.fetch_add(1, Ordering::Relaxed);
        let mut rrn = [0u8; 12];
        rrn[0] = self.node_id;
        base36(n, &mut rrn[1..]);
        let mut auth = [0u8; 6];
        base36(n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 20, &mut auth);
        // Both are made of base-36 digits, the shapes Rrn and AuthorizationId accept.
        let rrn = Rrn::new(text(&rrn))
            .unwrap_or_else(|_| Rrn::new("000000000000").expect("constant RRN"));
        let auth = AuthorizationId::new(text(&auth))
            .unwrap_or_else(|_| AuthorizationId::new("000000").expect("constant"));
        (rrn, auth)
    }

    /// Answers one request (§3); `None` for a response-class MTI (§3.6: dropped and counted).
    pub async fn handle(&self, request: MessageView, exponent: AmountExponent) -> Option<Message> {
        let mti = request.mti();
        if !mti.is_request() {
            metrics::counter!("ssn_responses_received_total").increment(1);
            return None;
        }
        // §10: a terminal with a TAK is authenticated before anything else is looked at.
        let tak = match self.authenticate(&request).await {
            Ok(tak) => tak,
            Err(code) => return Some(Reply::new(&request, &[11, 41])?.code(code)),
        };
        if tak.is_none() && (request.has(64) || request.has(128)) {
            // §10: a terminal without a TAK keeps version 1's answer to a MAC, `12`, rather
            // than an answer that would look authenticated.
            return Some(Reply::new(&request, &[11, 41])?.code(code::INVALID_TRANSACTION));
        }
        let mut answer = self.dispatch(&request, exponent).await?;
        if let Some(tak) = tak
            && let Err(error) = mac::sign(&self.hsm, &tak, &mut answer, request.profile())
        {
            // The TAK just verified the request, so only a bug gets here; the answer goes
            // out without a MAC, which the terminal refuses (and reverses a purchase).
            tracing::error!(%error, "an answer could not be MACed");
        }
        Some(answer)
    }

    /// §10: the TAK of the terminal in DE41 when it has one and the request's MAC verifies
    /// under it; `None` when the terminal has no TAK (or is unknown, which its handler
    /// answers). A MAC missing or wrong is `63`, counted in `ssn_mac_refused_total{reason}`.
    async fn authenticate(&self, request: &MessageView) -> Result<Option<WrappedKey>, [u8; 2]> {
        let Some(terminal_id) = request
            .terminal_id()
            .and_then(|t| TerminalId::new(text(&t)).ok())
        else {
            return Ok(None);
        };
        let Some(stored) = self
            .terminal(&terminal_id)
            .await?
            .and_then(|t| t.tak.clone())
        else {
            return Ok(None);
        };
        let tak = WrappedKey::from_slice(&stored.ciphertext).map_err(|_| code::SYSTEM_ERROR)?;
        match mac::verify(&self.hsm, &tak, request) {
            Ok(mac::Verdict::Verified) => Ok(Some(tak)),
            Ok(verdict) => {
                metrics::counter!("ssn_mac_refused_total", "reason" => verdict.label())
                    .increment(1);
                Err(code::SECURITY_VIOLATION)
            }
            Err(error) => {
                tracing::error!(%error, terminal = %terminal_id, "the stored TAK does not unwrap");
                Err(code::SYSTEM_ERROR)
            }
        }
    }

    /// The handler of a request by its MTI (§3).
    async fn dispatch(&self, request: &MessageView, exponent: AmountExponent) -> Option<Message> {
        // Each handler's future lives on the heap: they are kilobytes (a financial one is about
        // 4.6 KB, holding the reply and the ledger's futures), and inline they would make every
        // request's future that size, copied whole when the connection queues it.
        match &request.mti().digits() {
            b"0800" => Box::pin(self.network(request)).await,
            b"0200" => Box::pin(self.financial(request, exponent)).await,
            b"0400" | b"0401" | b"0420" | b"0421" => {
                Box::pin(self.reversal(request, exponent)).await
            }
            b"0500" => Box::pin(self.batch_close(request, exponent)).await,
            // §3.6 and §9: any other request gets `12`.
            _ => Some(Reply::new(request, &[11, 41])?.code(code::INVALID_TRANSACTION)),
        }
    }

    // ------------------------------------------------------------------ registry reads

    async fn terminal(&self, id: &TerminalId) -> Result<Option<Arc<Terminal>>, [u8; 2]> {
        let read = self.ledger.registry_cache().terminal_shared(id);
        match tokio::time::timeout(REGISTRY_READ_TIMEOUT, read).await {
            Ok(Ok(terminal)) => Ok(terminal),
            Ok(Err(_)) | Err(_) => Err(code::UNAVAILABLE),
        }
    }

    /// §6 orders 4 and 5: the terminal is registered and active, and DE42 is its active
    /// E-Warong.
    async fn check_terminal(
        &self,
        terminal_id: &TerminalId,
        merchant_id: Option<&[u8]>,
    ) -> Result<Arc<Terminal>, [u8; 2]> {
        let terminal = match self.terminal(terminal_id).await? {
            Some(t) if t.active => t,
            _ => return Err(code::TERMINAL_NOT_PERMITTED),
        };
        if let Some(merchant_id) = merchant_id {
            if terminal.merchant_id.as_str().as_bytes() != merchant_id {
                return Err(code::INVALID_MERCHANT);
            }
            let merchant = tokio::time::timeout(
                REGISTRY_READ_TIMEOUT,
                self.ledger
                    .registry_cache()
                    .merchant_shared(&terminal.merchant_id),
            )
            .await
            .map_err(|_| code::UNAVAILABLE)?
            .map_err(|_| code::UNAVAILABLE)?;
            if !merchant.is_some_and(|m| m.active) {
                return Err(code::INVALID_MERCHANT);
            }
        }
        Ok(terminal)
    }

    // ------------------------------------------------------------------ 0800

    async fn network(&self, request: &MessageView) -> Option<Message> {
        let mut reply = Reply::new(request, &NETWORK_ECHO)?;
        if !NETWORK_MANDATORY.iter().all(|&n| request.has(n)) {
            return Some(reply.code(code::FORMAT_ERROR));
        }
        let Some(terminal_id) = request
            .terminal_id()
            .and_then(|t| TerminalId::new(text(&t)).ok())
        else {
            return Some(reply.code(code::FORMAT_ERROR));
        };
        let terminal = match self.check_terminal(&terminal_id, None).await {
            Ok(t) => t,
            Err(code) => return Some(reply.code(code)),
        };
        match &request.network_management_code()? {
            b"001" | b"002" | b"301" => Some(reply.code(code::APPROVED)),
            b"101" => {
                let code = match self.change_key(&terminal).await {
                    Ok(de48) => {
                        let _ = reply.message.set(48, de48.as_bytes());
                        code::APPROVED
                    }
                    Err(code) => code,
                };
                Some(reply.code(code))
            }
            _ => Some(reply.code(code::INVALID_TRANSACTION)),
        }
    }

    /// §3.1 key change: a new TPK under the terminal's TMK, and for a terminal with a TAK a
    /// new TAK too (§10); from now on PIN blocks from that terminal are read with the new TPK
    /// and its MACs checked with the new TAK. The answer itself is MACed with the TAK the
    /// request was checked with, which the terminal still holds.
    async fn change_key(&self, terminal: &Terminal) -> Result<String, [u8; 2]> {
        let tmk =
            WrappedKey::from_slice(&terminal.tmk.ciphertext).map_err(|_| code::SYSTEM_ERROR)?;
        let change = self
            .hsm
            .change_terminal_keys(&tmk, terminal.tak.is_some())
            .map_err(|_| code::SYSTEM_ERROR)?;
        let mut updated = terminal.clone();
        updated.tpk = ssn_ledger::EncryptedKey {
            ciphertext: change.tpk.as_bytes().to_vec(),
            kcv: change.check_value.to_string(),
        };
        updated.tak = change
            .tak
            .as_ref()
            .map(|(tak, check_value)| ssn_ledger::EncryptedKey {
                ciphertext: tak.as_bytes().to_vec(),
                kcv: check_value.to_string(),
            });
        let op = RegistryOp::Replace {
            expected: RegistryRecord::Terminal(terminal.clone()),
            new: RegistryRecord::Terminal(updated),
        };
        match self.ledger.registry().apply(vec![op]).await {
            Ok(()) => {
                for old in std::iter::once(&terminal.tpk).chain(&terminal.tak) {
                    if let Ok(old) = WrappedKey::from_slice(&old.ciphertext) {
                        self.hsm.forget(&old);
                    }
                }
                Ok(change.de48.clone())
            }
            Err(ssn_ledger::RegistryError::Storage(_)) => Err(code::UNAVAILABLE),
            Err(_) => Err(code::SYSTEM_ERROR),
        }
    }
}

/// What a 0200 is, by its processing code (§3.2, §3.3, §6 orders 6-7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Financial {
    Purchase,
    BalanceInquiry,
    /// Moves cash or funds out: `57`.
    CashOrTransfer,
    /// Anything else: `12`.
    Unsupported,
}

fn classify(processing_code: &[u8; 6]) -> Financial {
    match processing_code {
        b"000000" => Financial::Purchase,
        b"310000" => Financial::BalanceInquiry,
        [b'0', b'1', ..] | [b'0', b'9', ..] | [b'4', b'0', ..] => Financial::CashOrTransfer,
        _ => Financial::Unsupported,
    }
}

/// A 0200 whose mandatory fields are present and well-formed (§6 order 1).
struct FinancialRequest {
    kind: Financial,
    key: PurchaseKey,
    fingerprint: Fingerprint,
    pan: Pan,
    expiry: [u8; 4],
    merchant: MerchantId,
    amount_minor: u64,
    currency: [u8; 3],
    basket: Option<Vec<fields::BasketItem>>,
    pin_block: [u8; 8],
}

/// §6 order 1 for a 0200: every mandatory field present and well-formed, track 2 agreeing
/// with DE2 and DE14, a DE48 that is a basket. `None` answers `30`.
fn parse_financial(request: &MessageView, exponent: AmountExponent) -> Option<FinancialRequest> {
    let kind = classify(&request.processing_code()?);
    let inquiry = kind == Financial::BalanceInquiry;
    let mandatory_ok = PURCHASE_MANDATORY
        .iter()
        .all(|&n| request.has(n) || (inquiry && n == 4));
    if !mandatory_ok {
        return None;
    }
    let pan = request.pan()?;
    let expiry = request.expiry()?;
    if request.has(35) {
        let (track_pan, track_expiry) = request.track2()?;
        if track_pan != pan || track_expiry != expiry {
            return None;
        }
    }
    let basket = match (kind, request.text(48)) {
        (Financial::Purchase, Some(de48)) => Some(fields::parse_basket(de48).ok()?),
        _ => None,
    };
    let amount_wire = if request.has(4) { request.amount()? } else { 0 };
    let key = PurchaseKey {
        terminal: TerminalId::new(text(&request.terminal_id()?)).ok()?,
        stan: Stan::new(text(&request.stan()?)).ok()?,
        transmitted: TransmissionTime::new(text(&request.transmission_date_time()?)).ok()?,
    };
    Some(FinancialRequest {
        kind,
        key,
        fingerprint: content_fingerprint(request),
        pan,
        expiry,
        merchant: MerchantId::new(text(&request.merchant_id()?)).ok()?,
        amount_minor: exponent.to_minor(amount_wire)?,
        currency: request.currency()?,
        basket,
        pin_block: request.pin_block()?,
    })
}

/// YYMM of today in Samarinda (WITA).
fn current_yymm(now: i64) -> [u8; 4] {
    let (year, month, _) = ssn_ledger::Day::wita_of_unix_seconds(now).ymd();
    let yy = year.rem_euclid(100) as u32;
    [
        b'0' + (yy / 10) as u8,
        b'0' + (yy % 10) as u8,
        b'0' + (month / 10) as u8,
        b'0' + (month % 10) as u8,
    ]
}

impl Host {
    async fn financial(&self, request: &MessageView, exponent: AmountExponent) -> Option<Message> {
        let mut reply = Reply::new(request, &FINANCIAL_ECHO)?;
        let (rrn, authorization_id) = self.next_rrn();
        let _ = reply.message.set(37, rrn.as_str().as_bytes());
        let Some(req) = parse_financial(request, exponent) else {
            return Some(reply.code(code::FORMAT_ERROR));
        };
        let now = now_unix_seconds();

        // §6 orders 2-3, §7, for every 0200 whatever its processing code: a purchase seen
        // before is answered as it was; another 0200 under its key (DE3 is in the content)
        // is `94`, and one under a tombstone `05`.
        match self
            .ledger
            .lookup_purchase(&req.key, &req.fingerprint)
            .await
        {
            PurchaseLookup::New => {}
            PurchaseLookup::Duplicate(stored) => {
                return Some(self.stored_answer(reply, &stored, exponent));
            }
            PurchaseLookup::Conflict => return Some(reply.code(code::DUPLICATE_CONFLICT)),
            PurchaseLookup::Tombstoned if req.kind == Financial::Purchase => {
                return Some(
                    self.decline(reply, &req, None, ResponseCode(*b"05"), rrn, now, exponent)
                        .await,
                );
            }
            // Only purchases are journaled: another 0200 is answered, not recorded.
            PurchaseLookup::Tombstoned => return Some(reply.code(*b"05")),
        }

        let checked = self.check_card_and_pin(&req, now).await;
        let (card, enrolments) = match checked {
            Ok(checked) => checked,
            Err((card, code)) => {
                if req.kind == Financial::Purchase
                    && code != code::UNAVAILABLE
                    && code != code::SYSTEM_ERROR
                {
                    return Some(
                        self.decline(reply, &req, card, ResponseCode(code), rrn, now, exponent)
                            .await,
                    );
                }
                return Some(reply.code(code));
            }
        };

        if req.kind == Financial::BalanceInquiry {
            return Some(match self.ledger.balance(card.card_id, now).await {
                Ok(balance) => {
                    let wire = exponent.to_wire(u64::try_from(balance.minor()).unwrap_or(0));
                    let _ = reply.message.set(54, &fields::available_balance(wire));
                    reply.code(code::APPROVED)
                }
                Err(error) => reply.code(ledger_code(&error)),
            });
        }

        let purchase = PurchaseRequest {
            key: req.key.clone(),
            fingerprint: req.fingerprint,
            card: card.card_id,
            merchant: req.merchant.clone(),
            amount: Money::from_minor(i64::try_from(req.amount_minor).unwrap_or(i64::MAX)),
            basket: req.basket.as_ref().map(|items| {
                items
                    .iter()
                    .map(|i| BasketLine {
                        category: text(&i.category),
                        quantity: i.quantity,
                        amount: Money::from_minor(
                            i64::try_from(i.amount_minor).unwrap_or(i64::MAX),
                        ),
                    })
                    .collect()
            }),
            rrn,
            authorization_id,
            at_unix_seconds: now,
            enrolments: Some(enrolments),
        };
        match self.ledger.authorize_purchase(purchase).await {
            Ok(authorization) => Some(self.stored_answer(reply, &authorization.response, exponent)),
            Err(error) => Some(reply.code(ledger_code(&error))),
        }
    }

    /// §6 orders 4-14 for a 0200: terminal, merchant, processing code, amount, card, PIN.
    /// On a decline, the card when it was found, for the journal.
    async fn check_card_and_pin(
        &self,
        req: &FinancialRequest,
        now: i64,
    ) -> Result<(Arc<Card>, Enrolments), (Option<ssn_ledger::CardId>, [u8; 2])> {
        let terminal = self
            .check_terminal(&req.key.terminal, Some(req.merchant.as_str().as_bytes()))
            .await
            .map_err(|c| (None, c))?;
        match req.kind {
            Financial::CashOrTransfer => return Err((None, code::NOT_PERMITTED)),
            Financial::Unsupported => return Err((None, code::INVALID_TRANSACTION)),
            Financial::Purchase | Financial::BalanceInquiry => {}
        }
        let basket_total = match &req.basket {
            Some(items) => {
                Some(fields::basket_total(items).map_err(|_| (None, code::INVALID_AMOUNT))?)
            }
            None => None,
        };
        let zero_purchase = req.kind == Financial::Purchase && req.amount_minor == 0;
        if &req.currency != b"360"
            || zero_purchase
            || basket_total.is_some_and(|t| t != req.amount_minor)
        {
            return Err((None, code::INVALID_AMOUNT));
        }
        if !req.pan.luhn_valid() {
            return Err((None, code::INVALID_CARD));
        }
        let card = match tokio::time::timeout(
            REGISTRY_READ_TIMEOUT,
            self.ledger
                .registry_cache()
                .card_by_pan_shared(&ledger_pan(&req.pan)),
        )
        .await
        {
            Ok(Ok(Some(card))) => card,
            Ok(Ok(None)) => return Err((None, code::INVALID_CARD)),
            Ok(Err(_)) | Err(_) => return Err((None, code::UNAVAILABLE)),
        };
        let id = Some(card.card_id);
        if card.expiry.as_bytes() != req.expiry || card.expiry.as_bytes() < &current_yymm(now)[..] {
            return Err((id, code::EXPIRED));
        }
        match card.status {
            CardStatus::Lost => return Err((id, code::LOST)),
            CardStatus::Stolen => return Err((id, code::STOLEN)),
            CardStatus::Active => {}
            CardStatus::Issued
            | CardStatus::Blocked
            | CardStatus::Damaged
            | CardStatus::Replaced => {
                return Err((id, code::RESTRICTED_CARD));
            }
        }
        let holder = match tokio::time::timeout(
            REGISTRY_READ_TIMEOUT,
            self.ledger.registry_cache().beneficiary_shared(&card.ssn),
        )
        .await
        {
            Ok(Ok(Some(b))) if b.status == ssn_ledger::BeneficiaryStatus::Determined => b,
            Ok(Ok(_)) => return Err((id, code::RESTRICTED_CARD)),
            _ => return Err((id, code::UNAVAILABLE)),
        };
        if card.pin_locked() {
            return Err((id, code::PIN_TRIES_EXCEEDED));
        }
        self.verify_pin(&terminal, &card, req, now)
            .await
            .map_err(|c| (id, c))?;
        Ok((card, Enrolments(holder)))
    }

    /// §6 orders 13-14 and §8: verify DE52 against the PVV; a wrong PIN counts, the third in
    /// a row locks, a right one resets the count.
    async fn verify_pin(
        &self,
        terminal: &Terminal,
        card: &Card,
        req: &FinancialRequest,
        now: i64,
    ) -> Result<(), [u8; 2]> {
        let tpk =
            WrappedKey::from_slice(&terminal.tpk.ciphertext).map_err(|_| code::SYSTEM_ERROR)?;
        let pvv = Pvv::new(card.pvv.expose()).map_err(|_| code::SYSTEM_ERROR)?;
        let block = EncryptedPinBlock::from_bytes(req.pin_block);
        let right =
            match self
                .hsm
                .verify_pin(&tpk, &block, req.pan.reveal(), &self.pvk, Pvki::ONE, &pvv)
            {
                Ok(right) => right,
                Err(error) if error.counts_as_wrong_pin() => false,
                Err(_) => return Err(code::SYSTEM_ERROR),
            };
        // The ledger counts with a compare-and-set, so two terminals checking the same card
        // at once both count, and a PIN locked meanwhile stays locked.
        match self.ledger.record_pin_check_from(card, right, now).await {
            Ok(ssn_ledger::PinOutcome::Correct) => Ok(()),
            Ok(ssn_ledger::PinOutcome::Wrong) => Err(code::WRONG_PIN),
            Ok(ssn_ledger::PinOutcome::Locked) => Err(code::PIN_TRIES_EXCEEDED),
            Err(error) => Err(ledger_code(&error)),
        }
    }

    /// A purchase declined by the switch's own checks, journaled so that a duplicate gets the
    /// same answer after any restart (§7).
    #[allow(clippy::too_many_arguments)]
    async fn decline(
        &self,
        reply: Reply,
        req: &FinancialRequest,
        card: Option<ssn_ledger::CardId>,
        code: ResponseCode,
        rrn: Rrn,
        now: i64,
        exponent: AmountExponent,
    ) -> Message {
        let decline = DeclineRequest {
            key: req.key.clone(),
            fingerprint: req.fingerprint,
            card,
            merchant: req.merchant.clone(),
            amount: Money::from_minor(i64::try_from(req.amount_minor).unwrap_or(i64::MAX)),
            code,
            rrn,
            at_unix_seconds: now,
        };
        match self.ledger.record_decline(decline).await {
            Ok(authorization) => self.stored_answer(reply, &authorization.response, exponent),
            Err(error) => reply.code(ledger_code(&error)),
        }
    }

    /// The fields the switch assigns, from what the journal holds (§7: byte for byte the same
    /// for every duplicate).
    fn stored_answer(
        &self,
        mut reply: Reply,
        stored: &AuthResponse,
        exponent: AmountExponent,
    ) -> Message {
        let _ = reply.message.set(37, stored.rrn.as_str().as_bytes());
        if let Some(id) = &stored.authorization_id {
            let _ = reply.message.set(38, id.as_str().as_bytes());
        }
        if let Some(balance) = stored.balance_after {
            let wire = exponent.to_wire(u64::try_from(balance.minor()).unwrap_or(0));
            let _ = reply.message.set(54, &fields::available_balance(wire));
        }
        reply.code(stored.code.0)
    }

    // ------------------------------------------------------------------ 0400 / 0420

    async fn reversal(&self, request: &MessageView, exponent: AmountExponent) -> Option<Message> {
        let reply = Reply::new(request, &REVERSAL_ECHO)?;
        if !REVERSAL_MANDATORY.iter().all(|&n| request.has(n)) {
            return Some(reply.code(code::FORMAT_ERROR));
        }
        let parsed = (|| {
            let original = OriginalData::parse(&request.original_data_elements()?);
            let terminal = TerminalId::new(text(&request.terminal_id()?)).ok()?;
            let key = PurchaseKey {
                terminal: terminal.clone(),
                stan: Stan::new(text(&original.stan)).ok()?,
                transmitted: TransmissionTime::new(text(&original.transmission)).ok()?,
            };
            Some((
                original,
                terminal,
                key,
                request.pan()?,
                exponent.to_minor(request.amount()?)?,
            ))
        })();
        let Some((original, terminal, key, pan, amount_minor)) = parsed else {
            return Some(reply.code(code::FORMAT_ERROR));
        };
        // §6 orders 4-5 before 7.
        let merchant = request.merchant_id()?;
        if let Err(code) = self.check_terminal(&terminal, Some(&merchant)).await {
            return Some(reply.code(code));
        }
        if &original.mti != b"0200" {
            // Only purchases are reversible in version 1.
            return Some(reply.code(code::INVALID_TRANSACTION));
        }
        let card = match tokio::time::timeout(
            REGISTRY_READ_TIMEOUT,
            self.ledger
                .registry_cache()
                .card_by_pan_shared(&ledger_pan(&pan)),
        )
        .await
        {
            Ok(Ok(card)) => card.map(|c| c.card_id),
            _ => return Some(reply.code(code::UNAVAILABLE)),
        };
        let reversal = ReversalRequest {
            original: key,
            card,
            amount: Money::from_minor(i64::try_from(amount_minor).unwrap_or(i64::MAX)),
            at_unix_seconds: now_unix_seconds(),
        };
        Some(match self.ledger.reverse_purchase(reversal).await {
            Ok(outcome) => reply.code(outcome.response_code().0),
            Err(error) => reply.code(ledger_code(&error)),
        })
    }

    // ------------------------------------------------------------------ 0500

    async fn batch_close(
        &self,
        request: &MessageView,
        exponent: AmountExponent,
    ) -> Option<Message> {
        let mut reply = Reply::new(request, &BATCH_ECHO)?;
        if !BATCH_MANDATORY.iter().all(|&n| request.has(n)) {
            return Some(reply.code(code::FORMAT_ERROR));
        }
        let parsed = (|| {
            let terminal = TerminalId::new(text(&request.terminal_id()?)).ok()?;
            let batch_number = request.text(60)?;
            if batch_number.len() != 6 || !batch_number.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let totals = Totals::parse(request.text(63)?)?;
            Some((terminal, text(batch_number), totals))
        })();
        let Some((terminal, batch_number, totals)) = parsed else {
            return Some(reply.code(code::FORMAT_ERROR));
        };
        // §6 orders 4-5 before 7.
        if let Err(code) = self
            .check_terminal(&terminal, Some(&request.merchant_id()?))
            .await
        {
            return Some(reply.code(code));
        }
        if request.processing_code()? != *b"920000" {
            return Some(reply.code(code::INVALID_TRANSACTION));
        }
        let money = |wire: u64| {
            exponent
                .to_minor(wire)
                .and_then(|m| i64::try_from(m).ok())
                .map(Money::from_minor)
        };
        let count = |n: u64| u32::try_from(n).ok();
        let terminal_totals = match (
            count(totals.sales_count),
            money(totals.sales_amount_minor),
            count(totals.reversal_count),
            money(totals.reversal_amount_minor),
        ) {
            (
                Some(sales_count),
                Some(sales_amount),
                Some(reversal_count),
                Some(reversal_amount),
            ) => BatchTotals {
                sales_count,
                sales_amount,
                reversal_count,
                reversal_amount,
            },
            _ => return Some(reply.code(code::FORMAT_ERROR)),
        };
        let close = BatchCloseRequest {
            terminal,
            batch_number,
            terminal_totals,
            at_unix_seconds: now_unix_seconds(),
        };
        Some(match self.ledger.close_batch(close).await {
            Ok(outcome) if outcome.matched => reply.code(code::APPROVED),
            Ok(outcome) => {
                let ours = outcome.batch.switch_totals;
                let wire = |m: Money| exponent.to_wire(u64::try_from(m.minor()).unwrap_or(0));
                let totals = Totals {
                    sales_count: u64::from(ours.sales_count),
                    sales_amount_minor: wire(ours.sales_amount),
                    reversal_count: u64::from(ours.reversal_count),
                    reversal_amount_minor: wire(ours.reversal_amount),
                };
                let _ = reply.message.set(63, &totals.encode());
                reply.code(code::RECONCILE_ERROR)
            }
            Err(error) => reply.code(ledger_code(&error)),
        })
    }
}

/// The DE39 for a ledger error (§6: `91` and `96` can happen at any step).
fn ledger_code(error: &LedgerError) -> [u8; 2] {
    match error {
        LedgerError::Conflict(_) => code::DUPLICATE_CONFLICT,
        LedgerError::Unavailable(_) => code::UNAVAILABLE,
        LedgerError::Invalid(_) => code::FORMAT_ERROR,
        LedgerError::NotFound(_) | LedgerError::Refused(_) | LedgerError::Internal(_) => {
            tracing::error!(%error, "ledger error on the authorization path");
            code::SYSTEM_ERROR
        }
    }
}

/// The ledger keeps PANs in its own serializable type; the codec's `Pan` is the one that
/// reaches logs. Both mask every printed form.
fn ledger_pan(pan: &Pan) -> ssn_ledger::Pan {
    ssn_ledger::Pan(pan.reveal().to_string())
}
