//! The key-rotation scheduler: a task that runs a rotation pass at start and then every
//! `[keys] rotation_check_secs`, and has the gateway reload its snapshot when this instance
//! rotated a key (other instances pick the new values up at their periodic reload).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tollgate_admin::ChangeHook;
use tollgate_core::services::rotation::RotationService;

/// The running scheduler; `shutdown` stops it after the transaction in progress, if any.
#[derive(Debug)]
pub struct RotationTask {
    stop: Arc<AtomicBool>,
    wake: Arc<Notify>,
    handle: JoinHandle<()>,
}

impl RotationTask {
    pub fn start(service: RotationService, every: Duration, on_rotated: Option<ChangeHook>) -> RotationTask {
        let stop = Arc::new(AtomicBool::new(false));
        let wake = Arc::new(Notify::new());
        let (stopping, woken) = (stop.clone(), wake.clone());
        let handle = tokio::spawn(async move {
            while !stopping.load(Ordering::Relaxed) {
                match service.rotate_due(tollgate_core::clock::now(), &stopping).await {
                    Ok(pass) if pass.keys > 0 => {
                        tracing::info!(keys = pass.keys, rounds = pass.rounds, "rotated managed virtual keys");
                        // A full reload here, and a raised generation so other instances
                        // take the new values at their next look rather than the minute's.
                        if let Some(hook) = &on_rotated {
                            hook(tollgate_core::usage::ChangeScope::Everything).await;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, detail = ?e, "key rotation pass failed; the next pass retries"),
                }
                tokio::select! {
                    () = tokio::time::sleep(every) => {}
                    () = woken.notified() => {}
                }
            }
        });
        RotationTask { stop, wake, handle }
    }

    pub async fn shutdown(self) {
        self.stop.store(true, Ordering::Relaxed);
        self.wake.notify_one();
        if let Err(e) = self.handle.await {
            tracing::warn!(error = %e, "the key-rotation task ended abnormally");
        }
    }
}
