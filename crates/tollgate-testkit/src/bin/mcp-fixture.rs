//! The test fixture MCP server as a process: over stdio (`mcp-fixture [label]`), for stdio MCP
//! clients in tests, or over streamable HTTP (`mcp-fixture --http [label]`, announcing
//! `listening on <addr>` on stdout and leaving when stdin closes), for the benchmark.

use std::io::Write as _;

use tollgate_testkit::mcp_fixture::{Fixture, serve_http, serve_stdio};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let http = args.first().is_some_and(|a| a == "--http");
    if http {
        args.remove(0);
    }
    let fixture = Fixture { label: args.into_iter().next().unwrap_or_default() };
    let outcome = if http { http_until_stdin_closes(fixture).await } else { serve_stdio(fixture).await };
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // Stdout may carry the protocol: errors go to stderr.
            let _ = writeln!(std::io::stderr(), "mcp-fixture: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn http_until_stdin_closes(fixture: Fixture) -> Result<(), String> {
    let (url, task) = serve_http(fixture).await.map_err(|e| e.to_string())?;
    let addr = url.trim_start_matches("http://").trim_end_matches("/mcp").to_owned();
    let mut out = std::io::stdout().lock();
    writeln!(out, "listening on {addr}").and_then(|()| out.flush()).map_err(|e| e.to_string())?;
    drop(out);
    let _ = tokio::task::spawn_blocking(|| std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink())).await;
    task.abort();
    Ok(())
}
