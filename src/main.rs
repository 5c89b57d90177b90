//! The `weft` command line. No logic lives here: it parses arguments and calls the library.

use clap::{Parser, Subcommand};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use weft::config::Config;

#[derive(Parser)]
#[command(name = "weft", version, about = "Log-metric-trace correlation service")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: OTLP/HTTP, OTLP/gRPC, the query API.
    Serve {
        /// Settings file; defaults to $WEFT_CONFIG, then config/weft.toml when it exists, then
        /// built-in defaults.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Print the effective settings (defaults, file and WEFT_* variables) as TOML.
    Config {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Make a bearer token for a tenant (or hash a given one) and print the [[auth.tokens]]
    /// entry for config/weft.toml. Only the hash goes into the config.
    Token {
        #[arg(long)]
        tenant: String,
        /// Hash this token instead of generating a new one.
        #[arg(long)]
        token: Option<String>,
    },
}

fn load(path: Option<PathBuf>) -> Result<Config, weft::config::ConfigError> {
    let env: BTreeMap<String, String> = std::env::vars()
        .filter(|(k, _)| k.starts_with("WEFT_"))
        .collect();
    let default_file = PathBuf::from("config/weft.toml");
    let path = path
        .or_else(|| env.get("WEFT_CONFIG").map(PathBuf::from))
        .or_else(|| default_file.exists().then_some(default_file));
    Config::load(path.as_deref(), &env)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    weft::telemetry::init_logging(std::env::var("WEFT_LOG").ok().as_deref());
    let result = match cli.command {
        Command::Serve { config } => load(config)
            .map_err(|e| e.to_string())
            .and_then(|c| weft::server::serve(c).map_err(|e| e.to_string())),
        Command::Config { config } => load(config).map_err(|e| e.to_string()).map(|c| {
            print!("{}", toml::to_string(&c).expect("settings serialize"));
        }),
        Command::Token { tenant, token } => weft::model::TenantId::new(&tenant)
            .map_err(|e| e.to_string())
            .map(|_| {
                let token = token.unwrap_or_else(|| {
                    format!(
                        "{}{}",
                        uuid::Uuid::new_v4().simple(),
                        uuid::Uuid::new_v4().simple()
                    )
                });
                println!("# bearer token (give it to the client; it is not stored): {token}");
                println!("[[auth.tokens]]");
                println!("tenant = {tenant:?}");
                println!("sha256 = {:?}", weft::api::auth::hash_token(&token));
            }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("weft: {e}");
            ExitCode::FAILURE
        }
    }
}
