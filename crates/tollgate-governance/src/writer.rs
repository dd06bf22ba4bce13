//! The usage writer: settled usage collects in a shared batch that a task persists twice a second;
//! closing drains everything still pending, so a graceful shutdown loses nothing. In the server the
//! task runs on a thread of its own at a lower priority, so a flush never takes a core from requests.

use hashbrown::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, oneshot};
use tollgate_core::usage::{RequestLog, ToolCallLog, UsageRow, UsageStore};

use crate::counters::{Counters, LineKind, LineValue, row};
use crate::journal::Journal;
use crate::meters::{self, Facts};

/// How often pending usage is written. A flush costs mostly its round trips to the database, not
/// its rows, so flushing less often makes every request cheaper (decision 83); twice a second
/// keeps a crash's loss well under a second and the management API's usage fresh.
pub const FLUSH_EVERY: Duration = Duration::from_millis(500);

/// A batch holding this many request-log lines is written at once rather than at the next tick,
/// so a burst of traffic cannot grow it without bound (about 2 MB of pending lines at most).
pub const FLUSH_AT_LOGS: usize = 4096;

/// Where the writer hands the budget lines of each written batch (their new values), for budget
/// alerts: one message per flush that charged a budget, never per request. Bounded: when the
/// reader falls behind, a flush's lines are dropped with a warning rather than held.
pub type FlushTap = tokio::sync::mpsc::Sender<Vec<LineValue>>;

/// A line of the request log (with what its metrics need beside it), or a row of the tool-call
/// audit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogLine {
    Request(RequestLog, Facts),
    ToolCall(ToolCallLog),
}

/// Settled usage waiting for the next flush, shared between requests and the writer task.
#[derive(Debug, Default)]
struct Batch {
    lines: HashMap<Arc<str>, LineValue>,
    logs: Vec<RequestLog>,
    /// Beside `logs`, one for each.
    facts: Vec<Facts>,
    tool_calls: Vec<ToolCallLog>,
}

impl Batch {
    fn add(&mut self, values: Vec<LineValue>, log: Option<LogLine>) {
        for value in values {
            match self.lines.get_mut(&*value.line) {
                Some(kept) => {
                    if supersedes(&value, kept) {
                        *kept = value;
                    }
                }
                None => {
                    self.lines.insert(value.line.clone(), value);
                }
            }
        }
        match log {
            Some(LogLine::Request(log, facts)) => {
                self.logs.push(log);
                self.facts.push(facts);
            }
            Some(LogLine::ToolCall(call)) => self.tool_calls.push(call),
            None => {}
        }
    }

    fn is_empty(&self) -> bool {
        self.lines.is_empty() && self.logs.is_empty() && self.tool_calls.is_empty()
    }

    /// Empties a written batch for reuse, keeping its capacity (within reason) so the next one
    /// fills without growing its table and list again.
    fn clear(&mut self) {
        self.lines.clear();
        self.logs.clear();
        self.facts.clear();
        self.tool_calls.clear();
        if self.logs.capacity() > 2 * FLUSH_AT_LOGS {
            self.logs = Vec::new();
            self.facts = Vec::new();
        }
    }

    /// Puts back a batch whose write failed, behind anything newer that arrived meanwhile.
    fn restore(&mut self, older: Batch) {
        for (line, value) in older.lines {
            match self.lines.get_mut(&line) {
                Some(kept) if !supersedes(&value, kept) => {}
                Some(kept) => *kept = value,
                None => {
                    self.lines.insert(line, value);
                }
            }
        }
        let newer = std::mem::take(&mut self.logs);
        self.logs = older.logs;
        self.logs.extend(newer);
        let newer = std::mem::take(&mut self.facts);
        self.facts = older.facts;
        self.facts.extend(newer);
        let newer = std::mem::take(&mut self.tool_calls);
        self.tool_calls = older.tool_calls;
        self.tool_calls.extend(newer);
    }
}

/// Whether `value` is later than `kept`: a newer window, or more used in the same one. Settlements
/// may report out of order (shared counters settle in the background), and a line never goes back.
fn supersedes(value: &LineValue, kept: &LineValue) -> bool {
    (value.window_start, value.used) > (kept.window_start, kept.used)
}

/// Hands settled usage to the writer task. Recording only appends to a shared batch under a
/// short lock — no message, no wake-up per request; the task takes the batch every `FLUSH_EVERY`.
#[derive(Debug, Clone)]
pub struct UsageWriter {
    pending: Arc<Mutex<Batch>>,
    /// Wakes the task early when the batch is full.
    full: Arc<Notify>,
}

/// Owns the writer task; `close` drains and stops it.
#[derive(Debug)]
pub struct WriterHandle {
    close: Arc<Notify>,
    done: Done,
}

/// How the end of the writer task is awaited: a task of the caller's runtime, or the writer's own
/// thread reporting back.
#[derive(Debug)]
enum Done {
    #[cfg(test)]
    Task(tokio::task::JoinHandle<()>),
    Thread(oneshot::Receiver<()>),
}

/// Opens the store the writer persists to. Called on the writer's own thread, so whatever the store
/// starts there (a SQLite connection's thread, a Postgres socket) belongs to that thread and shares
/// its priority; the writer closes it when it stops.
pub type OpenUsageStore = Box<dyn FnOnce() -> Result<Arc<dyn UsageStore>, String> + Send>;

/// The nice value of the writer's thread on Linux: below requests, so waking to flush never preempts
/// one, yet with enough weight (a third of a request thread's) to keep up at full load.
pub const WRITER_NICE: i32 = 5;

impl UsageWriter {
    /// Starts the task on the caller's runtime (for tests that control its clock); at every flush
    /// it also takes the lines `counters` keeps charged in this process (`Counters::charged`).
    #[cfg(test)]
    fn spawn(store: Arc<dyn UsageStore>, counters: Arc<dyn Counters>) -> (UsageWriter, WriterHandle) {
        let pending = Arc::new(Mutex::new(Batch::default()));
        let (close, full) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        let task = tokio::spawn(run(store, counters, None, pending.clone(), close.clone(), full.clone()));
        (UsageWriter { pending, full }, WriterHandle { close, done: Done::Task(task) })
    }

    /// Starts the task on a thread of its own (`usage-writer`, nice `WRITER_NICE` on Linux) with a
    /// single-threaded runtime, and opens its store there; at every flush it also takes the lines
    /// `counters` keeps charged in this process (`Counters::charged`). Requests only ever touch the shared
    /// batch; the flush's encoding and database work never runs on a request worker. Each written
    /// batch's budget lines go to `tap`, if given.
    pub async fn spawn_on_own_thread(
        open: OpenUsageStore,
        counters: Arc<dyn Counters>,
        tap: Option<FlushTap>,
    ) -> Result<(UsageWriter, WriterHandle), String> {
        let pending = Arc::new(Mutex::new(Batch::default()));
        let (close, full) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        let (opened_tx, opened) = oneshot::channel::<Result<(), String>>();
        let (done_tx, done) = oneshot::channel();
        let (batch, closing, woken) = (pending.clone(), close.clone(), full.clone());
        std::thread::Builder::new()
            .name("usage-writer".to_owned())
            .spawn(move || {
                lower_own_priority("usage writes");
                let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = opened_tx.send(Err(format!("usage writer runtime: {e}")));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let store = match open() {
                        Ok(store) => store,
                        Err(e) => {
                            let _ = opened_tx.send(Err(e));
                            return;
                        }
                    };
                    let _ = opened_tx.send(Ok(()));
                    run(store.clone(), counters, tap, batch, closing, woken).await;
                    store.close().await;
                });
                let _ = done_tx.send(());
            })
            .map_err(|e| format!("usage writer thread: {e}"))?;
        opened.await.map_err(|_| "usage writer thread ended before opening its store".to_owned())??;
        Ok((UsageWriter { pending, full }, WriterHandle { close, done: Done::Thread(done) }))
    }

    /// Log lines, tool-call rows and counter lines waiting for the next flush.
    pub fn queued(&self) -> usize {
        self.pending.lock().map_or(0, |b| b.logs.len() + b.tool_calls.len() + b.lines.len())
    }

    pub fn record(&self, values: Vec<LineValue>, log: Option<LogLine>) {
        if let Ok(mut batch) = self.pending.lock() {
            batch.add(values, log);
            if batch.logs.len() == FLUSH_AT_LOGS || batch.tool_calls.len() == FLUSH_AT_LOGS {
                self.full.notify_one();
            }
        } else {
            tracing::error!("usage batch lock poisoned; usage of this request is kept in memory only");
        }
    }
}

impl WriterHandle {
    /// Writes everything recorded so far, then stops the task.
    pub async fn close(self) {
        self.close.notify_one();
        match self.done {
            #[cfg(test)]
            Done::Task(task) => {
                let _ = task.await;
            }
            Done::Thread(done) => {
                let _ = done.await;
            }
        }
    }
}

/// Lowers the calling thread's priority to `WRITER_NICE`. Linux keeps a nice value per thread, and
/// threads started from this one inherit it; elsewhere the call would lower the whole process, so
/// it is not made. `what` names the work, for the warning if it cannot.
pub(crate) fn lower_own_priority(what: &str) {
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), WRITER_NICE) {
        tracing::warn!(error = %e, "{what} keep normal priority");
    }
    #[cfg(not(target_os = "linux"))]
    let _ = what;
}

async fn run(
    store: Arc<dyn UsageStore>,
    counters: Arc<dyn Counters>,
    tap: Option<FlushTap>,
    pending: Arc<Mutex<Batch>>,
    close: Arc<Notify>,
    full: Arc<Notify>,
) {
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    // Two batches take turns: requests fill one while the other is written, then emptied.
    let mut spare = Batch::default();
    let mut journal = Journal::new();
    loop {
        let closing = tokio::select! {
            () = close.notified() => true,
            () = full.notified() => false,
            _ = tick.tick() => false,
        };
        flush(store.as_ref(), counters.as_ref(), tap.as_ref(), &pending, &mut spare).await;
        journal.sync(store.as_ref(), counters.as_ref()).await;
        if closing {
            return;
        }
    }
}

/// Writes what is pending, leaving the emptied `spare` in its place for requests to fill; on
/// failure it goes back into the batch and is retried next tick.
async fn flush(store: &dyn UsageStore, counters: &dyn Counters, tap: Option<&FlushTap>, pending: &Mutex<Batch>, spare: &mut Batch) {
    let mut taken = match pending.lock() {
        Ok(mut batch) => std::mem::replace(&mut *batch, std::mem::take(spare)),
        Err(_) => return,
    };
    taken.add(counters.charged(), None);
    if taken.is_empty() {
        *spare = taken;
        return;
    }
    let rows: Vec<UsageRow> = taken.lines.values().map(row).collect();
    let started = std::time::Instant::now();
    let written = store.write_usage(&rows, &taken.logs, &taken.tool_calls).await;
    metrics::histogram!(meters::FLUSH).record(started.elapsed().as_secs_f64());
    match written {
        Ok(()) => {
            // Counted once written, so the metrics agree with the stored log.
            meters::tally(&taken.logs, &taken.facts, &taken.tool_calls);
            if let Some(tap) = tap {
                hand_budgets(tap, &taken);
            }
            taken.clear();
            *spare = taken;
        }
        Err(e) => {
            tracing::error!(error = %e, queued = rows.len(), "usage write failed; will retry");
            metrics::counter!(meters::FLUSH_FAILURES).increment(1);
            if let Ok(mut batch) = pending.lock() {
                batch.restore(taken);
            }
        }
    }
}

/// Sends the written batch's budget lines to `tap` (nothing when it charged none).
fn hand_budgets(tap: &FlushTap, written: &Batch) {
    let budgets: Vec<LineValue> = written.lines.values().filter(|v| v.kind == LineKind::Budget).cloned().collect();
    if budgets.is_empty() {
        return;
    }
    if let Err(tokio::sync::mpsc::error::TrySendError::Full(lines)) = tap.try_send(budgets) {
        tracing::warn!(lines = lines.len(), "budget alerts are behind; the lines of one flush were not looked at");
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, Utc};

    use tollgate_core::money::Money;

    use super::*;

    fn value(used: u64, window_start: chrono::DateTime<Utc>) -> LineValue {
        LineValue { line: "b1".into(), kind: LineKind::Budget, used, window_start }
    }

    /// Regression: shared counters settle in the background, so a line's values can arrive out
    /// of order; the batch used to keep the last to arrive, and persisted 0.16 of a 0.20 spend.
    #[test]
    fn a_batch_keeps_the_latest_value_of_a_line_whatever_order_it_arrives_in() {
        let now = tollgate_core::clock::now();
        let mut batch = Batch::default();
        batch.add(vec![value(10, now)], None);
        batch.add(vec![value(8, now)], None);
        assert_eq!(batch.lines["b1"].used, 10, "a smaller value of the same window arrived late");
        batch.add(vec![value(3, now - Duration::days(1))], None);
        assert_eq!(batch.lines["b1"].used, 10, "an older window never wins");
        batch.add(vec![value(1, now + Duration::days(1))], None);
        assert_eq!(batch.lines["b1"].used, 1, "a new window starts over");
        let mut newer = Batch::default();
        newer.add(vec![value(0, now + Duration::days(2))], None);
        newer.restore(batch);
        assert_eq!(newer.lines["b1"].used, 0, "a failed older batch does not overwrite what came since");
    }

    /// Counts the log lines written, and notes the thread writing them; reads nothing.
    struct Counting(tokio::sync::mpsc::UnboundedSender<Written>);

    #[derive(Debug)]
    struct Written {
        logs: usize,
        thread: Option<String>,
        nice: Option<i32>,
    }

    #[async_trait::async_trait]
    impl UsageStore for Counting {
        async fn load_governance(
            &self,
            _: &mut tollgate_core::usage::CopySink<'_>,
        ) -> Result<tollgate_core::usage::GovernanceData, tollgate_core::ports::StoreError> {
            Err(tollgate_core::ports::StoreError::Backend("not used".into()))
        }
        async fn load_usage(&self, _: Option<chrono::DateTime<Utc>>) -> Result<Vec<UsageRow>, tollgate_core::ports::StoreError> {
            Ok(Vec::new())
        }
        async fn write_usage(
            &self,
            _: &[UsageRow],
            logs: &[RequestLog],
            _: &[ToolCallLog],
        ) -> Result<(), tollgate_core::ports::StoreError> {
            #[cfg(target_os = "linux")]
            let nice = rustix::process::getpriority_process(None).ok();
            #[cfg(not(target_os = "linux"))]
            let nice = None;
            let _ = self.0.send(Written { logs: logs.len(), thread: std::thread::current().name().map(str::to_owned), nice });
            Ok(())
        }
        async fn journal(&self, _: &[tollgate_core::usage::OpenReservation], _: &[String]) -> Result<(), tollgate_core::ports::StoreError> {
            Ok(())
        }
        async fn charge_journal(&self) -> Result<usize, tollgate_core::ports::StoreError> {
            Ok(0)
        }
        async fn prune_request_logs(&self, _: chrono::DateTime<Utc>) -> Result<u64, tollgate_core::ports::StoreError> {
            Ok(0)
        }
    }

    fn log_line() -> RequestLog {
        RequestLog {
            created_at: tollgate_core::clock::now(),
            user_id: None,
            virtual_key_id: None,
            provider: "openai".into(),
            model: "m".into(),
            prompt_tokens: 1,
            completion_tokens: 1,
            cost: Money::ZERO,
            status: 200,
            latency_ms: 1,
            streamed: false,
            route: "chat_completions",
            copy_id: None,
            profile_id: None,
            role_id: None,
            denial: None,
            error: None,
            request_content: None,
            response_content: None,
        }
    }

    fn facts() -> Facts {
        Facts { route: "chat_completions", priced: true, overhead: None, upstream: None, denied: false }
    }

    /// Regression: with a flush every 500 ms, a burst at full speed held 18,000 pending lines
    /// and raised the peak RSS from 41 to 80 MB; a full batch is now written at once.
    #[tokio::test(start_paused = true)]
    async fn a_full_batch_is_written_before_the_next_tick() {
        let (tx, mut written) = tokio::sync::mpsc::unbounded_channel();
        let (writer, handle) = UsageWriter::spawn(Arc::new(Counting(tx)), Arc::new(crate::counters::MemoryCounters::new()));
        tokio::task::yield_now().await; // the first tick (at once) finds nothing to write
        for _ in 0..FLUSH_AT_LOGS - 1 {
            writer.record(Vec::new(), Some(LogLine::Request(log_line(), facts())));
        }
        let early = tokio::time::timeout(FLUSH_EVERY / 5, written.recv()).await;
        assert!(early.is_err(), "a batch short of full waits for the tick");
        writer.record(Vec::new(), Some(LogLine::Request(log_line(), facts())));
        let flushed = tokio::time::timeout(FLUSH_EVERY / 5, written.recv()).await;
        assert_eq!(flushed.ok().flatten().map(|w| w.logs), Some(FLUSH_AT_LOGS), "the full batch is written before the tick");
        handle.close().await;
    }

    /// The two batches take turns: each flush writes only what was recorded since the last one,
    /// and a batch emptied after its write starts the next round with nothing left in it.
    #[tokio::test(start_paused = true)]
    async fn batches_taking_turns_write_each_line_exactly_once() {
        let (tx, mut written) = tokio::sync::mpsc::unbounded_channel();
        let (writer, handle) = UsageWriter::spawn(Arc::new(Counting(tx)), Arc::new(crate::counters::MemoryCounters::new()));
        tokio::task::yield_now().await; // the first tick (at once) finds nothing to write
        for round in 1..=4 {
            for _ in 0..round * 10 {
                writer.record(Vec::new(), Some(LogLine::Request(log_line(), facts())));
            }
            tokio::time::sleep(FLUSH_EVERY).await;
            assert_eq!(written.recv().await.map(|w| w.logs), Some(round * 10), "round {round} writes its own lines and no others");
        }
        tokio::time::sleep(FLUSH_EVERY * 3).await;
        assert!(written.try_recv().is_err(), "an empty round writes nothing");
        handle.close().await;
    }

    /// The server's writer: its store is opened and written from a thread of its own, at a lower
    /// priority than the request workers, and closing it still writes everything recorded.
    #[tokio::test]
    async fn a_writer_on_its_own_thread_writes_below_request_priority_and_drains_on_close() {
        let (tx, mut written) = tokio::sync::mpsc::unbounded_channel();
        let open: OpenUsageStore = Box::new(move || Ok(Arc::new(Counting(tx)) as Arc<dyn UsageStore>));
        let (writer, handle) =
            UsageWriter::spawn_on_own_thread(open, Arc::new(crate::counters::MemoryCounters::new()), None).await.expect("starts");
        for _ in 0..3 {
            writer.record(Vec::new(), Some(LogLine::Request(log_line(), facts())));
        }
        handle.close().await;
        let mut flushes = Vec::new();
        while let Some(w) = written.recv().await {
            flushes.push(w);
        }
        assert_eq!(flushes.iter().map(|w| w.logs).sum::<usize>(), 3, "closing drained the batch: {flushes:?}");
        assert!(flushes.iter().all(|w| w.thread.as_deref() == Some("usage-writer")), "{flushes:?}");
        if cfg!(target_os = "linux") {
            assert!(flushes.iter().all(|w| w.nice == Some(WRITER_NICE)), "{flushes:?}");
        }
    }

    #[tokio::test]
    async fn a_writer_whose_store_cannot_open_fails_to_start_with_the_reason() {
        let open: OpenUsageStore = Box::new(|| Err("no such database".to_owned()));
        let started = UsageWriter::spawn_on_own_thread(open, Arc::new(crate::counters::MemoryCounters::new()), None).await;
        assert_eq!(started.err().as_deref(), Some("no such database"));
    }
}
