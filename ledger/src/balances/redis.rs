//! The Redis balance store. Each card lives in one hash slot: `PREFIX{card:ID}` (a hash with the
//! generation `e`, the pocket order `o`, the day `d` and count `n`, and one `b:PROGRAM` field per
//! pocket) and `PREFIX{card:ID}:x` (a hash of transfer id → what that transfer did to the card).
//! The `{card:ID}` hash tag puts both keys in one slot, so one Lua script can check and debit
//! every pocket it needs, or none, and record the decision, atomically even on a cluster.
//!
//! Fencing: a ledger that opens on Redis with its own journal (one data directory, one
//! process) starts a new generation (`INCR PREFIX:generation`) and rebuilds the cards from its
//! journal stamped with it. Scripts carry the caller's generation and refuse a card stamped
//! with another one, and a rebuild never overwrites a card stamped with its own or a newer
//! generation. So a stale process, or a rebuild from an older journal view, cannot overwrite
//! newer state: it gets [`StoreError::Fenced`] instead.
//!
//! Several switch nodes on one Scylla keyspace share its prefix and one generation
//! ([`RedisConfig::shared_generation`]): a node that finds a generation adopts it and rebuilds
//! nothing (the nodes already running keep the cards current with every debit and credit they
//! make), and only a node that finds none starts one and rebuilds. A new generation on a live
//! prefix is an operator's act ([`BalanceStore::begin_generation`] through
//! `Ledger::rebuild_cache`), and it fences every node already running, exactly as above, so
//! none of them debits a cache rebuilt without its writes. A generation started on an empty
//! prefix is the Redis server's clock in milliseconds, not 1: after Redis lost its data (and
//! the generation key with it), the new generation is still newer than any a node still
//! running holds, so that node is fenced rather than debiting the rebuilt cards.
//!
//! Every script is safe to retry: a decision, credit or drain is stored under its transfer id in
//! the same atomic step, and a repeat returns what is stored. That matters because
//! `ConnectionManager` fails the command in flight when it reconnects, so the caller cannot know
//! whether it ran.
//!
//! Lua numbers are doubles and `tostring` switches to exponent notation at 10^14, so amounts are
//! capped at [`REDIS_AMOUNT_MINOR_MAX`]: 10^12 rupiah per pocket, far above the Rp 20 juta a
//! registered e-money card may hold.

use super::{
    BalanceStore, CardSnapshot, DebitOutcome, DebitRequest, PocketBalance, PocketCredit,
    SnapshotTransfer, StoreError, StoredDebit, sort_pockets,
};
use crate::day::Day;
use crate::ids::{AuthorizationId, CardId, ProgramCode, Rrn, TransferId};
use crate::money::Money;
use crate::record::{AuthResponse, PocketAmount, ResponseCode};
use async_trait::async_trait;
use futures::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, IntoConnectionInfo, Script};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Largest amount (minor units) the Redis store accepts in a pocket or a debit.
pub const REDIS_AMOUNT_MINOR_MAX: i64 = 100_000_000_000_000 - 1;
/// Most credit or rebuild scripts in flight at once, so a disbursement to every card neither
/// floods the connection nor waits for each card in turn.
pub const REDIS_SCRIPTS_IN_FLIGHT_MAX: usize = 256;

/// How to reach Redis.
#[derive(Clone, Debug)]
pub struct RedisConfig {
    /// `redis://host:port/db`.
    pub url: String,
    /// Prepended to every key, so several ledgers (or test runs) can share one server.
    pub key_prefix: String,
    /// Most time one command may take before the switch answers `91`.
    pub response_timeout_ms: u64,
    /// Most time one connection attempt may take.
    pub connection_timeout_ms: u64,
    /// Several ledgers (switch nodes on one Scylla keyspace) use this prefix at the same
    /// time: opening adopts the generation it finds instead of starting one (see the module
    /// docs). False for a ledger with its own journal, which starts one at every open.
    pub shared_generation: bool,
}

impl RedisConfig {
    /// Defaults for a Redis on the same network: 1 s per command, 2 s to connect.
    pub fn new(url: impl Into<String>, key_prefix: impl Into<String>) -> RedisConfig {
        RedisConfig {
            url: url.into(),
            key_prefix: key_prefix.into(),
            response_timeout_ms: 1_000,
            connection_timeout_ms: 2_000,
            shared_generation: false,
        }
    }
}

/// Checks the generation, refuses an attempt that was voided (`v:ID:ATTEMPT` in the
/// transfers hash), returns a stored decision, or decides and debits, storing the decision
/// with the attempt that made it (its last field).
/// KEYS: card hash, transfers hash.
/// ARGV: generation, transfer id, amount, today, daily max, rrn, authorization id,
/// allowed programs as `,A,B,`, attempt.
const DEBIT_SCRIPT: &str = r#"
local e = redis.call('HGET', KEYS[1], 'e')
if e ~= ARGV[1] then return {'F', e or ''} end
if redis.call('HEXISTS', KEYS[2], 'v:' .. ARGV[2] .. ':' .. ARGV[9]) == 1 then return {'V', ''} end
local prev = redis.call('HGET', KEYS[2], ARGV[2])
if prev then return {'P', prev} end
local today = tonumber(ARGV[4])
local amount = tonumber(ARGV[3])
local count = 0
if redis.call('HGET', KEYS[1], 'd') == ARGV[4] then count = tonumber(redis.call('HGET', KEYS[1], 'n')) end
local spendable, available, usable = 0, 0, {}
for prog, exp in string.gmatch(redis.call('HGET', KEYS[1], 'o'), '([^:;]+):(%-?%d+)') do
  if tonumber(exp) >= today then
    local bal = tonumber(redis.call('HGET', KEYS[1], 'b:' .. prog) or '0')
    spendable = spendable + bal
    if string.find(ARGV[8], ',' .. prog .. ',', 1, true) then
      available = available + bal
      usable[#usable + 1] = {prog, bal}
    end
  end
end
local rec
if count >= tonumber(ARGV[5]) then
  rec = 'D|65|' .. ARGV[6] .. '|||' .. '|' .. ARGV[4] .. '|' .. ARGV[9]
elseif available < amount then
  rec = 'D|51|' .. ARGV[6] .. '||' .. available .. '||' .. ARGV[4] .. '|' .. ARGV[9]
else
  local left, legs = amount, {}
  for _, p in ipairs(usable) do
    if left == 0 then break end
    local take = math.min(left, p[2])
    if take > 0 then
      redis.call('HINCRBY', KEYS[1], 'b:' .. p[1], -take)
      legs[#legs + 1] = p[1] .. ':' .. take
      left = left - take
    end
  end
  redis.call('HSET', KEYS[1], 'd', ARGV[4], 'n', count + 1)
  rec = 'D|00|' .. ARGV[6] .. '|' .. ARGV[7] .. '|' .. (spendable - amount) .. '|' .. table.concat(legs, ';') .. '|' .. ARGV[4] .. '|' .. ARGV[9]
end
redis.call('HSET', KEYS[2], ARGV[2], rec)
return {'N', rec}
"#;

/// Voids one debit attempt: marks it (`v:ID:ATTEMPT`) so that its script, arriving later,
/// does nothing; and when the decision stored under the id is that attempt's (its last
/// field), undoes it (pockets back, count down, decision removed). A decision another attempt
/// made, or one rebuilt from the journal (no attempt field), stays.
/// KEYS: card hash, transfers hash. ARGV: generation, transfer id, attempt.
const VOID_SCRIPT: &str = r#"
local e = redis.call('HGET', KEYS[1], 'e')
if e ~= ARGV[1] then return {'F', e or ''} end
redis.call('HSET', KEYS[2], 'v:' .. ARGV[2] .. ':' .. ARGV[3], '1')
local rec = redis.call('HGET', KEYS[2], ARGV[2])
if not rec then return {'OK'} end
local kind, code, rrn, auth, bal, legs, day, attempt = string.match(rec, '^(%a)|(%w*)|(%w*)|(%w*)|(%-?%d*)|([^|]*)|(%-?%d*)|(%w+)$')
if kind ~= 'D' or attempt ~= ARGV[3] then return {'OK'} end
redis.call('HDEL', KEYS[2], ARGV[2])
if code ~= '00' then return {'OK'} end
for prog, amt in string.gmatch(legs, '([^:;]+):(%d+)') do
  redis.call('HINCRBY', KEYS[1], 'b:' .. prog, amt)
end
if redis.call('HGET', KEYS[1], 'd') == day then redis.call('HINCRBY', KEYS[1], 'n', -1) end
return {'OK'}
"#;

/// Credits pockets once per transfer id. A card not cached yet answers `M` so the caller
/// rebuilds it from the journal (which already holds this credit) instead of creating a
/// partial card here.
/// KEYS: card hash, transfers hash. ARGV: generation, transfer id, then (program, expiry, amount)*.
const CREDIT_SCRIPT: &str = r#"
local e = redis.call('HGET', KEYS[1], 'e')
if e ~= ARGV[1] then return {'F', e or ''} end
if redis.call('HEXISTS', KEYS[2], ARGV[2]) == 1 then return {'P'} end
local order = {}
for prog, exp in string.gmatch(redis.call('HGET', KEYS[1], 'o'), '([^:;]+):(%-?%d+)') do
  order[#order + 1] = {prog, tonumber(exp)}
end
for i = 3, #ARGV, 3 do
  local prog = ARGV[i]
  if redis.call('HEXISTS', KEYS[1], 'b:' .. prog) == 0 then order[#order + 1] = {prog, tonumber(ARGV[i + 1])} end
  redis.call('HINCRBY', KEYS[1], 'b:' .. prog, ARGV[i + 2])
end
table.sort(order, function(a, b) if a[2] ~= b[2] then return a[2] < b[2] end return a[1] < b[1] end)
local parts = {}
for _, p in ipairs(order) do parts[#parts + 1] = p[1] .. ':' .. p[2] end
redis.call('HSET', KEYS[1], 'o', table.concat(parts, ';'))
redis.call('HSET', KEYS[2], ARGV[2], 'C')
return {'N'}
"#;

/// Takes every pocket (or one program's, ARGV[3] not empty) to zero once per transfer id and
/// returns what it took. KEYS: card hash, transfers hash. ARGV: generation, transfer id,
/// program or ''.
const DRAIN_SCRIPT: &str = r#"
local e = redis.call('HGET', KEYS[1], 'e')
if e ~= ARGV[1] then return {'F', e or ''} end
local prev = redis.call('HGET', KEYS[2], ARGV[2])
if prev then return {'P', prev} end
local moved = {}
for prog, exp in string.gmatch(redis.call('HGET', KEYS[1], 'o'), '([^:;]+):(%-?%d+)') do
  local bal = tonumber(redis.call('HGET', KEYS[1], 'b:' .. prog) or '0')
  if bal > 0 and (ARGV[3] == '' or ARGV[3] == prog) then
    redis.call('HSET', KEYS[1], 'b:' .. prog, 0)
    moved[#moved + 1] = prog .. ':' .. bal
  end
end
local rec = 'R|' .. table.concat(moved, ';')
redis.call('HSET', KEYS[2], ARGV[2], rec)
return {'N', rec}
"#;

/// The prefix's generation: the one stored, or a new one (the server's clock in milliseconds)
/// when none is. KEYS: generation key. Returns {generation, 1 if started here else 0}.
const JOIN_GENERATION_SCRIPT: &str = r#"
local g = redis.call('GET', KEYS[1])
if g then return {g, 0} end
local t = redis.call('TIME')
g = t[1] .. string.format('%03d', math.floor(tonumber(t[2]) / 1000))
redis.call('SET', KEYS[1], g)
return {g, 1}
"#;

/// Replaces a card's cache entry unless a generation as new as ours already holds it.
/// KEYS: card hash, transfers hash. ARGV: generation, order, day, count, pocket count k,
/// k × (program, balance), then (transfer id, record)*.
const REBUILD_SCRIPT: &str = r#"
local e = redis.call('HGET', KEYS[1], 'e')
if e and tonumber(e) >= tonumber(ARGV[1]) then return 0 end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('HSET', KEYS[1], 'e', ARGV[1], 'o', ARGV[2], 'd', ARGV[3], 'n', ARGV[4])
local k = tonumber(ARGV[5])
local i = 6
for _ = 1, k do
  redis.call('HSET', KEYS[1], 'b:' .. ARGV[i], ARGV[i + 1])
  i = i + 2
end
while i <= #ARGV do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
  i = i + 2
end
return 1
"#;

/// The debit script's source, for benchmarking it with `redis-benchmark` (EVALSHA).
pub fn redis_debit_script() -> &'static str {
    DEBIT_SCRIPT
}

/// The Redis balance store.
pub struct RedisBalances {
    /// Reconnecting, multiplexed connection; cloned per call (cheap).
    connection: ConnectionManager,
    /// Key prefix.
    prefix: String,
    /// This store's generation, set by `begin_generation` or `join_generation`.
    generation: std::sync::atomic::AtomicU64,
    /// See [`RedisConfig::shared_generation`].
    shared_generation: bool,
    /// The scripts, loaded on first use and reloaded on `NOSCRIPT`.
    scripts: Scripts,
    /// Debits waiting to be pipelined, bounded by REDIS_DEBIT_QUEUE_MAX.
    debits: tokio::sync::mpsc::Sender<PendingDebit>,
}

/// Most debit scripts sent in one pipeline: one write and one read for all of them, which is
/// what lets the client keep up with the server (one syscall per script costs more than the
/// script).
pub const REDIS_PIPELINE_COMMANDS_MAX: usize = 256;
/// Pipelines in flight at once, so the server has the next one while the client parses the
/// last.
pub const REDIS_PIPELINES_IN_FLIGHT_MAX: usize = 4;
/// Debits waiting for a pipeline. When full, a debit fails as unavailable (`91`) rather than
/// queue without bound.
pub const REDIS_DEBIT_QUEUE_MAX: usize = 16_384;

/// A debit script call waiting for its pipeline, and who to tell.
type PendingDebit = (
    redis::Cmd,
    tokio::sync::oneshot::Sender<Result<Vec<String>, StoreError>>,
);

/// Gathers waiting debits into pipelines, like the journal gathers records into batches.
async fn pipeline_debits(
    mut receiver: tokio::sync::mpsc::Receiver<PendingDebit>,
    connection: ConnectionManager,
    script: Arc<Script>,
) {
    let permits = Arc::new(tokio::sync::Semaphore::new(REDIS_PIPELINES_IN_FLIGHT_MAX));
    while let Some(first) = receiver.recv().await {
        let mut batch = vec![first];
        while batch.len() < REDIS_PIPELINE_COMMANDS_MAX {
            match receiver.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
            return;
        };
        let (connection, script) = (connection.clone(), Arc::clone(&script));
        tokio::spawn(async move {
            send_pipeline(batch, connection, &script).await;
            drop(permit);
        });
    }
}

async fn send_pipeline(
    batch: Vec<PendingDebit>,
    mut connection: ConnectionManager,
    script: &Script,
) {
    let mut pipe = redis::pipe();
    let mut replies = Vec::with_capacity(batch.len());
    for (command, reply) in batch {
        pipe.add_command(command);
        replies.push(reply);
    }
    let mut result: redis::RedisResult<Vec<Vec<String>>> = pipe.query_async(&mut connection).await;
    if let Err(error) = &result
        && error.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript)
    {
        // The server lost its script cache (restart, failover): load it and send the whole
        // pipeline again. Safe, because a script that did run stored its decision under the
        // transfer id and returns it again instead of debiting twice.
        let loaded: redis::RedisResult<String> =
            script.prepare_invoke().load_async(&mut connection).await;
        result = match loaded {
            Ok(_) => pipe.query_async(&mut connection).await,
            Err(error) => Err(error),
        };
    }
    match result {
        Ok(outcomes) if outcomes.len() == replies.len() => {
            for (reply, outcome) in replies.into_iter().zip(outcomes) {
                let _ = reply.send(Ok(outcome));
            }
        }
        Ok(_) => {
            for reply in replies {
                let _ = reply.send(Err(StoreError::Unavailable(
                    "pipeline answered a different count".into(),
                )));
            }
        }
        Err(error) => {
            for reply in replies {
                let _ = reply.send(Err(unavailable(error.clone())));
            }
        }
    }
}

struct Scripts {
    debit: Script,
    void: Script,
    credit: Script,
    drain: Script,
    rebuild: Script,
}

impl fmt::Debug for RedisBalances {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBalances")
            .field("prefix", &self.prefix)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

fn unavailable(error: redis::RedisError) -> StoreError {
    StoreError::Unavailable(error.to_string())
}

impl RedisBalances {
    /// Connects with TCP_NODELAY on (Redis traffic is request-response: Nagle only adds delay).
    pub async fn connect(config: &RedisConfig) -> Result<RedisBalances, StoreError> {
        let info = config
            .url
            .as_str()
            .into_connection_info()
            .map_err(unavailable)?
            .set_tcp_settings(redis::io::tcp::TcpSettings::default().set_nodelay(true));
        let client = redis::Client::open(info).map_err(unavailable)?;
        let manager_config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(Duration::from_millis(config.response_timeout_ms)))
            .set_connection_timeout(Some(Duration::from_millis(config.connection_timeout_ms)))
            .set_number_of_retries(2);
        let connection = client
            .get_connection_manager_with_config(manager_config)
            .await
            .map_err(unavailable)?;
        let scripts = Scripts {
            debit: Script::new(DEBIT_SCRIPT),
            void: Script::new(VOID_SCRIPT),
            credit: Script::new(CREDIT_SCRIPT),
            drain: Script::new(DRAIN_SCRIPT),
            rebuild: Script::new(REBUILD_SCRIPT),
        };
        let (debits, pending) = tokio::sync::mpsc::channel(REDIS_DEBIT_QUEUE_MAX);
        tokio::spawn(pipeline_debits(
            pending,
            connection.clone(),
            Arc::new(Script::new(DEBIT_SCRIPT)),
        ));
        Ok(RedisBalances {
            connection,
            prefix: config.key_prefix.clone(),
            generation: std::sync::atomic::AtomicU64::new(0),
            shared_generation: config.shared_generation,
            scripts,
            debits,
        })
    }

    fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    fn keys(&self, card: CardId) -> (String, String) {
        let card_key = format!("{}{{card:{}}}", self.prefix, card.0);
        let transfers_key = format!("{card_key}:x");
        (card_key, transfers_key)
    }

    fn fenced(&self, card: CardId, found: &str) -> StoreError {
        StoreError::Fenced {
            card,
            found: found.parse().ok(),
            ours: self.generation(),
        }
    }

    /// Runs a script, treating a fenced card cached by an older generation (or not at all) by
    /// rebuilding it from `snapshot_for` and retrying once.
    async fn run(
        &self,
        script: &Script,
        card: CardId,
        args: &[String],
    ) -> Result<Vec<String>, StoreError> {
        let (card_key, transfers_key) = self.keys(card);
        let mut invocation = script.key(&card_key);
        invocation.key(&transfers_key);
        for arg in args {
            invocation.arg(arg);
        }
        let mut connection = self.connection.clone();
        invocation
            .invoke_async(&mut connection)
            .await
            .map_err(unavailable)
    }

    /// Sends a debit script through the pipeline task.
    async fn pipelined_debit(
        &self,
        card: CardId,
        args: &[String],
    ) -> Result<Vec<String>, StoreError> {
        let (card_key, transfers_key) = self.keys(card);
        let mut command = redis::cmd("EVALSHA");
        command
            .arg(self.scripts.debit.get_hash())
            .arg(2)
            .arg(&card_key)
            .arg(&transfers_key);
        for arg in args {
            command.arg(arg);
        }
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.debits
            .try_send((command, reply))
            .map_err(|_| StoreError::Unavailable("debit queue is full".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("debit pipeline stopped".into()))?
    }

    async fn rebuild_one(&self, snapshot: &CardSnapshot) -> Result<(), StoreError> {
        let mut pockets = snapshot.pockets.clone();
        sort_pockets(&mut pockets);
        let order: Vec<String> = pockets
            .iter()
            .map(|p| format!("{}:{}", p.program, p.expires.0))
            .collect();
        let mut args = vec![
            self.generation().to_string(),
            order.join(";"),
            snapshot.day.0.to_string(),
            snapshot.purchases_today.to_string(),
            pockets.len().to_string(),
        ];
        for pocket in &pockets {
            args.push(pocket.program.to_string());
            args.push(checked_amount(pocket.balance)?.to_string());
        }
        for (id, transfer) in &snapshot.transfers {
            args.push(id.to_hex());
            args.push(encode_transfer(transfer));
        }
        let (card_key, transfers_key) = self.keys(snapshot.card);
        let mut invocation = self.scripts.rebuild.key(&card_key);
        invocation.key(&transfers_key);
        for arg in &args {
            invocation.arg(arg);
        }
        let mut connection = self.connection.clone();
        let _written: i64 = invocation
            .invoke_async(&mut connection)
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

fn checked_amount(amount: Money) -> Result<i64, StoreError> {
    if amount.minor() < 0 || amount.minor() > REDIS_AMOUNT_MINOR_MAX {
        return Err(StoreError::AmountOutOfRange);
    }
    Ok(amount.minor())
}

fn encode_legs(legs: &[PocketAmount]) -> String {
    let parts: Vec<String> = legs
        .iter()
        .map(|leg| format!("{}:{}", leg.program, leg.amount.minor()))
        .collect();
    parts.join(";")
}

fn encode_transfer(transfer: &SnapshotTransfer) -> String {
    match transfer {
        SnapshotTransfer::Credit => "C".to_string(),
        SnapshotTransfer::Drain(moved) => format!("R|{}", encode_legs(moved)),
        SnapshotTransfer::Debit(debit) => {
            let response = &debit.response;
            format!(
                "D|{}|{}|{}|{}|{}|{}",
                response.code.as_str(),
                response.rrn,
                response
                    .authorization_id
                    .as_ref()
                    .map_or("", |a| a.as_str()),
                response
                    .balance_after
                    .map_or(String::new(), |b| b.minor().to_string()),
                encode_legs(&debit.legs),
                debit.day.0
            )
        }
    }
}

fn decode_legs(text: &str) -> Option<Vec<PocketAmount>> {
    if text.is_empty() {
        return Some(Vec::new());
    }
    text.split(';')
        .map(|part| {
            let (program, amount) = part.split_once(':')?;
            Some(PocketAmount {
                program: ProgramCode::new(program).ok()?,
                amount: Money::from_minor(amount.parse().ok()?),
            })
        })
        .collect()
}

fn decode_debit(text: &str) -> Option<StoredDebit> {
    let fields: Vec<&str> = text.split('|').collect();
    // A decision the debit script made ends with the attempt that made it; one rebuilt from
    // the journal does not.
    let ([kind, code, rrn, authorization_id, balance, legs, day]
    | [kind, code, rrn, authorization_id, balance, legs, day, _]) = fields.as_slice()
    else {
        return None;
    };
    if *kind != "D" {
        return None;
    }
    Some(StoredDebit {
        response: AuthResponse {
            code: ResponseCode::new(code)?,
            rrn: Rrn::new(*rrn).ok()?,
            authorization_id: if authorization_id.is_empty() {
                None
            } else {
                Some(AuthorizationId::new(*authorization_id).ok()?)
            },
            balance_after: if balance.is_empty() {
                None
            } else {
                Some(Money::from_minor(balance.parse().ok()?))
            },
        },
        legs: decode_legs(legs)?,
        day: Day(day.parse().ok()?),
    })
}

#[async_trait]
impl BalanceStore for RedisBalances {
    async fn debit(&self, request: &DebitRequest<'_>) -> Result<DebitOutcome, StoreError> {
        let mut allowed = String::from(",");
        for program in request.allowed {
            allowed.push_str(program.as_str());
            allowed.push(',');
        }
        let args = [
            self.generation().to_string(),
            request.id.to_hex(),
            checked_amount(request.amount)?.to_string(),
            request.today.0.to_string(),
            request.daily_max.to_string(),
            request.rrn.to_string(),
            request.authorization_id.to_string(),
            allowed,
            request.attempt.to_string(),
        ];
        let reply = self.pipelined_debit(request.card, &args).await?;
        match reply.as_slice() {
            [tag, found] if tag == "F" => Err(self.fenced(request.card, found)),
            [tag, _] if tag == "V" => Err(StoreError::Unavailable(
                "this debit attempt was voided before it reached the store".into(),
            )),
            [tag, record] if tag == "P" || tag == "N" => {
                let debit = decode_debit(record).ok_or(StoreError::Malformed(request.card))?;
                Ok(DebitOutcome {
                    debit,
                    replayed: tag == "P",
                })
            }
            _ => Err(StoreError::Malformed(request.card)),
        }
    }

    async fn void_debit(
        &self,
        card: CardId,
        id: TransferId,
        attempt: u64,
    ) -> Result<(), StoreError> {
        let reply = self
            .run(
                &self.scripts.void,
                card,
                &[
                    self.generation().to_string(),
                    id.to_hex(),
                    attempt.to_string(),
                ],
            )
            .await?;
        match reply.as_slice() {
            [tag, found] if tag == "F" => Err(self.fenced(card, found)),
            _ => Ok(()),
        }
    }

    async fn credit(
        &self,
        id: TransferId,
        credits: &[PocketCredit],
    ) -> Result<Vec<CardId>, StoreError> {
        let mut by_card: HashMap<CardId, Vec<String>> = HashMap::new();
        for credit in credits {
            let args = by_card
                .entry(credit.card)
                .or_insert_with(|| vec![self.generation().to_string(), id.to_hex()]);
            args.push(credit.program.to_string());
            args.push(credit.expires.0.to_string());
            args.push(checked_amount(credit.amount)?.to_string());
        }
        let results: Vec<Result<Option<CardId>, StoreError>> = futures::stream::iter(by_card)
            .map(|(card, args)| async move {
                let reply = self.run(&self.scripts.credit, card, &args).await?;
                match reply.as_slice() {
                    [tag, found] if tag == "F" => match self.fenced(card, found) {
                        StoreError::Fenced { found, ours, .. }
                            if found.is_none_or(|found| found < ours) =>
                        {
                            Ok(Some(card))
                        }
                        newer => Err(newer),
                    },
                    _ => Ok(None),
                }
            })
            .buffer_unordered(REDIS_SCRIPTS_IN_FLIGHT_MAX)
            .collect()
            .await;
        let mut not_ours = Vec::new();
        for result in results {
            if let Some(card) = result? {
                not_ours.push(card);
            }
        }
        Ok(not_ours)
    }

    async fn drain(
        &self,
        card: CardId,
        id: TransferId,
        program: Option<&ProgramCode>,
    ) -> Result<Vec<PocketAmount>, StoreError> {
        let reply = self
            .run(
                &self.scripts.drain,
                card,
                &[
                    self.generation().to_string(),
                    id.to_hex(),
                    program.map_or_else(String::new, |p| p.as_str().to_string()),
                ],
            )
            .await?;
        match reply.as_slice() {
            [tag, found] if tag == "F" => Err(self.fenced(card, found)),
            [_, record] => record
                .strip_prefix("R|")
                .and_then(decode_legs)
                .ok_or(StoreError::Malformed(card)),
            _ => Err(StoreError::Malformed(card)),
        }
    }

    async fn pockets(&self, card: CardId) -> Result<Vec<PocketBalance>, StoreError> {
        let (card_key, _) = self.keys(card);
        let mut connection = self.connection.clone();
        let fields: HashMap<String, String> =
            connection.hgetall(&card_key).await.map_err(unavailable)?;
        // A card not stamped with this process's generation (a Redis restarted empty, a
        // flush, an older rebuild) is not known here: fenced, so the ledger rebuilds it from
        // the journal rather than read it as empty.
        let stamp = fields.get("e").map_or("", String::as_str);
        if stamp.parse::<u64>().ok() != Some(self.generation()) {
            return Err(self.fenced(card, stamp));
        }
        let Some(order) = fields.get("o") else {
            return Ok(Vec::new());
        };
        let mut pockets = Vec::new();
        for part in order.split(';').filter(|p| !p.is_empty()) {
            let parsed = part.split_once(':').and_then(|(program, expires)| {
                let balance = fields.get(&format!("b:{program}"))?.parse().ok()?;
                Some(PocketBalance {
                    program: ProgramCode::new(program).ok()?,
                    expires: Day(expires.parse().ok()?),
                    balance: Money::from_minor(balance),
                })
            });
            pockets.push(parsed.ok_or(StoreError::Malformed(card))?);
        }
        Ok(pockets)
    }

    async fn rebuild(&self, cards: &[CardSnapshot]) -> Result<(), StoreError> {
        let rebuilds: Vec<_> = cards
            .iter()
            .map(|snapshot| self.rebuild_one(snapshot))
            .collect();
        let results: Vec<Result<(), StoreError>> = futures::stream::iter(rebuilds)
            .buffer_unordered(REDIS_SCRIPTS_IN_FLIGHT_MAX)
            .collect()
            .await;
        results.into_iter().collect()
    }

    async fn begin_generation(&self) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        let generation: u64 = connection
            .incr(format!("{}generation", self.prefix), 1)
            .await
            .map_err(unavailable)?;
        self.generation
            .store(generation, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    async fn join_generation(&self) -> Result<bool, StoreError> {
        if !self.shared_generation {
            self.begin_generation().await?;
            return Ok(true);
        }
        let mut connection = self.connection.clone();
        let (generation, started): (String, i64) = Script::new(JOIN_GENERATION_SCRIPT)
            .key(format!("{}generation", self.prefix))
            .invoke_async(&mut connection)
            .await
            .map_err(unavailable)?;
        let generation: u64 = generation.parse().map_err(|_| {
            StoreError::Unavailable(format!("generation {generation:?} is not a number"))
        })?;
        self.generation
            .store(generation, std::sync::atomic::Ordering::Release);
        Ok(started == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_debits_round_trip_through_their_text_form() {
        let debit = StoredDebit {
            response: AuthResponse {
                code: ResponseCode::APPROVED,
                rrn: Rrn::new("000000000001").unwrap(),
                authorization_id: Some(AuthorizationId::new("A1B2C3").unwrap()),
                balance_after: Some(Money::from_minor(12_345)),
            },
            legs: vec![PocketAmount {
                program: ProgramCode::new("P1").unwrap(),
                amount: Money::from_minor(5),
            }],
            day: Day(20_000),
        };
        let text = encode_transfer(&SnapshotTransfer::Debit(debit.clone()));
        assert_eq!(decode_debit(&text), Some(debit.clone()));
        assert_eq!(
            decode_debit("D|51|000000000001||||20000").map(|d| d.legs.len()),
            Some(0)
        );
        // As the debit script stores it: with the attempt that decided it.
        assert_eq!(decode_debit(&format!("{text}|1234")), Some(debit));
        assert_eq!(decode_debit(&format!("{text}|1234|5")), None);
    }
}
