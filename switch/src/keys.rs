//! The host's keys on a registry that several switch nodes may share.
//!
//! Every key at rest (terminal TMKs and TPKs, the issuer PVK) is wrapped under the master key,
//! so every node on one registry must hold the same master key. The registry records the
//! master key's check value and the PVK, wrapped, when it gets its first keys
//! ([`ssn_ledger::HostKeys`]); from then on a node:
//! - given another master key refuses to start ([`KeyError::WrongMasterKey`]) instead of
//!   answering `96` to every PIN;
//! - given none never generates one (the binary asks [`registry_has_keys`] first);
//! - reads the PVK from the registry, not from a data directory.
//!
//! A registry made before keys were recorded is checked against its terminals' keys: the
//! first node that starts on it with a master key that unwraps them records its check value and
//! the PVK it has (its `DATA_DIR/pvk.key`).

use ssn_hsm::{KeyUsage, SoftHsm, WrappedKey};
use ssn_ledger::{EncryptedKey, HostKeys, Ledger, RegistryError, RegistryOp, RegistryRecord};

/// Why a node cannot use this registry's keys.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The registry's keys are wrapped under another master key.
    #[error(
        "this registry's keys are wrapped under the master key with check value {recorded}, \
         and this node's master key has check value {given}: start every node with the same \
         master key (SSN_MASTER_KEY or --master-key-file, from the first node's \
         DATA_DIR/master.key)"
    )]
    WrongMasterKey {
        /// The check value the registry recorded.
        recorded: String,
        /// This node's.
        given: String,
    },
    /// The registry recorded no keys yet, and its terminals' keys do not unwrap under this
    /// node's master key.
    #[error(
        "terminal {terminal}'s keys in this registry do not unwrap under this node's master key \
         (check value {given}): start it with the master key they were wrapped under"
    )]
    TerminalKeysUnreadable {
        /// A terminal whose TPK did not unwrap.
        terminal: String,
        /// This node's master key's check value.
        given: String,
    },
    /// The PVK (recorded or given) does not unwrap, or is not what the registry recorded.
    #[error("the issuer PVK cannot be used: {0}")]
    Pvk(String),
    /// The registry failed.
    #[error("registry: {0}")]
    Registry(#[from] RegistryError),
}

/// Whether this registry already has keys (recorded, or terminals' wrapped keys): a node on it
/// must be given the master key and must never generate one.
pub async fn registry_has_keys(ledger: &Ledger) -> Result<bool, KeyError> {
    let registry = ledger.registry();
    Ok(registry.host_keys().await?.is_some() || !registry.terminals().await?.is_empty())
}

/// The check value of the master key `hsm` holds, as the registry records it.
fn master_check(hsm: &SoftHsm) -> String {
    hsm.master_check_value().to_string()
}

/// The issuer PVK of this registry, checked against `hsm`'s master key: the recorded one; or,
/// when none is recorded yet, `initial()` (a PVK the bank placed, or a new one), recorded
/// for every node after checking that the terminals' keys unwrap under this master key.
pub async fn host_pvk<E: std::fmt::Display>(
    ledger: &Ledger,
    hsm: &SoftHsm,
    initial: impl FnOnce() -> Result<WrappedKey, E>,
) -> Result<WrappedKey, KeyError> {
    let registry = ledger.registry();
    if let Some(recorded) = registry.host_keys().await? {
        return recorded_pvk(hsm, &recorded);
    }
    let given = master_check(hsm);
    if let Some(terminal) = registry.terminals().await?.first() {
        let unwraps = WrappedKey::from_slice(&terminal.tpk.ciphertext)
            .and_then(|tpk| hsm.check_value(&tpk))
            .is_ok();
        if !unwraps {
            return Err(KeyError::TerminalKeysUnreadable {
                terminal: terminal.terminal_id.to_string(),
                given,
            });
        }
    }
    let pvk = initial().map_err(|e| KeyError::Pvk(e.to_string()))?;
    if pvk.usage() != KeyUsage::Pvk {
        return Err(KeyError::Pvk("the key given is not a PVK".into()));
    }
    let kcv = hsm
        .check_value(&pvk)
        .map_err(|e| KeyError::Pvk(format!("it does not unwrap under this master key: {e}")))?;
    let keys = HostKeys {
        master_key_check: given,
        pvk: EncryptedKey {
            ciphertext: pvk.as_bytes().to_vec(),
            kcv: kcv.to_string(),
        },
    };
    match registry
        .apply(vec![RegistryOp::Insert(RegistryRecord::HostKeys(keys))])
        .await
    {
        Ok(()) => {
            tracing::info!(master_key_check = %master_check(hsm), pvk_check = %kcv,
                "recorded this registry's master key check value and PVK");
            Ok(pvk)
        }
        // Another node recorded its keys first: those are the registry's.
        Err(RegistryError::Conflict(_)) => match registry.host_keys().await? {
            Some(recorded) => recorded_pvk(hsm, &recorded),
            None => Err(KeyError::Registry(RegistryError::Storage(
                "host keys conflict, yet none recorded".into(),
            ))),
        },
        Err(e) => Err(e.into()),
    }
}

/// The recorded PVK, after checking that `hsm` holds the master key it is wrapped under.
fn recorded_pvk(hsm: &SoftHsm, recorded: &HostKeys) -> Result<WrappedKey, KeyError> {
    let given = master_check(hsm);
    if !recorded.master_key_check.eq_ignore_ascii_case(&given) {
        return Err(KeyError::WrongMasterKey {
            recorded: recorded.master_key_check.clone(),
            given,
        });
    }
    let pvk = WrappedKey::from_slice(&recorded.pvk.ciphertext)
        .map_err(|e| KeyError::Pvk(format!("the recorded PVK: {e}")))?;
    let kcv = hsm
        .check_value(&pvk)
        .map_err(|e| KeyError::Pvk(format!("the recorded PVK does not unwrap: {e}")))?;
    if !recorded.pvk.kcv.eq_ignore_ascii_case(&kcv.to_string()) {
        return Err(KeyError::Pvk(format!(
            "the recorded PVK has check value {kcv}, not the {} recorded beside it",
            recorded.pvk.kcv
        )));
    }
    Ok(pvk)
}
