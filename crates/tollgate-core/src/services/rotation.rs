//! Scheduled rotation of managed keys: one pass finds the profiles whose round is due, gives each
//! of their keys a new value (sealed and hashed as at issuance) in a transaction of its own,
//! guarded so that of several instances exactly one rotates a key, then advances the schedule.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::audit::{AuditAction, NewAuditEntry};
use crate::auth::sha256_hex;
use crate::directory::Write;
use crate::error::CoreError;
use crate::ports::{Store, StoreError};
use crate::rotation::{DueKey, DueProfile, KeyRotation, next_after};
use crate::vkeys::{Sealer, generate_value, mask};

/// How the audit trail names the scheduler.
pub const ACTOR: &str = "system:rotation";

/// Keys read per query while working through one profile's round.
const BATCH: u32 = 200;

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RotationPass {
    /// Keys this instance rotated (another instance's rotations are not counted).
    pub keys: usize,
    /// Rounds this instance finished (the profile's schedule moved on).
    pub rounds: usize,
}

#[derive(Clone)]
pub struct RotationService {
    store: Arc<dyn Store>,
    sealer: Sealer,
    grace: chrono::Duration,
}

impl std::fmt::Debug for RotationService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RotationService").field("grace", &self.grace).finish_non_exhaustive()
    }
}

impl RotationService {
    /// `grace`: how long a replaced value keeps working.
    pub fn new(store: Arc<dyn Store>, sealer: Sealer, grace: std::time::Duration) -> Self {
        let grace = chrono::Duration::from_std(grace).unwrap_or_else(|_| chrono::Duration::days(365));
        Self { store, sealer, grace }
    }

    /// Rotates every key whose round is due at `now`. `stop` is checked between keys, so a
    /// shutdown waits for one transaction at most; what is left is done by the next pass.
    pub async fn rotate_due(&self, now: DateTime<Utc>, stop: &AtomicBool) -> Result<RotationPass, CoreError> {
        let mut pass = RotationPass::default();
        for due in self.store.due_profiles(now).await? {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            self.round(&due, now, stop, &mut pass).await?;
        }
        Ok(pass)
    }

    /// Works through one profile's due keys; once none is left, moves its schedule on.
    async fn round(&self, due: &DueProfile, now: DateTime<Utc>, stop: &AtomicBool, pass: &mut RotationPass) -> Result<(), CoreError> {
        loop {
            let keys = self.store.due_keys(due.profile_id, due.next_rotation_at, BATCH).await?;
            if keys.is_empty() {
                let advance = Write::AdvanceRotation {
                    profile_id: due.profile_id,
                    expected_next: due.next_rotation_at,
                    next: next_after(due.next_rotation_at, due.interval, now),
                    finished: crate::clock::now(),
                };
                match self.store.apply(&[advance]).await {
                    Ok(()) => pass.rounds += 1,
                    // Another instance finished the round, or the profile changed or went.
                    Err(StoreError::Stale) => {}
                    Err(e) => return Err(e.into()),
                }
                return Ok(());
            }
            let mut progressed = false;
            for key in &keys {
                if stop.load(Ordering::Relaxed) {
                    return Ok(());
                }
                if self.rotate(due, key).await? {
                    pass.keys += 1;
                    progressed = true;
                }
            }
            if !progressed {
                // Every key of the batch was rotated by another instance meanwhile; it finishes
                // the round, or the next pass does.
                return Ok(());
            }
        }
    }

    /// Gives `key` a new value; false when another instance rotated (or someone deleted) it first.
    async fn rotate(&self, due: &DueProfile, key: &DueKey) -> Result<bool, CoreError> {
        let value = generate_value();
        let now = crate::clock::now();
        let rotation = KeyRotation {
            key_id: key.id.clone(),
            expected_hash: key.value_hash.clone(),
            value_hash: sha256_hex(value.expose()),
            value_sealed: self.sealer.seal(value.expose())?,
            value_masked: mask(value.expose()),
            rotated_at: now,
            previous_value_expires_at: now.checked_add_signed(self.grace).unwrap_or(DateTime::<Utc>::MAX_UTC),
        };
        let metadata = json!({
            "virtual_key_id": key.id,
            "name": key.name,
            "value": rotation.value_masked,
            "rotated_at": now,
            "previous_value_expires_at": rotation.previous_value_expires_at,
            "scheduled_at": due.next_rotation_at,
        });
        let audit = NewAuditEntry {
            profile_id: Some(due.profile_id),
            user_id: Some(key.user_id.clone()),
            actor: ACTOR.to_owned(),
            action: AuditAction::RotateKey,
            previous_values: None,
            new_values: None,
            metadata: Some(metadata.to_string()),
            created_at: now,
        };
        match self.store.apply(&[Write::RotateKey(rotation), Write::Audit(audit)]).await {
            Ok(()) => Ok(true),
            Err(StoreError::Stale) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}
