//! The `tollgate` command: serves the gateway (default) or runs an operator command.

/// jemalloc keeps a cache per thread, so a buffer allocated on one worker thread and freed on
/// another does not contend for a lock the way the system allocator's arenas do under load.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Lets jemalloc hand freed pages back to the system on a thread of its own. Without it, pages
/// are returned only while the program allocates, so the memory a full snapshot rebuild freed
/// (the previous snapshot) stays resident in an idle process.
fn return_freed_memory() {
    if let Err(e) = tikv_jemalloc_ctl::background_thread::write(true) {
        tracing::warn!(error = %e, "freed memory is returned to the system only while allocating");
    }
}

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tollgate::cli::{create_api_key, redact_url, set_admin_password};
use tollgate::{Overrides, Server, Settings, shutdown_signal};
use tollgate_core::auth::Secret;
use tollgate_core::services::auth::{AdminBootstrap, DEFAULT_ADMIN_USERNAME};

#[derive(Debug, Parser)]
#[command(name = "tollgate", version, about = "An AI gateway that governs LLM access with access profiles")]
struct Cli {
    /// Address to listen on [default: 127.0.0.1:8080]
    #[arg(long, env = "TOLLGATE_LISTEN", global = true)]
    listen: Option<String>,
    /// `sqlite://…` or `postgres://…` [default: `sqlite://./tollgate.db`]
    #[arg(long, env = "TOLLGATE_DATABASE_URL", global = true)]
    database_url: Option<String>,
    /// TOML file with settings (flags and environment variables win over it)
    #[arg(long, env = "TOLLGATE_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// File holding the key that seals stored virtual-key values [default: ./tollgate.key]
    #[arg(long, env = "TOLLGATE_ENCRYPTION_KEY_FILE", global = true)]
    encryption_key_file: Option<PathBuf>,
    /// Redis holding the usage counters shared by several instances (`redis://…`) [default: in memory, one instance]
    #[arg(long, env = "TOLLGATE_REDIS_URL", global = true, hide_env_values = true)]
    redis_url: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the gateway (the default)
    Serve,
    /// Management API keys
    #[command(subcommand)]
    ApiKey(ApiKeyCommand),
    /// The admin credential
    #[command(subcommand)]
    Admin(AdminCommand),
}

#[derive(Debug, Subcommand)]
enum ApiKeyCommand {
    /// Mint a key and print its value once (as JSON)
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        description: Option<String>,
        /// A permission such as AccessProfiles:View; repeat for more
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// Grant every permission of the catalogue
        #[arg(long, conflicts_with = "scopes")]
        all_scopes: bool,
        /// RFC 3339 expiry time
        #[arg(long)]
        expires_at: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Store a new admin password (read from TOLLGATE_NEW_ADMIN_PASSWORD or the first line of stdin)
    SetPassword {
        #[arg(long, default_value = DEFAULT_ADMIN_USERNAME)]
        username: String,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let overrides = Overrides {
        listen: cli.listen,
        database_url: cli.database_url,
        config: cli.config,
        admin_username: std::env::var("TOLLGATE_ADMIN_USERNAME").ok(),
        admin_password: std::env::var("TOLLGATE_ADMIN_PASSWORD").ok(),
        encryption_key: std::env::var("TOLLGATE_ENCRYPTION_KEY").ok(),
        encryption_key_file: cli.encryption_key_file,
        redis_url: cli.redis_url,
        traces_env: tollgate::traces_config::TracesEnv::from_process(),
    };
    let settings = match Settings::resolve(overrides) {
        Ok(settings) => settings,
        Err(e) => return fail(&e.to_string()),
    };
    if let Err(e) = tollgate::traces::install(&settings.log, &settings.traces) {
        return fail(&e);
    }
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings).await,
        Command::ApiKey(ApiKeyCommand::Create { name, description, scopes, all_scopes, expires_at }) => {
            match create_api_key(&settings.database_url, name, description, &scopes, all_scopes, expires_at).await {
                Ok(created) => {
                    let shown = serde_json::json!({"api_key": created.api_key, "key": created.key.expose()});
                    say(&serde_json::to_string_pretty(&shown).unwrap_or_default());
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&e.to_string()),
            }
        }
        Command::Admin(AdminCommand::SetPassword { username }) => {
            let password = match std::env::var("TOLLGATE_NEW_ADMIN_PASSWORD") {
                Ok(p) => p,
                Err(_) => std::io::stdin().lock().lines().next().and_then(Result::ok).unwrap_or_default(),
            };
            match set_admin_password(&settings.database_url, &username, &Secret::new(password.trim())).await {
                Ok(()) => {
                    say(&format!("admin password for '{username}' updated; restart running servers is not needed"));
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&e.to_string()),
            }
        }
    }
}

async fn serve(settings: Settings) -> ExitCode {
    let server = match Server::build(&settings).await {
        Ok(server) => server,
        Err(e) => return fail(&e.to_string()),
    };
    if let AdminBootstrap::Generated { username, password } = server.admin_bootstrap() {
        say(&format!(
            "\nNo admin credential was configured, so one was generated. It is shown only this once:\n\n    username: {username}\n    password: {}\n\n\
             Use it as HTTP Basic auth on /api/... . To choose your own, set TOLLGATE_ADMIN_USERNAME and\n\
             TOLLGATE_ADMIN_PASSWORD, or run `tollgate admin set-password`.\n",
            password.expose()
        ));
    }
    return_freed_memory();
    tracing::info!(address = %server.local_addr(), database = %redact_url(&settings.database_url), "tollgate listening");
    say(&format!("tollgate listening on http://{}", server.local_addr()));
    match server.run(shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e.to_string()),
    }
}

#[expect(clippy::print_stdout, reason = "the CLI talks to its operator on stdout")]
fn say(text: &str) {
    println!("{text}");
}

#[expect(clippy::print_stderr, reason = "the CLI reports fatal errors on stderr")]
fn fail(text: &str) -> ExitCode {
    eprintln!("tollgate: {text}");
    ExitCode::from(2)
}
