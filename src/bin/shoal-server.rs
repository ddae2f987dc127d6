//! `shoal-server`: a Shoal node as a standalone process, started like `redis-server`:
//!
//! ```text
//! shoal-server [/path/to/redis.conf] [--directive value ...]
//! ```
//!
//! It reads the configuration (file, then options), sets up logging as `loglevel` and
//! `logfile` say, opens the node with its RESP listener and runs until SIGINT, SIGTERM or
//! SHUTDOWN.

use shoal::config::file::{self, ConfigError};
use shoal::config::LogLevel;
use shoal::{Config, Node};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tracing::{info, warn, Level};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

fn usage() -> String {
    "Usage: ./shoal-server [/path/to/redis.conf] [options] [-]\n       \
     ./shoal-server - (read config from stdin)\n       \
     ./shoal-server -v or --version\n       \
     ./shoal-server -h or --help\n\n\
     Examples:\n       \
     ./shoal-server (run the server with default conf)\n       \
     ./shoal-server /etc/redis/6379.conf\n       \
     ./shoal-server --port 7777\n       \
     ./shoal-server /etc/myredis.conf --loglevel verbose -\n       \
     ./shoal-server /etc/myredis.conf --loglevel verbose\n"
        .to_string()
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("-v" | "--version") => {
            println!(
                "Shoal server v={} (Redis {} compatible) bits={}",
                shoal::VERSION,
                shoal::REDIS_VERSION,
                usize::BITS
            );
            return ExitCode::SUCCESS;
        }
        Some("-h" | "--help") => {
            eprint!("{}", usage());
            return ExitCode::from(1);
        }
        _ => {}
    }
    let config = match load_config(&args) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    if let Err(e) = init_logging(&config) {
        eprintln!("Can't open the log file: {e}");
        return ExitCode::from(1);
    }
    match run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            warn!("{e}");
            ExitCode::from(1)
        }
    }
}

/// The configuration from the file (the first argument unless it starts with `-`), standard
/// input (a `-` first or last) and the `--directive value` options, in that order.
fn load_config(args: &[String]) -> Result<Config, ConfigError> {
    let (file, mut options) = match args.split_first() {
        Some((first, rest)) if !first.starts_with('-') => (Some(PathBuf::from(first)), rest),
        _ => (None, args),
    };
    let mut stdin_text = None;
    if options.first().is_some_and(|a| a == "-") {
        options = &options[1..];
        stdin_text = Some(());
    } else if options.last().is_some_and(|a| a == "-") {
        options = &options[..options.len() - 1];
        stdin_text = Some(());
    }
    let stdin_text = match stdin_text {
        Some(()) => Some(
            std::io::read_to_string(std::io::stdin()).map_err(|e| ConfigError {
                line: None,
                reason: format!("Can't read the configuration from standard input: {e}"),
            })?,
        ),
        None => None,
    };
    let config = file::load(file.as_deref(), stdin_text.as_deref(), options)?;
    if config.daemonize {
        return Err(ConfigError {
            line: None,
            reason: "daemonize yes is not supported: run shoal-server under a service manager \
                     (systemd, a container) instead"
                .into(),
        });
    }
    Ok(config)
}

fn run(config: Config) -> Result<(), String> {
    info!("oO0OoO0OoO0Oo Shoal is starting oO0OoO0OoO0Oo");
    info!(
        "Shoal version={}, Redis compatibility={}, bits={}, pid={}, just started",
        shoal::VERSION,
        shoal::REDIS_VERSION,
        usize::BITS,
        std::process::id()
    );
    match &config.config_file {
        Some(path) => info!("Configuration loaded from {}", path.display()),
        None => warn!(
            "Warning: no config file specified, using the default config. In order to specify a config file use shoal-server /path/to/redis.conf"
        ),
    }
    raise_open_files_limit(config.maxclients);
    let mode = if config.cluster_enabled {
        "cluster"
    } else {
        "standalone"
    };
    info!("Running mode={mode}, port={}.", config.port);
    let pidfile = config.pidfile.clone();
    if let Some(path) = &pidfile {
        if let Err(e) = std::fs::write(path, format!("{}\n", std::process::id())) {
            warn!("Failed to write PID file {}: {e}", path.display());
        }
    }
    let node = Node::open(config).map_err(|e| format!("Failed to start the server: {e}"))?;
    info!("Server initialized");
    info!("Ready to accept connections");
    wait_for_shutdown(&node);
    info!("Shoal is stopping: closing client connections");
    drop(node);
    if let Some(path) = &pidfile {
        info!("Removing the pid file.");
        let _ = std::fs::remove_file(path);
    }
    warn!("Shoal is now ready to exit, bye bye...");
    Ok(())
}

/// Blocks until SIGINT, SIGTERM or SHUTDOWN.
fn wait_for_shutdown(node: &Node) {
    use tokio::signal::unix::{signal, SignalKind};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime needs no resources that can fail");
    runtime.block_on(async {
        let (Ok(mut interrupt), Ok(mut terminate)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            warn!("Cannot install signal handlers: SHUTDOWN is the only way to stop");
            node.engine().shutdown().wait().await;
            return;
        };
        tokio::select! {
            _ = interrupt.recv() => warn!("Received SIGINT scheduling shutdown..."),
            _ = terminate.recv() => warn!("Received SIGTERM scheduling shutdown..."),
            _ = node.engine().shutdown().wait() => {}
        }
    });
}

/// Raises the open-files limit to fit `maxclients` plus the node's own files, as Redis does.
fn raise_open_files_limit(maxclients: u64) {
    const RESERVED_FDS: u64 = 32;
    let wanted = maxclients + RESERVED_FDS;
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 || limit.rlim_cur >= wanted {
            return;
        }
        let old = limit.rlim_cur;
        limit.rlim_cur = wanted.min(limit.rlim_max);
        if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
            info!(
                "Increased maximum number of open files to {} (it was originally set to {old}).",
                limit.rlim_cur
            );
        }
        if limit.rlim_cur < wanted {
            warn!(
                "You requested maxclients of {maxclients} requiring at least {wanted} max file descriptors, but the limit is {}.",
                limit.rlim_cur
            );
        }
    }
}

fn init_logging(config: &Config) -> std::io::Result<()> {
    let level = match config.loglevel {
        LogLevel::Debug => Some(Level::TRACE),
        LogLevel::Verbose => Some(Level::DEBUG),
        LogLevel::Notice => Some(Level::INFO),
        LogLevel::Warning => Some(Level::WARN),
        LogLevel::Nothing => None,
    };
    let filter = tracing_subscriber::filter::LevelFilter::from(level);
    let builder = tracing_subscriber::fmt()
        .with_max_level(filter)
        .with_ansi(false)
        .event_format(RedisFormat);
    if config.logfile.is_empty() {
        builder.with_writer(std::io::stdout).init();
    } else {
        let file = open_log(Path::new(&config.logfile))?;
        builder.with_writer(std::sync::Mutex::new(file)).init();
    }
    Ok(())
}

fn open_log(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

/// Log lines as Redis writes them: `pid:M 22 Nov 2026 10:00:00.123 * message`, with `.`
/// for debug, `-` verbose, `*` notice and `#` warning.
struct RedisFormat;

impl<S, N> FormatEvent<S, N> for RedisFormat
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> fmt::Result {
        let mark = match *event.metadata().level() {
            Level::TRACE => '.',
            Level::DEBUG => '-',
            Level::INFO => '*',
            _ => '#',
        };
        write!(
            writer,
            "{}:M {} {mark} ",
            std::process::id(),
            LocalTime::now()
        )?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// The local time, formatted as Redis's log does.
struct LocalTime(libc::tm, u32);

impl LocalTime {
    fn now() -> LocalTime {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let secs = now.as_secs() as libc::time_t;
        // SAFETY: localtime_r writes only into the zeroed struct we own.
        let mut tm: libc::tm = unsafe { std::mem::zeroed() };
        unsafe { libc::localtime_r(&secs, &mut tm) };
        LocalTime(tm, now.subsec_millis())
    }
}

impl fmt::Display for LocalTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        let tm = &self.0;
        write!(
            f,
            "{:02} {} {} {:02}:{:02}:{:02}.{:03}",
            tm.tm_mday,
            MONTHS[tm.tm_mon.clamp(0, 11) as usize],
            tm.tm_year + 1900,
            tm.tm_hour,
            tm.tm_min,
            tm.tm_sec,
            self.1
        )
    }
}
