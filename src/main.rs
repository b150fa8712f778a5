//! The `swarmgate` binary: parses the command line, loads the static configuration, runs the application
//! until SIGTERM/SIGINT. Everything else lives in the library so tests and benches run the same code.

use std::io::IsTerminal;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use swarmgate::{app, config};

/// Ingress load balancer for Docker Swarm. Reads Traefik's static configuration: `--configfile`, a
/// `traefik.yml`/`traefik.toml` in the usual places, Traefik flags (`--entrypoints.web.address=:80`,
/// `--providers.file.filename=dynamic.yml`, …) or `TRAEFIK_*` environment variables.
#[derive(Parser, Debug)]
#[command(
    name = "swarmgate",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Traefik static-configuration flags, e.g. `--entrypoints.web.address=:80`.
    #[arg(
        value_name = "TRAEFIK_FLAGS",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    flags: Vec<String>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Start the demo: two whoami backends on 127.0.0.1:9001/9002 and swarmgate on :8080 with config/demo.yml.
    Demo,
    /// Lint a compose/stack file: print the routers swarmgate (and Traefik) would build from its labels, as
    /// JSON shaped like Traefik's /api/rawdata; errors and warnings on stderr. Exit 0 if every router builds.
    Check {
        /// The compose or stack file.
        file: std::path::PathBuf,
        /// Stack (or compose project) name used in service names; default: the file's directory name.
        #[arg(long)]
        name: Option<String>,
        /// Provider flags (`--providers.swarm …`); default: the `command:` of the file's Traefik service.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        flags: Vec<String>,
    },
    /// Ask a running swarmgate whether it is healthy: requests `/ping` on ping's entrypoint, found from the
    /// same static configuration (flags, `TRAEFIK_*` environment, file) the instance runs with. Exit 0 when
    /// it answers 200, else 1 — for a Docker `HEALTHCHECK` (`traefik healthcheck` behaves the same way).
    Healthcheck {
        /// Traefik static-configuration flags, e.g. `--ping --entrypoints.traefik.address=:8080`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        flags: Vec<String>,
    },
    /// ACME storage migration: move a Traefik `acme.json` into Swarm storage (`swarm://<prefix>`) and back,
    /// without re-issuing. Uses the Docker API at `DOCKER_HOST` (default: the local socket) of a manager.
    Acme {
        #[command(subcommand)]
        action: AcmeAction,
    },
    /// Guard the Docker socket: listen on a unix or TCP socket and forward to the engine only the API calls
    /// swarmgate makes (reads of version, info, events, services, tasks, nodes, networks, containers, image
    /// inspect, configs); everything else is refused with 403. Point `--providers.swarm.endpoint` at it.
    SocketGuard(SocketGuardArgs),
    /// Run the whoami test backend.
    Whoami {
        /// Address to listen on.
        #[arg(long, default_value = "0.0.0.0:80")]
        listen: String,
        /// Name shown in answers.
        #[arg(long, default_value = "whoami")]
        name: String,
    },
}

/// `swarmgate acme …`.
#[derive(Subcommand, Debug)]
enum AcmeAction {
    /// Write the certificates (and swarmgate's account) of an `acme.json` into a Swarm store.
    Import {
        /// The `acme.json` (Traefik's format).
        file: std::path::PathBuf,
        /// Target store, `swarm://<prefix>` (as in `certificatesResolvers.<r>.acme.storage`).
        #[arg(long)]
        storage: String,
        /// Key file sealing private keys (default `/run/secrets/swarmgate-acme-key`).
        #[arg(long)]
        key_file: Option<String>,
    },
    /// Write a Swarm store's certificates and account as an `acme.json` (mode 0600).
    Export {
        /// Source store, `swarm://<prefix>`.
        #[arg(long)]
        storage: String,
        /// Key file sealing private keys (default `/run/secrets/swarmgate-acme-key`).
        #[arg(long)]
        key_file: Option<String>,
        /// Output file (default: `acme.json`).
        #[arg(long, short, default_value = "acme.json")]
        output: std::path::PathBuf,
    },
}

/// `swarmgate acme import|export`: prints what was done; errors exit non-zero.
async fn acme_command(action: AcmeAction) -> anyhow::Result<()> {
    use swarmgate::tls::acme::swarm::migrate;
    match action {
        AcmeAction::Import {
            file,
            storage,
            key_file,
        } => {
            let store = migrate::open(&storage, key_file.as_deref()).await?;
            let done = migrate::import_file(&store, &file).await?;
            println!(
                "imported {} into {storage}: {} certificate(s) written, {} already present, {} account(s) written{}",
                file.display(),
                done.certificates,
                done.unchanged,
                done.accounts,
                if done.traefik_accounts_skipped > 0 {
                    format!("; {} Traefik (RSA) account(s) not imported: swarmgate registers its own at the next order", done.traefik_accounts_skipped)
                } else {
                    String::new()
                }
            );
        }
        AcmeAction::Export {
            storage,
            key_file,
            output,
        } => {
            let store = migrate::open(&storage, key_file.as_deref()).await?;
            migrate::export_file(&store, &output)?;
            let n: usize = migrate::export(&store)
                .resolvers
                .values()
                .map(|d| d.certificates.len())
                .sum();
            println!(
                "exported {storage} to {}: {n} certificate(s)",
                output.display()
            );
        }
    }
    Ok(())
}

/// `swarmgate socket-guard` flags (docs/socket-guard.md).
#[derive(clap::Args, Debug)]
struct SocketGuardArgs {
    /// Where to listen: `tcp://0.0.0.0:2375`, `:2375` or `unix:///run/swarmgate-guard.sock`.
    #[arg(long, default_value = "tcp://0.0.0.0:2375")]
    listen: String,
    /// The engine's socket.
    #[arg(long, default_value = "/var/run/docker.sock")]
    docker: std::path::PathBuf,
    /// Also let Swarm config writes through (create, update, remove): the Swarm certificate store needs them.
    #[arg(long)]
    allow_config_writes: bool,
    /// At most this many client connections at once (event streams included).
    #[arg(long, default_value_t = 128)]
    max_connections: usize,
    /// Log level: error, warn, info, debug.
    #[arg(long = "log.level", default_value = "info")]
    log_level: String,
}

/// Runs the socket guard until SIGTERM/SIGINT.
async fn socket_guard(args: SocketGuardArgs) -> anyhow::Result<()> {
    init_logging(Some(&args.log_level), false);
    let listen = swarmgate::guard::Listen::parse(&args.listen)?;
    let mut cfg = swarmgate::guard::GuardConfig::new(listen, args.docker);
    cfg.policy.config_writes = args.allow_config_writes;
    cfg.max_connections = args.max_connections;
    let cancel = CancellationToken::new();
    let c = cancel.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        c.cancel();
    });
    swarmgate::guard::run(cfg, cancel).await?;
    Ok(())
}

const DEMO_DYNAMIC: &str = include_str!("../config/demo.yml");

fn init_logging(level: Option<&str>, json: bool) {
    let level = match level.map(str::to_ascii_lowercase).as_deref() {
        Some("trace") => "trace",
        Some("debug") => "debug",
        Some("warn") => "warn",
        Some("error") | Some("fatal") | Some("panic") => "error",
        _ => "info",
    };
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("SWARMGATE_LOG").unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new(format!("{level},hyper=warn,hyper_util=warn"))
        });
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stdout().is_terminal());
    if json {
        b.json().init();
    } else {
        b.init();
    }
}

/// The allocator: jemalloc, whose freed pages go back to the system after a decay time (10 s) from a
/// background thread. glibc's malloc kept everything a burst of connections had used (RSS 230 MiB a minute
/// after 5,000 connections closed; benches/RESULTS.md, issue 21).
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> anyhow::Result<()> {
    // Without its background thread jemalloc purges only while the process allocates, so an idle proxy
    // would keep a burst's pages. Failing to start it only costs memory, never correctness.
    if let Err(e) = tikv_jemalloc_ctl::background_thread::write(true) {
        eprintln!("jemalloc background thread not started: {e}");
    }
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    match cli.command {
        Some(Command::Whoami { listen, name }) => rt.block_on(async move {
            init_logging(None, false);
            let l = tokio::net::TcpListener::bind(&listen)
                .await
                .with_context(|| format!("listening on {listen}"))?;
            tracing::info!("whoami {name} listening on {}", l.local_addr()?);
            let cancel = CancellationToken::new();
            tokio::spawn(swarmgate::whoami::serve(l, name, cancel.clone()));
            shutdown_signal().await;
            cancel.cancel();
            Ok(())
        }),
        Some(Command::Demo) => rt.block_on(demo()),
        Some(Command::Acme { action }) => rt.block_on(acme_command(action)),
        Some(Command::SocketGuard(args)) => rt.block_on(socket_guard(args)),
        Some(Command::Check { file, name, flags }) => {
            std::process::exit(swarmgate::check::run(&file, &flags, name.as_deref()))
        }
        // `swarmgate healthcheck`: the container HEALTHCHECK, a GET of the ping endpoint; exit code 0 or 1.
        Some(Command::Healthcheck { flags }) => {
            let env: Vec<(String, String)> = std::env::vars().collect();
            let code = match config::load(&flags, &env) {
                Err(e) => {
                    eprintln!("swarmgate healthcheck: {e}");
                    1
                }
                Ok(loaded) => match rt.block_on(swarmgate::admin::healthcheck::run(&loaded.config))
                {
                    Ok(()) => {
                        println!(
                            "OK: {}",
                            swarmgate::admin::healthcheck::ping_address(&loaded.config)
                                .map(|a| a.to_string())
                                .unwrap_or_default()
                        );
                        0
                    }
                    Err(e) => {
                        eprintln!("swarmgate healthcheck: {e}");
                        1
                    }
                },
            };
            std::process::exit(code)
        }
        None => rt.block_on(run_flags(cli.flags)),
    }
}

async fn run_flags(flags: Vec<String>) -> anyhow::Result<()> {
    let env: Vec<(String, String)> = std::env::vars().collect();
    let loaded = match config::load(&flags, &env) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("swarmgate: {e}");
            std::process::exit(2);
        }
    };
    let json = loaded.config.log.format.as_deref() == Some("json");
    init_logging(loaded.config.log.level.as_deref(), json);
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        "static configuration from {}",
        loaded.origin
    );
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    run_app(loaded.config).await
}

async fn run_app(cfg: config::StaticConfig) -> anyhow::Result<()> {
    app::raise_open_files_limit();
    let listeners = match app::bind(&cfg).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("{e}");
            std::process::exit(2);
        }
    };
    let (reload_tx, reload_rx) = tokio::sync::mpsc::channel(1);
    let control = app::Control {
        shutdown: CancellationToken::new(),
        reload: reload_tx,
    };
    let c = control.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        c.shutdown.cancel();
    });
    spawn_sighup(control.reload.clone());
    app::run(cfg, listeners, control, reload_rx).await?;
    Ok(())
}

#[allow(clippy::disallowed_methods)] // start-up, before serving: writes the demo config to a temp file
async fn demo() -> anyhow::Result<()> {
    init_logging(None, false);
    let path = std::path::Path::new("config/demo.yml");
    let path = if path.is_file() {
        path.to_path_buf()
    } else {
        let p = std::env::temp_dir().join("swarmgate-demo.yml");
        std::fs::write(&p, DEMO_DYNAMIC).with_context(|| format!("writing {}", p.display()))?;
        p
    };
    let cancel = CancellationToken::new();
    for (addr, name) in [
        ("127.0.0.1:9001", "whoami-a"),
        ("127.0.0.1:9002", "whoami-b"),
    ] {
        let l = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("demo backend on {addr}"))?;
        tokio::spawn(swarmgate::whoami::serve(l, name.into(), cancel.clone()));
    }
    let flags = vec![
        "--entrypoints.web.address=:8080".to_string(),
        format!("--providers.file.filename={}", path.display()),
        "--providers.file.watch=true".to_string(),
    ];
    let loaded = config::load(&flags, &[]).context("demo configuration")?;
    tracing::info!(
        "demo: try `curl -H 'Host: demo.localhost' http://127.0.0.1:8080/` (edit {} live)",
        path.display()
    );
    run_app(loaded.config).await
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn spawn_sighup(tx: tokio::sync::mpsc::Sender<()>) {
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut hup) = signal(SignalKind::hangup()) {
            while hup.recv().await.is_some() {
                tracing::info!("SIGHUP: re-reading the file provider");
                let _ = tx.try_send(());
            }
        }
    });
}
