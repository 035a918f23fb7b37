//! `callhelper-licence-server`: the licence server and its admin command line.
//!
//! ```text
//! callhelper-licence-server keygen                       # create the vendor signing key
//! callhelper-licence-server issue --customer "ACME" --seats 10 --expires 2027-12-31
//! callhelper-licence-server serve --listen 127.0.0.1:8470
//! callhelper-licence-server list | revoke ID | activations ID
//! ```
//!
//! The database is `--db` (a SQLite file, or a `postgres://` URL when built with the
//! `postgres` feature); the signing key is `--key`. Both also come from the environment
//! (`CALLHELPER_LICENCE_DB`, `CALLHELPER_LICENCE_KEY`).

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use callhelper_licence::LicenceId;
use callhelper_licence::time::{DAY, format_datetime, last_day, now, parse_date};
use callhelper_licence_server::db::Store;
use callhelper_licence_server::http::{self, Limits};
use callhelper_licence_server::ratelimit::RateConfig;
use callhelper_licence_server::service::{self, LeaseTerms, NewLicence, Service};
use callhelper_licence_server::{keyfile, sqlite};
use clap::{Parser, Subcommand};

/// The CallHelper licence server: issues licence keys, counts seats, signs leases.
#[derive(Debug, Parser)]
#[command(name = "callhelper-licence-server", version, about)]
struct Cli {
    /// The database: a SQLite file, or a postgres:// URL (builds with the `postgres`
    /// feature).
    #[arg(
        long,
        global = true,
        env = "CALLHELPER_LICENCE_DB",
        default_value = "licence-server.sqlite3"
    )]
    db: String,
    /// The vendor's signing key file (create it with `keygen`; keep it secret).
    #[arg(
        long,
        global = true,
        env = "CALLHELPER_LICENCE_KEY",
        default_value = "licence-signing.key"
    )]
    key: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create the vendor signing key (never overwrites) and print its public key, which
    /// CallHelper builds embed (CALLHELPER_LICENCE_VENDOR_KEY).
    Keygen,
    /// Print the public key of the signing key.
    PublicKey,
    /// Issue a licence key: prints the key on standard output.
    Issue {
        /// The customer (an organisation's name as on the contract).
        #[arg(long)]
        customer: String,
        /// How many computers may use it at once.
        #[arg(long)]
        seats: u32,
        /// A feature it enables (repeat for several).
        #[arg(long = "feature", value_name = "NAME")]
        features: Vec<String>,
        /// Last day of the term, YYYY-MM-DD (UTC; the licence ends at the end of that day).
        #[arg(long, conflicts_with = "days", required_unless_present = "days")]
        expires: Option<String>,
        /// Length of the term in days from now.
        #[arg(long)]
        days: Option<u64>,
    },
    /// List the licences with their seats in use.
    List {
        /// Print JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a licence: its computers stop at their next renewal.
    Revoke {
        /// The licence id.
        id: String,
    },
    /// Show the activations (seats) of a licence.
    Activations {
        /// The licence id.
        id: String,
        /// Print JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print a licence's key again (to resend it to the customer).
    ShowKey {
        /// The licence id.
        id: String,
    },
    /// Run the HTTP service.
    Serve {
        /// Address to listen on; port 0 picks a free port. The bound address is printed
        /// first on standard output: `listening on http://ADDR`.
        #[arg(long, default_value = "127.0.0.1:8470")]
        listen: SocketAddr,
        /// Lease length in seconds (how long a computer may stay offline).
        #[arg(long, default_value_t = 14 * DAY)]
        lease_seconds: u64,
        /// Seconds after issue when the app renews its lease.
        #[arg(long, default_value_t = DAY)]
        renew_seconds: u64,
        /// Sustained requests per second allowed per client address.
        #[arg(long, default_value_t = 2.0)]
        rate: f64,
        /// Burst of requests allowed per client address.
        #[arg(long, default_value_t = 20.0)]
        burst: f64,
        /// Requests handled at once; more are answered 503.
        #[arg(long, default_value_t = 256)]
        max_in_flight: usize,
        /// Longest time for one request, in seconds.
        #[arg(long, default_value_t = 10)]
        timeout: u64,
        /// Take the client address from X-Forwarded-For (only behind a proxy that sets it).
        #[arg(long)]
        trust_forwarded_for: bool,
        /// Log one line per request (method, path, status, time).
        #[arg(long)]
        log_requests: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), String> {
    match &cli.command {
        Command::Keygen => {
            let key = keyfile::create(&cli.key)?;
            eprintln!(
                "created the signing key {} (keep it secret and backed up)",
                cli.key.display()
            );
            println!("{}", key.public().to_hex());
            return Ok(());
        }
        Command::PublicKey => {
            println!("{}", keyfile::load(&cli.key)?.public().to_hex());
            return Ok(());
        }
        _ => {}
    }
    if cli.db.starts_with("postgres://") || cli.db.starts_with("postgresql://") {
        #[cfg(feature = "postgres")]
        {
            let store = callhelper_licence_server::postgres::Postgres::connect(&cli.db)
                .map_err(|e| e.to_string())?;
            return with_store(store, &cli);
        }
        #[cfg(not(feature = "postgres"))]
        return Err("this build has no PostgreSQL support (build with --features postgres)".into());
    }
    let store = sqlite::Sqlite::open(std::path::Path::new(&cli.db))
        .map_err(|e| format!("{}: {e}", cli.db))?;
    with_store(store, &cli)
}

fn licence_id(text: &str) -> Result<LicenceId, String> {
    LicenceId::parse(text)
        .ok_or_else(|| format!("{text:?} is not a licence id (26 characters A-Z, 2-7)"))
}

fn with_store<S: Store>(store: S, cli: &Cli) -> Result<(), String> {
    store.migrate().map_err(|e| e.to_string())?;
    let now = now();
    match &cli.command {
        Command::Keygen | Command::PublicKey => unreachable!("handled before opening the database"),
        Command::Issue {
            customer,
            seats,
            features,
            expires,
            days,
        } => {
            let expires = match (expires, days) {
                (Some(date), _) => {
                    parse_date(date)
                        .ok_or_else(|| format!("{date:?} is not a date (YYYY-MM-DD)"))?
                        + DAY
                }
                (None, Some(d)) => now.saturating_add(d.saturating_mul(DAY)),
                (None, None) => return Err("give --expires or --days".into()),
            };
            if expires <= now {
                return Err("the licence would already be expired".into());
            }
            let service = Service::new(store, keyfile::load(&cli.key)?, LeaseTerms::default());
            let order = NewLicence {
                customer: customer.clone(),
                seats: *seats,
                features: features.clone(),
                expires,
            };
            let (id, text) = service
                .issue(&order, keyfile::random_id()?, now)
                .map_err(|e| e.to_string())?;
            eprintln!(
                "issued licence {id}: {seats} {} until {}",
                if *seats == 1 { "seat" } else { "seats" },
                format_datetime(expires)
            );
            println!("{text}");
        }
        Command::List { json } => {
            let rows = service::list(&store, now).map_err(|e| e.to_string())?;
            if !json {
                println!(
                    "{:<26}  {:>11}  {:<10}  {:<7}  CUSTOMER",
                    "ID", "SEATS USED", "VALID TO", "STATE"
                );
            }
            for (r, used) in rows {
                let state = if r.revoked_at.is_some() {
                    "revoked"
                } else if r.expires <= now as i64 {
                    "expired"
                } else {
                    "active"
                };
                if *json {
                    let line = serde_json::json!({"id": r.id, "customer": r.customer, "seats": r.seats,
                        "used": used, "expires": r.expires, "state": state});
                    println!("{line}");
                } else {
                    let seats = format!("{used}/{}", r.seats);
                    let expires = last_day(r.expires.max(0) as u64);
                    println!(
                        "{:<26}  {seats:>11}  {expires:<10}  {state:<7}  {}",
                        r.id, r.customer
                    );
                }
            }
        }
        Command::Revoke { id } => {
            if !service::revoke(&store, &licence_id(id)?, now).map_err(|e| e.to_string())? {
                return Err(format!("no licence {id}"));
            }
            eprintln!("revoked {id}: its computers stop at their next renewal");
        }
        Command::Activations { id, json } => {
            let (licence, acts) = service::activations(&store, &licence_id(id)?)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("no licence {id}"))?;
            if !json {
                println!("licence {} (seats: {})", licence.id, licence.seats);
                println!(
                    "{:>4}  {:<12}  {:<20}  {:<20}  {:<20}  STATE",
                    "SEAT", "MACHINE", "ACTIVATED", "RENEWED", "LEASE UNTIL"
                );
            }
            for a in acts {
                let state = if a.lease_until > now as i64 {
                    "live"
                } else {
                    "ended"
                };
                if *json {
                    let line = serde_json::json!({"seat": a.seat, "machine": a.machine, "activated_at": a.activated_at,
                        "renewed_at": a.renewed_at, "lease_until": a.lease_until, "state": state});
                    println!("{line}");
                } else {
                    let t = |v: i64| format_datetime(v.max(0) as u64);
                    let machine = a.machine.get(..12).unwrap_or(&a.machine);
                    println!(
                        "{:>4}  {machine:<12}  {:<20}  {:<20}  {:<20}  {state}",
                        a.seat,
                        t(a.activated_at),
                        t(a.renewed_at),
                        t(a.lease_until)
                    );
                }
            }
        }
        Command::ShowKey { id } => {
            let (licence, _) = service::activations(&store, &licence_id(id)?)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("no licence {id}"))?;
            println!("{}", licence.key_text);
        }
        Command::Serve {
            listen,
            lease_seconds,
            renew_seconds,
            rate,
            burst,
            max_in_flight,
            timeout,
            trust_forwarded_for,
            log_requests,
        } => {
            if *lease_seconds == 0 || renew_seconds > lease_seconds {
                return Err(
                    "--renew-seconds must be at most --lease-seconds, which must be positive"
                        .into(),
                );
            }
            if !(rate.is_finite() && *rate > 0.0 && burst.is_finite() && *burst >= 1.0) {
                return Err("--rate must be positive and --burst at least 1".into());
            }
            let terms = LeaseTerms {
                lease_secs: *lease_seconds,
                renew_secs: *renew_seconds,
            };
            let limits = Limits {
                rate: RateConfig {
                    per_second: *rate,
                    burst: *burst,
                    ..RateConfig::default()
                },
                max_in_flight: *max_in_flight,
                timeout: Duration::from_secs((*timeout).max(1)),
                trust_forwarded_for: *trust_forwarded_for,
                log_requests: *log_requests,
            };
            let service = Arc::new(Service::new(store, keyfile::load(&cli.key)?, terms));
            serve(service, *listen, limits)?;
        }
    }
    Ok(())
}

fn serve<S: Store>(
    service: Arc<Service<S>>,
    listen: SocketAddr,
    limits: Limits,
) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        println!("listening on http://{addr}");
        let _ = std::io::stdout().flush();
        http::serve(listener, service, limits, shutdown_signal())
            .await
            .map_err(|e| format!("server failed: {e}"))?;
        eprintln!("licence server stopped");
        Ok(())
    })
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
