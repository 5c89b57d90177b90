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
        /// `null` acknowledges without storing anything: the benchmark's ceiling.
        #[arg(long, value_enum, default_value = "wal")]
        sink: weft::server::SinkMode,
    },
    /// Run weft and feed it a seven-service shop with an injected database fault; prints the
    /// URLs to open and reports the incident when it is detected.
    Demo {
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Seconds of calm before the fault (the detector needs a baseline).
        #[arg(long, default_value_t = 30)]
        fault_at: u64,
        #[arg(long, default_value_t = 60)]
        fault_secs: u64,
    },
    /// Print the effective settings (defaults, file and WEFT_* variables) as TOML.
    Config {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Benchmarks that print figures (see BENCHMARKS.md).
    Bench {
        #[command(subcommand)]
        what: Bench,
    },
    /// The incident detector on generated, labelled fault cases through a real server: AS@k,
    /// MRR, detection delay and false incidents (see BENCHMARKS.md). Starts its own server.
    Eval {
        #[arg(long, default_value_t = 60)]
        cases: usize,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Fault-free hours, for false incidents.
        #[arg(long, default_value_t = 2)]
        quiet_hours: u64,
        /// Requests per second at each case's gateway.
        #[arg(long, default_value_t = 3.0)]
        rate: f64,
        /// Seconds of telemetry per case.
        #[arg(long, default_value_t = 480)]
        case_secs: u64,
        /// A running weft (live detector off) to send to instead of starting one.
        #[arg(long)]
        endpoint: Option<String>,
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

#[derive(Subcommand)]
enum Bench {
    /// weft against its own ceiling (`serve --sink null`) per signal in the same run, then
    /// query latencies over a loaded data set. Starts its own servers from this binary.
    Run {
        #[arg(long, default_value_t = 20)]
        seconds: u64,
        #[arg(long, default_value_t = 8)]
        connections: usize,
        /// Spans and (separately) logs loaded before the query figures.
        #[arg(long, default_value_t = 200_000)]
        query_records: u64,
        /// Queries of each kind.
        #[arg(long, default_value_t = 500)]
        queries: usize,
    },
    /// Disk and CPU of tail sampling (10 % baseline plus errors, slow and exemplar-named
    /// traces, pruned past the horizon) against keeping everything, and the share of the
    /// interesting traces kept. Starts its own servers from this binary.
    Sampling {
        #[arg(long, default_value_t = 20_000)]
        traces: usize,
    },
    /// Send generated OTLP to any endpoint and report what was acknowledged.
    Load {
        /// OTLP/HTTP base URL.
        #[arg(long, default_value = "http://127.0.0.1:4318")]
        endpoint: String,
        /// Send OTLP/gRPC to this URL (e.g. http://127.0.0.1:4317) instead of HTTP.
        #[arg(long)]
        grpc: Option<String>,
        #[arg(long, value_enum, default_value = "spans")]
        signal: SignalArg,
        #[arg(long, default_value_t = 8)]
        connections: usize,
        #[arg(long, default_value_t = 20)]
        seconds: u64,
        /// Records per second over all connections; 0 is as fast as acknowledged.
        #[arg(long, default_value_t = 0)]
        rate: u64,
        /// Records per request (default: 500 spans, 1000 logs, 500 points).
        #[arg(long)]
        batch: Option<usize>,
        /// Stop after this many acknowledged records.
        #[arg(long)]
        records: Option<u64>,
        #[arg(long, default_value = "/v1/traces")]
        traces_path: String,
        #[arg(long, default_value = "/v1/logs")]
        logs_path: String,
        #[arg(long, default_value = "/v1/metrics")]
        metrics_path: String,
        #[arg(long)]
        tenant: Option<String>,
        /// Measure freshness by polling weft's trace API (weft only).
        #[arg(long)]
        freshness: bool,
        /// The same records as Prometheus remote write (metrics) or Loki push (logs).
        #[arg(long, value_enum, default_value = "otlp")]
        protocol: ProtocolArg,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ProtocolArg {
    Otlp,
    RemoteWrite,
    Loki,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum SignalArg {
    Spans,
    Logs,
    Metrics,
}

fn bench(what: Bench) -> Result<(), String> {
    match what {
        Bench::Run {
            seconds,
            connections,
            query_records,
            queries,
        } => weft::bench::run_suite(&weft::bench::SuiteOptions {
            seconds,
            connections,
            query_records,
            queries,
        }),
        Bench::Sampling { traces } => weft::bench::sampling::run(traces),
        Bench::Load {
            endpoint,
            grpc,
            signal,
            connections,
            seconds,
            rate,
            batch,
            records,
            traces_path,
            logs_path,
            metrics_path,
            tenant,
            freshness,
            protocol,
        } => {
            use weft::bench::load::{self, percentile};
            let signal = match signal {
                SignalArg::Spans => weft::model::Signal::Spans,
                SignalArg::Logs => weft::model::Signal::Logs,
                SignalArg::Metrics => weft::model::Signal::Metrics,
            };
            let mut opts = load::LoadOptions::new(&endpoint, signal);
            opts.grpc = grpc;
            opts.connections = connections.max(1);
            opts.duration = std::time::Duration::from_secs(seconds);
            opts.rate = rate;
            opts.batch = batch.unwrap_or(opts.batch).max(1);
            opts.max_records = records;
            opts.traces_path = traces_path;
            opts.logs_path = logs_path;
            opts.metrics_path = metrics_path;
            opts.tenant = tenant;
            opts.probe_freshness = freshness;
            opts.protocol = match protocol {
                ProtocolArg::Otlp => weft::bench::compat::Protocol::Otlp,
                ProtocolArg::RemoteWrite => weft::bench::compat::Protocol::RemoteWrite,
                ProtocolArg::Loki => weft::bench::compat::Protocol::LokiPush,
            };
            let rt = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
            let r = rt.block_on(load::run(opts))?;
            let ms = |v: Option<u64>, div: f64| {
                v.map_or("-".into(), |v| format!("{:.1}", v as f64 / div))
            };
            println!(
                "{}: {} acknowledged in {:.1} s = {:.0}/s, {:.1} MB/s; {} requests, {} failed; \
                 ack p50 {} ms p99 {} ms; freshness p50 {} ms p99 {} ms ({} probes)",
                signal.as_str(),
                r.records,
                r.elapsed.as_secs_f64(),
                r.records_per_sec(),
                r.mb_per_sec(),
                r.requests,
                r.failures,
                ms(percentile(&r.ack_us, 0.5), 1000.0),
                ms(percentile(&r.ack_us, 0.99), 1000.0),
                ms(percentile(&r.freshness_ms, 0.5), 1.0),
                ms(percentile(&r.freshness_ms, 0.99), 1.0),
                r.freshness_ms.len(),
            );
            Ok(())
        }
    }
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
        Command::Serve { config, sink } => load(config)
            .map_err(|e| e.to_string())
            .and_then(|c| weft::server::serve(c, sink).map_err(|e| e.to_string())),
        Command::Demo {
            config,
            seed,
            fault_at,
            fault_secs,
        } => load(config).map_err(|e| e.to_string()).and_then(|c| {
            weft::demo::run(
                c,
                weft::demo::DemoOptions {
                    seed,
                    fault_at_secs: fault_at,
                    fault_secs,
                },
            )
        }),
        Command::Config { config } => load(config).map_err(|e| e.to_string()).map(|c| {
            print!("{}", toml::to_string(&c).expect("settings serialize"));
        }),
        Command::Bench { what } => bench(what),
        Command::Eval {
            cases,
            seed,
            quiet_hours,
            rate,
            case_secs,
            endpoint,
        } => {
            let opts = weft::eval::EvalOptions {
                cases,
                seed,
                quiet_hours,
                rate,
                case_secs: case_secs.max(240),
            };
            match endpoint {
                Some(base) => weft::eval::run(&base, &opts, |l| eprintln!("{l}")),
                None => weft::eval::run_served(&opts),
            }
            .map(|r| print!("{}", r.markdown()))
        }
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
