//! `weft serve`: opens storage, binds the listeners, replays the WAL in the background (the
//! listeners answer health checks meanwhile, and writes with 503), then serves until SIGINT or
//! SIGTERM, and commits the indexes before exiting.

use crate::api::auth::Auth;
use crate::api::{self, AppState, Routes};
use crate::config::Config;
use crate::correlate::correlator::Correlator;
use crate::correlate::incidents::{Detector, Incidents};
use crate::health::Health;
use crate::index::{read_checkpoint, Indexer, RedConfig, Store};
use crate::ingest::traceids::Extractor;
use crate::ingest::{IngestService, Sink};
use crate::sampling::{Decisions, Sampler};
use crate::telemetry::Telemetry;
use crate::wal::Wal;
use actix_web::{web, HttpServer};
use std::fs::File;
use std::io::Write;
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("data directory {0} is in use by another weft process")]
    Locked(String),
    #[error(transparent)]
    Index(#[from] crate::index::IndexError),
    #[error("trace id patterns: {0}")]
    Patterns(#[from] regex::Error),
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ServeError {
    let context = context.into();
    move |source| ServeError::Io { context, source }
}

/// Holds an exclusive lock on the data directory for the life of the process, so two weft
/// processes never write one WAL.
fn lock_data_dir(dir: &Path) -> Result<File, ServeError> {
    let path = dir.join("LOCK");
    let file = File::create(&path).map_err(io(format!("cannot create {}", path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => {
            Err(ServeError::Locked(dir.display().to_string()))
        }
        Err(std::fs::TryLockError::Error(e)) => {
            Err(io(format!("cannot lock {}", path.display()))(e))
        }
    }
}

fn bind(addr: &str, what: &str) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr).map_err(io(format!("cannot listen for {what} on {addr}")))
}

/// Re-indexes what the WAL holds beyond the checkpoint, then opens the WAL for appends.
fn replay_then_open(
    config: &Config,
    checkpoint: u64,
    indexer: Indexer,
    sampler: Arc<Sampler>,
    health: Arc<Health>,
    telemetry: Arc<Telemetry>,
    wal_cell: &OnceLock<Wal>,
) -> Result<(), String> {
    let started = Instant::now();
    let stats = Wal::replay(
        &config.data_dir,
        checkpoint,
        &telemetry,
        &mut |seq, batch, bytes| {
            sampler.observe(&batch);
            indexer.add(seq, Arc::new(batch), bytes)
        },
    )
    .map_err(|e| format!("WAL replay failed: {e}"))?;
    // A failing commit here degrades the indexer, which retries; the WAL keeps everything.
    if let Err(e) = indexer.flush() {
        tracing::error!(error = %e, "index commit after the replay failed; retrying");
    }
    let next_seq = stats.last_seq.max(checkpoint) + 1;
    let wal = Wal::start(
        &config.data_dir,
        &config.wal,
        next_seq,
        health,
        telemetry,
        Box::new(move |seq, batch, bytes| {
            sampler.observe(&batch);
            indexer.add(seq, batch, bytes)
        }),
    )
    .map_err(|e| format!("cannot open the WAL for writing: {e}"))?;
    let _ = wal_cell.set(wal);
    tracing::info!(
        replayed_batches = stats.replayed,
        corruptions = stats.corruptions,
        next_seq,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "WAL replay done; ready"
    );
    Ok(())
}

/// Where `weft serve` puts what it accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SinkMode {
    /// The write-ahead log and the indexes: the normal mode.
    Wal,
    /// Nowhere: receive, decode, validate and acknowledge only. The benchmark's ceiling.
    Null,
}

pub fn serve(config: Config, mode: SinkMode) -> Result<(), ServeError> {
    // Past a file size limit (RLIMIT_FSIZE) writes must fail with EFBIG, which the WAL turns
    // into 503s, instead of SIGXFSZ killing the process.
    // SAFETY: installs the "ignore" disposition for one signal; no handler code runs.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    let telemetry = Arc::new(Telemetry::new());
    std::fs::create_dir_all(&config.data_dir).map_err(io(format!(
        "cannot create data directory {}",
        config.data_dir.display()
    )))?;
    let _lock = lock_data_dir(&config.data_dir)?;
    let store = Store::open(&config.data_dir, &config.index, telemetry.clone())?;
    store.set_retention(crate::index::retention::Policy::from_config(
        &config.retention,
    ));
    // A damaged checkpoint only costs a longer replay: partitions know what they hold.
    let checkpoint = read_checkpoint(&config.data_dir).unwrap_or_else(|e| {
        tracing::error!(error = %e, "index checkpoint unreadable; replaying the WAL from the start");
        0
    });
    let health = Arc::new(Health::default());
    let wal_cell = Arc::new(OnceLock::new());
    let red = config.red.enabled.then(|| RedConfig {
        bucket_ns: config.red.bucket_secs * 1_000_000_000,
        max_series: config.red.max_series,
        store_unsampled: config.sampling.store_unsampled,
    });
    let indexer = Indexer::start(
        store.clone(),
        &config.index,
        config.data_dir.clone(),
        checkpoint,
        wal_cell.clone(),
        red,
        health.clone(),
    )
    .map_err(io("cannot start the indexer"))?;
    let extractor = Extractor::new(&config.extract)?;
    let sink = match mode {
        SinkMode::Wal => Sink::Wal(wal_cell.clone()),
        SinkMode::Null => Sink::Null,
    };
    let ingest = Arc::new(IngestService::new(
        sink,
        extractor,
        health.clone(),
        telemetry.clone(),
        config.limits.clone(),
    ));

    let http = bind(&config.http.listen, "HTTP")?;
    let query = match config.http.query_listen.as_str() {
        "" => None,
        addr => Some(bind(addr, "queries")?),
    };
    let grpc = bind(&config.grpc.listen, "gRPC")?;
    grpc.set_nonblocking(true).map_err(io("gRPC listener"))?;
    announce(&http, query.as_ref(), &grpc, &config);

    let auth = Arc::new(Auth::new(&config.auth));
    let grpc = start_grpc(grpc, ingest.clone(), auth.clone(), &config)?;

    let incidents = Incidents::open(&config.data_dir).map_err(io("cannot open incidents"))?;
    let decisions =
        Decisions::open(&config.data_dir).map_err(io("cannot open sampling decisions"))?;
    let sampler = Arc::new(Sampler::new(
        config.sampling.clone(),
        Arc::new(decisions),
        incidents.clone(),
    ));
    if mode == SinkMode::Wal && config.sampling.tail {
        crate::sampling::start(
            sampler.clone(),
            store.clone(),
            indexer.clone(),
            telemetry.clone(),
        )
        .map_err(io("cannot start the sampler"))?;
    }
    if mode == SinkMode::Wal {
        start_replay(
            &config, checkpoint, &indexer, &sampler, &health, &telemetry, &wal_cell,
        )?;
    }

    if mode == SinkMode::Wal && config.incidents.enabled {
        Detector {
            store: store.clone(),
            incidents: incidents.clone(),
            settings: config.incidents.clone(),
            anomalies: config.anomalies.clone(),
            skipped: Default::default(),
            caches: Default::default(),
            notify: crate::notify::Notifier::start(config.notify.clone())
                .map_err(io("cannot start the notifier"))?,
        }
        .start()
        .map_err(io("cannot start the incident detector"))?;
    }
    let correlator = Arc::new(Correlator::new(store.clone(), incidents.clone(), &config));
    let state = web::Data::new(AppState {
        config: config.clone(),
        auth,
        ingest,
        incidents,
        correlator,
        sampling: sampler,
    });
    run_http(state, http, query, &config)?;
    // HTTP has drained; gRPC stops taking new calls and finishes the ones it has.
    grpc.stop();
    stop_storage(&config, &indexer, &wal_cell);
    Ok(())
}

/// The gRPC listener's own thread and runtime, and how to stop it.
struct GrpcServer {
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl GrpcServer {
    /// Stops taking calls, finishes the ones in flight, and waits for the thread.
    fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}

fn start_grpc(
    listener: TcpListener,
    ingest: Arc<IngestService>,
    auth: Arc<Auth>,
    config: &Config,
) -> Result<GrpcServer, ServeError> {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let max_message = config.grpc.max_message_bytes;
    let body_timeout = std::time::Duration::from_secs(config.http.body_timeout_secs);
    let thread = std::thread::Builder::new()
        .name("weft-grpc".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("weft-grpc-worker")
                .enable_all()
                .build()
                .expect("tokio runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let stopped = async {
                    let _ = stopped.await;
                };
                let served =
                    api::grpc::serve(ingest, auth, listener, max_message, body_timeout, stopped);
                if let Err(e) = served.await {
                    tracing::error!(error = %e, "gRPC server failed");
                }
            });
        })
        .map_err(io("cannot start the gRPC thread"))?;
    Ok(GrpcServer { stop, thread })
}

/// Replays the WAL into the indexes on its own thread, then opens it for ingest; weft is
/// ready (and `/readyz` says so) when that is done.
fn start_replay(
    config: &Config,
    checkpoint: u64,
    indexer: &Indexer,
    sampler: &Arc<Sampler>,
    health: &Arc<Health>,
    telemetry: &Arc<Telemetry>,
    wal_cell: &Arc<OnceLock<Wal>>,
) -> Result<(), ServeError> {
    let (config, indexer, health) = (config.clone(), indexer.clone(), health.clone());
    let (sampler, telemetry, wal_cell) = (sampler.clone(), telemetry.clone(), wal_cell.clone());
    std::thread::Builder::new()
        .name("weft-replay".into())
        .spawn(move || {
            if let Err(e) = replay_then_open(
                &config, checkpoint, indexer, sampler, health, telemetry, &wal_cell,
            ) {
                tracing::error!(error = %e, "cannot become ready; exiting");
                std::process::exit(1);
            }
        })
        .map_err(io("cannot start the replay thread"))?;
    Ok(())
}

/// Serves HTTP (and the separate query listener, when there is one) until a signal stops it
/// and the requests in flight have drained.
fn run_http(
    state: web::Data<AppState>,
    http: TcpListener,
    query: Option<TcpListener>,
    config: &Config,
) -> Result<(), ServeError> {
    let grace = config.http.shutdown_grace_secs;
    let workers = match config.http.workers {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    };
    actix_web::rt::System::new().block_on(async move {
        let main_routes = if query.is_some() {
            Routes::Ingest
        } else {
            Routes::All
        };
        let server = |listener: TcpListener, routes: Routes| {
            let state = state.clone();
            HttpServer::new(move || api::app(state.clone(), routes))
                .workers(workers)
                .shutdown_timeout(grace)
                .listen(listener)
                .map(|s| s.run())
        };
        let main = server(http, main_routes).map_err(io("HTTP listener"))?;
        match query {
            None => main.await.map_err(io("HTTP server"))?,
            Some(listener) => {
                let query_server = server(listener, Routes::Query).map_err(io("query listener"))?;
                let (a, b) = futures_util::future::join(main, query_server).await;
                a.map_err(io("HTTP server"))?;
                b.map_err(io("query server"))?;
            }
        }
        Ok::<(), ServeError>(())
    })
}

/// A clean stop of storage: the WAL first, so every entry it acknowledged has reached the
/// indexer; then the final commit, after which the WAL lets go of what was indexed and a
/// clean stop leaves no log behind.
fn stop_storage(config: &Config, indexer: &Indexer, wal_cell: &OnceLock<Wal>) {
    let last_seq = wal_cell.get().and_then(Wal::shutdown);
    tracing::info!("stopping: committing indexes");
    match (indexer.flush(), last_seq) {
        (Ok(checkpoint), Some(last)) => {
            if let Err(e) = Wal::remove_through(&config.data_dir, checkpoint, last) {
                tracing::warn!(error = %e, "cannot remove indexed WAL segments");
            }
        }
        (Ok(_), None) => {}
        (Err(e), _) => {
            tracing::error!(error = %e, "final index commit failed; the WAL still holds the data")
        }
    }
}

/// One JSON line on stdout with the bound addresses (port 0 picks a free port), for scripts
/// and tests, and the same in the log.
fn announce(http: &TcpListener, query: Option<&TcpListener>, grpc: &TcpListener, config: &Config) {
    let addr = |l: &TcpListener| l.local_addr().map(|a| a.to_string()).unwrap_or_default();
    let line = serde_json::json!({
        "event": "listening",
        "http": addr(http),
        "query": query.map(addr),
        "grpc": addr(grpc),
        "data_dir": config.data_dir.display().to_string(),
    });
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
    tracing::info!(http = %addr(http), grpc = %addr(grpc), data_dir = %config.data_dir.display(), "listening");
}
