//! `tollgate-bench`: measures what Tollgate adds over a bare forwarder (method in docs/BENCHMARKS.md).

mod bench;
mod forward;
mod load;
mod logs_bench;
mod mcp;
mod mock;
mod procstat;
mod report;
mod results;
mod scale;
mod scale_http;
mod scale_seed;
mod setup;
mod spawn;
mod tables;
mod verdict;

/// The same allocator as Tollgate, so the forwarder is measured on an equal footing.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "tollgate-bench",
    about = "Benchmarks Tollgate against a mock upstream and a bare forwarder on the same HTTP stack",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    options: bench::Options,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the mock upstream (`POST /v1/chat/completions`, plain and streamed, and `POST /v1/embeddings`)
    Mock {
        /// Port on 127.0.0.1 (0 picks a free one; the address is printed)
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// Milliseconds between streamed chunks (the first goes at once)
        #[arg(long, default_value_t = 1)]
        chunk_delay_ms: u64,
        /// Exit when standard input closes (set when the benchmark starts this process)
        #[arg(long, hide = true)]
        exit_on_eof: bool,
    },
    /// Serve the bare forwarder: `/v1/chat/completions` passed to the upstream and back unchanged
    Forward {
        /// Address to listen on
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
        /// Upstream base, e.g. http://127.0.0.1:9000
        #[arg(long)]
        upstream: String,
        #[arg(long, hide = true)]
        exit_on_eof: bool,
    },
    /// Measure the governance snapshot at scale, in process over a SQLite store: full rebuild
    /// time and memory, a one-user change applied in place, key look-up at 1k and 1M keys;
    /// with `--http`, the real server over a seeded database through its API instead
    Scale {
        /// Users to seed, each with a copy and a key
        #[arg(long, default_value_t = 100_000)]
        users: usize,
        /// Start `tollgate` over the seeded database and measure user creation, attach,
        /// propagate, paged lists and inference p99 over HTTP
        #[arg(long)]
        http: bool,
        /// With `--http`: users created through the API, eight at a time
        #[arg(long, default_value_t = 1_000)]
        added: usize,
        /// With `--http`: the Tollgate binary (default: `tollgate` beside this binary)
        #[arg(long)]
        tollgate_bin: Option<std::path::PathBuf>,
    },
    /// Measure the MCP hop: `tools/call` on the fixture MCP server directly and through
    /// Tollgate's `/mcp` with governance on, at a fixed rate
    Mcp(mcp::Options),
    /// Measure log searches: seed a request log of `--rows` rows over 30 days, start Tollgate
    /// over it and time each kind of `GET /api/logs` search through the API
    Logs {
        /// Rows to seed
        #[arg(long, default_value_t = 10_000_000)]
        rows: u64,
        /// `sqlite` (a temporary file), or the URL of a Postgres server where a throw-away
        /// database is created and dropped again
        #[arg(long, default_value = "sqlite")]
        database: String,
        /// The Tollgate binary (default: `tollgate` beside this binary)
        #[arg(long)]
        tollgate_bin: Option<std::path::PathBuf>,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    // As Tollgate does, so the scale run's resident memory is the server's.
    let _ = tikv_jemalloc_ctl::background_thread::write(true);
    let cli = Cli::parse();
    let outcome = match cli.command {
        Some(Command::Mock { port, chunk_delay_ms, exit_on_eof }) => {
            exit_when_parent_goes(exit_on_eof);
            mock::serve(port, chunk_delay_ms, announce).await
        }
        Some(Command::Forward { listen, upstream, exit_on_eof }) => {
            exit_when_parent_goes(exit_on_eof);
            forward::serve(&listen, &upstream, announce).await
        }
        Some(Command::Scale { users, http: false, .. }) => scale::run(users, say).await,
        Some(Command::Scale { users, http: true, added, tollgate_bin }) => {
            scale_http::run(scale_http::Options { users, added, tollgate_bin }, say).await
        }
        Some(Command::Mcp(options)) => mcp::run(options, say).await,
        Some(Command::Logs { rows, database, tollgate_bin }) => {
            logs_bench::run(logs_bench::Options { rows, database, tollgate_bin }, say).await
        }
        None => run(cli.options).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

/// Runs the benchmark; an interrupt or termination stops it (children are killed on the way out).
async fn run(options: bench::Options) -> Result<(), String> {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        outcome = bench::run(options, say) => outcome,
        _ = tokio::signal::ctrl_c() => Err("interrupted".to_owned()),
        () = terminate => Err("terminated".to_owned()),
    }
}

/// A child started by the benchmark keeps its standard input open; when the benchmark goes away
/// (even killed), the pipe closes and the child leaves too.
fn exit_when_parent_goes(enabled: bool) {
    if enabled {
        std::thread::spawn(|| {
            let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
            std::process::exit(0);
        });
    }
}

/// The line the benchmark waits for to learn a child's address.
#[expect(clippy::print_stdout, reason = "a child announces its address to the benchmark on stdout")]
fn announce(addr: std::net::SocketAddr) {
    println!("listening on {addr}");
}

#[expect(clippy::print_stdout, reason = "the benchmark reports on stdout")]
fn say(text: &str) {
    println!("{text}");
}

#[expect(clippy::print_stderr, reason = "fatal errors go to stderr")]
fn fail(text: &str) -> ExitCode {
    eprintln!("tollgate-bench: {text}");
    ExitCode::from(2)
}
