//! The usage writer: settles arrive on a channel and are persisted in batches, at least once a
//! second; closing drains everything still queued, so a graceful shutdown loses nothing.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tollgate_core::money::Money;
use tollgate_core::usage::{RequestLog, UsageRow, UsageStore};

use crate::counters::{LineKind, LineValue};

/// How often queued usage is written.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug)]
enum Message {
    Settled { values: Vec<LineValue>, log: Option<RequestLog> },
    Close,
}

/// Sends settled usage to the writer task (never blocks the request).
#[derive(Debug, Clone)]
pub struct UsageWriter {
    tx: mpsc::UnboundedSender<Message>,
}

/// Owns the writer task; `close` drains and stops it.
#[derive(Debug)]
pub struct WriterHandle {
    tx: mpsc::UnboundedSender<Message>,
    task: JoinHandle<()>,
}

impl UsageWriter {
    pub fn spawn(store: Arc<dyn UsageStore>) -> (UsageWriter, WriterHandle) {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(store, rx));
        (UsageWriter { tx: tx.clone() }, WriterHandle { tx, task })
    }

    pub fn record(&self, values: Vec<LineValue>, log: Option<RequestLog>) {
        if self.tx.send(Message::Settled { values, log }).is_err() {
            tracing::error!("usage writer is gone; usage of this request is kept in memory only");
        }
    }
}

impl WriterHandle {
    /// Writes everything queued so far, then stops the task.
    pub async fn close(self) {
        let _ = self.tx.send(Message::Close);
        let _ = self.task.await;
    }
}

#[derive(Default)]
struct Batch {
    lines: HashMap<String, LineValue>,
    logs: Vec<RequestLog>,
}

impl Batch {
    fn add(&mut self, values: Vec<LineValue>, log: Option<RequestLog>) {
        for value in values {
            self.lines.insert(value.line.clone(), value);
        }
        self.logs.extend(log);
    }

    fn is_empty(&self) -> bool {
        self.lines.is_empty() && self.logs.is_empty()
    }
}

async fn run(store: Arc<dyn UsageStore>, mut rx: mpsc::UnboundedReceiver<Message>) {
    let mut batch = Batch::default();
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    loop {
        tokio::select! {
            message = rx.recv() => match message {
                Some(Message::Settled { values, log }) => batch.add(values, log),
                Some(Message::Close) | None => {
                    while let Ok(Message::Settled { values, log }) = rx.try_recv() {
                        batch.add(values, log);
                    }
                    flush(store.as_ref(), &mut batch).await;
                    return;
                }
            },
            _ = tick.tick() => flush(store.as_ref(), &mut batch).await,
        }
    }
}

/// Writes the batch; on failure it stays queued and is retried at the next tick.
async fn flush(store: &dyn UsageStore, batch: &mut Batch) {
    if batch.is_empty() {
        return;
    }
    let rows: Vec<UsageRow> = batch.lines.values().map(row).collect();
    match store.write_usage(&rows, &batch.logs).await {
        Ok(()) => *batch = Batch::default(),
        Err(e) => tracing::error!(error = %e, queued = rows.len(), "usage write failed; will retry"),
    }
}

fn row(value: &LineValue) -> UsageRow {
    let id = value.line.trim_end_matches(":t").trim_end_matches(":r").to_owned();
    match value.kind {
        LineKind::Budget => UsageRow::Budget {
            id,
            used: Money::from_micros(i64::try_from(value.used).unwrap_or(i64::MAX)).unwrap_or(Money::ZERO),
            window_start: value.window_start,
        },
        LineKind::Tokens => UsageRow::Tokens { id, used: value.used, window_start: value.window_start },
        LineKind::Requests => UsageRow::Requests { id, used: value.used, window_start: value.window_start },
    }
}

/// The counter line name of a persisted row.
pub fn line_of(row: &UsageRow) -> (String, LineKind, u64, chrono::DateTime<chrono::Utc>) {
    match row {
        UsageRow::Budget { id, used, window_start } => {
            (id.clone(), LineKind::Budget, u64::try_from(used.micros()).unwrap_or(0), *window_start)
        }
        UsageRow::Tokens { id, used, window_start } => (format!("{id}:t"), LineKind::Tokens, *used, *window_start),
        UsageRow::Requests { id, used, window_start } => (format!("{id}:r"), LineKind::Requests, *used, *window_start),
    }
}
