//! The test fixture MCP server over stdio (`mcp-fixture [label]`), for stdio MCP clients in tests.

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let label = std::env::args().nth(1).unwrap_or_default();
    match tollgate_testkit::mcp_fixture::serve_stdio(tollgate_testkit::mcp_fixture::Fixture { label }).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing_fallback(&e);
            std::process::ExitCode::FAILURE
        }
    }
}

/// Errors go to stderr (stdout carries the protocol).
fn tracing_fallback(e: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "mcp-fixture: {e}");
}
