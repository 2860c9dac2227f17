//! The generator's options: the command line (every option documented in
//! `--help`, each also readable from a `LOADGEN_…` variable) and its
//! validation into [`Options`].

use std::path::PathBuf;
use std::time::Duration;

use clap::{Arg, ArgAction, ArgMatches, Command};

use crate::journey::Mix;

/// How arrivals are made.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// A fixed number of arrivals per second, each the next step of an idle
    /// shopper; latency counts from the intended send time.
    Open { rate: f64 },
    /// N shoppers, each sending its next step when the last one finished
    /// (and its think time passed).
    Closed { shoppers: usize },
}

/// What a new shopper session does before browsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionAuth {
    /// Reuses the token its pool account got before measuring.
    Token,
    /// Logs in (argon2 verify on the shop), measured.
    Login,
    /// Registers a new account and logs in (argon2 hash and verify), measured.
    Register,
}

/// Think time between a shopper's steps: uniform in `min..=max`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Think {
    pub min: Duration,
    pub max: Duration,
}

impl Think {
    pub const NONE: Think = Think {
        min: Duration::ZERO,
        max: Duration::ZERO,
    };

    /// `0`, `1s` or a range `500ms-2s`.
    pub fn parse(s: &str) -> Result<Think, String> {
        let one = |s: &str| -> Result<Duration, String> {
            let s = s.trim();
            if s == "0" {
                return Ok(Duration::ZERO);
            }
            humantime::parse_duration(s).map_err(|e| format!("`{s}`: {e}"))
        };
        let (min, max) = match s.split_once('-') {
            Some((a, b)) => (one(a)?, one(b)?),
            None => (one(s)?, one(s)?),
        };
        if min > max {
            return Err(format!("`{s}`: the minimum is above the maximum"));
        }
        Ok(Think { min, max })
    }

    pub fn mean(&self) -> Duration {
        (self.min + self.max) / 2
    }

    pub fn draw(&self, rng: &mut fastrand::Rng) -> Duration {
        if self.max == self.min {
            return self.min;
        }
        let span = (self.max - self.min).as_micros() as u64;
        self.min + Duration::from_micros(rng.u64(0..=span))
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    pub base: String,
    pub mode: Mode,
    pub duration: Duration,
    pub think: Think,
    pub mix: Mix,
    pub accounts: Option<usize>,
    pub session_steps: u32,
    pub session_auth: SessionAuth,
    pub mail_budget: u32,
    pub setup_concurrency: usize,
    pub timeout: Duration,
    pub card: String,
    pub mail_dir: Option<PathBuf>,
    pub mail_api: Option<String>,
    pub stats_url: Option<String>,
    pub internal_key: Option<String>,
    pub settle_timeout: Duration,
    pub report: PathBuf,
    pub plot: PathBuf,
    pub seed: u64,
    pub progress: bool,
}

pub fn command() -> Command {
    let duration = |s: &str| humantime::parse_duration(s).map_err(|e| e.to_string());
    Command::new("loadgen")
        .about("Load generator for the shop: virtual shoppers follow a weighted journey through the public API (register/login, browse, search, cart, checkout, pay, order history) at a fixed arrival rate or with a fixed number of shoppers, then the run's orders, confirmation emails and stats events are checked.")
        .after_help("Exit status: 0 when every request succeeded and every consistency check that could run passed; 1 when a request failed or a check failed; 2 on bad options or when the shop could not be prepared (no products, accounts could not be registered).\n\nEvery option can also be set by the variable named in brackets.")
        .arg(
            Arg::new("base")
                .long("base")
                .value_name("URL")
                .env("LOADGEN_BASE")
                .default_value("http://127.0.0.1:8080")
                .help("Base URL of the shop (its balancer); every journey request goes there"),
        )
        .arg(
            Arg::new("rate")
                .long("rate")
                .value_name("PER_SECOND")
                .env("LOADGEN_RATE")
                .value_parser(clap::value_parser!(f64))
                .conflicts_with("shoppers")
                .help("Open loop: arrivals per second, each the next step of an idle shopper; latency counts from the intended send time, so queueing in the shop or in the generator shows (default when --shoppers is not given: 100)"),
        )
        .arg(
            Arg::new("shoppers")
                .long("shoppers")
                .value_name("N")
                .env("LOADGEN_SHOPPERS")
                .value_parser(clap::value_parser!(usize))
                .help("Closed loop: this many shoppers, each sending its next step when the previous one answered and its think time passed"),
        )
        .arg(
            Arg::new("duration")
                .long("duration")
                .value_name("DURATION")
                .env("LOADGEN_DURATION")
                .default_value("60s")
                .value_parser(duration)
                .help("How long to generate load (10s, 2m…); setup before and the consistency check after are not counted"),
        )
        .arg(
            Arg::new("think-time")
                .long("think-time")
                .value_name("DURATION[-DURATION]")
                .env("LOADGEN_THINK_TIME")
                .default_value("0")
                .value_parser(Think::parse)
                .help("Pause of a shopper between two steps: 0 (stress), a duration (1s) or a uniform range (500ms-3s)"),
        )
        .arg(
            Arg::new("mix")
                .long("mix")
                .value_name("NAME=WEIGHT,…")
                .env("LOADGEN_MIX")
                .default_value(Mix::DEFAULT_SPEC)
                .value_parser(|s: &str| Mix::parse(s))
                .help("Weights of the journey's steps, name=weight separated by commas; names: browse (GET /product/{id}), view_cart, add_to_cart, list (GET /products/), checkout (checkout, then pay the invoice as the next step), search (GET /products/?q=), orders (order history). Omitted names weigh 0. Default: Online Boutique's weights plus search and history"),
        )
        .arg(
            Arg::new("accounts")
                .long("accounts")
                .value_name("N")
                .env("LOADGEN_ACCOUNTS")
                .value_parser(clap::value_parser!(usize))
                .help("Accounts registered and logged in before measuring (default: enough for the shoppers, the expected concurrency and the expected orders within --mail-budget)"),
        )
        .arg(
            Arg::new("session-steps")
                .long("session-steps")
                .value_name("N")
                .env("LOADGEN_SESSION_STEPS")
                .default_value("20")
                .value_parser(clap::value_parser!(u32).range(1..))
                .help("Steps in one shopper session; then the shopper leaves and a new session starts on the pool account with the most mail budget left"),
        )
        .arg(
            Arg::new("session-auth")
                .long("session-auth")
                .value_name("HOW")
                .env("LOADGEN_SESSION_AUTH")
                .default_value("token")
                .value_parser(["token", "login", "register"])
                .help("How a session starts: token (reuse the pool account's token; argon2 stays out of the measurement), login (log in, measured; mind the shop's per-email and per-IP login limits) or register (register a new account and log in, measured)"),
        )
        .arg(
            Arg::new("mail-budget")
                .long("mail-budget")
                .value_name("N")
                .env("LOADGEN_MAIL_BUDGET")
                .default_value("10")
                .value_parser(clap::value_parser!(u32).range(2..))
                .help("Emails the shop's mailer sends one recipient within its window (the mailer's recipient_limit, 10 per hour by default); an account gets at most this many emails in a run (its welcome email and one confirmation per paid order), so no confirmation waits for the window"),
        )
        .arg(
            Arg::new("setup-concurrency")
                .long("setup-concurrency")
                .value_name("N")
                .env("LOADGEN_SETUP_CONCURRENCY")
                .default_value("4")
                .value_parser(clap::value_parser!(usize))
                .help("Registrations and logins in flight at once while preparing the account pool (each costs the shop an argon2 hash); a 429 is waited out as its Retry-After says"),
        )
        .arg(
            Arg::new("timeout")
                .long("timeout")
                .value_name("DURATION")
                .env("LOADGEN_TIMEOUT")
                .default_value("10s")
                .value_parser(duration)
                .help("Per-request timeout; a request that takes longer counts as an error"),
        )
        .arg(
            Arg::new("card")
                .long("card")
                .value_name("NUMBER")
                .env("LOADGEN_CARD")
                .default_value("4242424242424242")
                .help("Card number invoices are paid with (a test card that pays)"),
        )
        .arg(
            Arg::new("mail-dir")
                .long("mail-dir")
                .value_name("DIR")
                .env("LOADGEN_MAIL_DIR")
                .value_parser(clap::value_parser!(PathBuf))
                .conflicts_with("mail-api")
                .help("The mailer's .eml outbox directory (the launcher's <data-dir>/outbox): enables the check of one confirmation email per paid order and one welcome email per registered account"),
        )
        .arg(
            Arg::new("mail-api")
                .long("mail-api")
                .value_name("URL")
                .env("LOADGEN_MAIL_API")
                .help("Base URL of a Mailpit-style HTTP API (http://127.0.0.1:8025) to read sent mail from instead of --mail-dir"),
        )
        .arg(
            Arg::new("stats-url")
                .long("stats-url")
                .value_name("URL")
                .env("LOADGEN_STATS_URL")
                .requires("internal-key")
                .help("Base URL of the stats service itself (not the balancer, which hides its internal GET /log): enables the check of one order_created and order_paid event per order and one cart_item_added per item added"),
        )
        .arg(
            Arg::new("internal-key")
                .long("internal-key")
                .value_name("KEY")
                .env("LOADGEN_INTERNAL_KEY")
                .hide_env_values(true)
                .help("The shop's internal key (the launcher's <data-dir>/secrets/internal_key) for stats' GET /log"),
        )
        .arg(
            Arg::new("settle-timeout")
                .long("settle-timeout")
                .value_name("DURATION")
                .env("LOADGEN_SETTLE_TIMEOUT")
                .default_value("60s")
                .value_parser(duration)
                .help("How long after the run orders may take to read paid, and emails and events to arrive, before a check fails"),
        )
        .arg(
            Arg::new("report")
                .long("report")
                .value_name("FILE")
                .env("LOADGEN_REPORT")
                .default_value("loadgen-report.json")
                .value_parser(clap::value_parser!(PathBuf))
                .help("Where the JSON report goes"),
        )
        .arg(
            Arg::new("plot")
                .long("plot")
                .value_name("FILE")
                .env("LOADGEN_PLOT")
                .value_parser(clap::value_parser!(PathBuf))
                .help("Where the SVG plot of latency over time goes (p50/p99 per second, request rate, errors marked); default: the report's name with .svg"),
        )
        .arg(
            Arg::new("seed")
                .long("seed")
                .value_name("N")
                .env("LOADGEN_SEED")
                .value_parser(clap::value_parser!(u64))
                .help("Seed of the journeys' random draws (default: random, printed in the report)"),
        )
        .arg(
            Arg::new("quiet")
                .long("quiet")
                .env("LOADGEN_QUIET")
                .action(ArgAction::SetTrue)
                .help("No progress line while running"),
        )
}

impl Options {
    pub fn from_matches(m: &ArgMatches) -> Result<Options, String> {
        let mode = match (
            m.get_one::<f64>("rate").copied(),
            m.get_one::<usize>("shoppers").copied(),
        ) {
            (_, Some(0)) => return Err("--shoppers must be at least 1".into()),
            (_, Some(shoppers)) => Mode::Closed { shoppers },
            (Some(rate), None) if !(rate.is_finite() && rate > 0.0) => {
                return Err("--rate must be a positive number of arrivals per second".into())
            }
            (rate, None) => Mode::Open {
                rate: rate.unwrap_or(100.0),
            },
        };
        let duration = *m.get_one::<Duration>("duration").expect("has a default");
        if duration.is_zero() {
            return Err("--duration must be longer than 0".into());
        }
        let mix = m.get_one::<Mix>("mix").expect("has a default").clone();
        let session_auth = match m
            .get_one::<String>("session-auth")
            .map(String::as_str)
            .expect("has a default")
        {
            "login" => SessionAuth::Login,
            "register" => SessionAuth::Register,
            _ => SessionAuth::Token,
        };
        let trim = |s: &String| s.trim_end_matches('/').to_string();
        let base = trim(m.get_one::<String>("base").expect("has a default"));
        for (name, url) in [
            ("--base", Some(&base)),
            ("--mail-api", m.get_one::<String>("mail-api")),
            ("--stats-url", m.get_one::<String>("stats-url")),
        ] {
            if let Some(url) = url {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(format!(
                        "{name} must be an http:// or https:// URL, not `{url}`"
                    ));
                }
            }
        }
        let report = m
            .get_one::<PathBuf>("report")
            .expect("has a default")
            .clone();
        let plot = m
            .get_one::<PathBuf>("plot")
            .cloned()
            .unwrap_or_else(|| report.with_extension("svg"));
        Ok(Options {
            base,
            mode,
            duration,
            think: *m.get_one::<Think>("think-time").expect("has a default"),
            mix,
            accounts: m.get_one::<usize>("accounts").copied(),
            session_steps: *m.get_one::<u32>("session-steps").expect("has a default"),
            session_auth,
            mail_budget: *m.get_one::<u32>("mail-budget").expect("has a default"),
            setup_concurrency: (*m
                .get_one::<usize>("setup-concurrency")
                .expect("has a default"))
            .max(1),
            timeout: *m.get_one::<Duration>("timeout").expect("has a default"),
            card: m.get_one::<String>("card").expect("has a default").clone(),
            mail_dir: m.get_one::<PathBuf>("mail-dir").cloned(),
            mail_api: m.get_one::<String>("mail-api").map(trim),
            stats_url: m.get_one::<String>("stats-url").map(trim),
            internal_key: m.get_one::<String>("internal-key").cloned(),
            settle_timeout: *m
                .get_one::<Duration>("settle-timeout")
                .expect("has a default"),
            report,
            plot,
            seed: m
                .get_one::<u64>("seed")
                .copied()
                .unwrap_or_else(|| fastrand::u64(..)),
            progress: !m.get_flag("quiet"),
        })
    }

    /// Accounts to prepare: what `--accounts` says, or enough that every
    /// shopper has its own, the expected concurrency of an open-loop run
    /// finds an idle shopper, and the expected orders fit in the accounts'
    /// mail budgets (one email of each budget is the welcome email).
    pub fn pool_size(&self) -> usize {
        if let Some(n) = self.accounts {
            return n.max(1);
        }
        let secs = self.duration.as_secs_f64();
        let (concurrency, steps) = match self.mode {
            Mode::Closed { shoppers } => {
                // A step takes the think time plus an answer (assume 20 ms).
                let per_step = self.think.mean().as_secs_f64() + 0.02;
                (shoppers as f64, shoppers as f64 * secs / per_step)
            }
            Mode::Open { rate } => {
                // Room for answers of up to 200 ms plus the think time.
                let busy = self.think.mean().as_secs_f64() + 0.2;
                ((rate * busy).max(8.0), rate * secs)
            }
        };
        let orders = steps * self.mix.checkout_share();
        let per_account = f64::from(self.mail_budget.saturating_sub(1).max(1));
        let for_mail = (orders * 1.25 / per_account).ceil();
        concurrency.max(for_mail).ceil().max(1.0) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Options, String> {
        let m = command()
            .try_get_matches_from(std::iter::once("loadgen").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        Options::from_matches(&m)
    }

    #[test]
    fn think_time_forms() {
        assert_eq!(Think::parse("0").unwrap(), Think::NONE);
        let t = Think::parse("500ms-2s").unwrap();
        assert_eq!(t.min, Duration::from_millis(500));
        assert_eq!(t.max, Duration::from_secs(2));
        assert_eq!(t.mean(), Duration::from_millis(1250));
        assert!(Think::parse("2s-1s").is_err());
        assert!(Think::parse("soon").is_err());
        let mut rng = fastrand::Rng::with_seed(1);
        for _ in 0..100 {
            let d = t.draw(&mut rng);
            assert!(d >= t.min && d <= t.max);
        }
    }

    #[test]
    fn modes_and_defaults() {
        let o = parse(&[]).unwrap();
        assert_eq!(o.mode, Mode::Open { rate: 100.0 });
        assert_eq!(o.duration, Duration::from_secs(60));
        assert_eq!(o.plot, PathBuf::from("loadgen-report.svg"));
        let o = parse(&["--shoppers", "7", "--duration", "2s"]).unwrap();
        assert_eq!(o.mode, Mode::Closed { shoppers: 7 });
        assert!(parse(&["--rate", "5", "--shoppers", "2"]).is_err());
        assert!(parse(&["--rate", "0"]).is_err());
        assert!(parse(&["--shoppers", "0"]).is_err());
        assert!(parse(&["--base", "127.0.0.1:8080"]).is_err());
        // Stats' GET /log is internal: no URL without the key.
        assert!(parse(&["--stats-url", "http://127.0.0.1:8005"]).is_err());
    }

    #[test]
    fn the_pool_covers_concurrency_and_mail() {
        let o = parse(&["--shoppers", "30", "--think-time", "1s"]).unwrap();
        assert!(o.pool_size() >= 30);
        // 1,000 arrivals/s for 60 s, one step in twenty a checkout:
        // thousands of orders, 9 per account at most.
        let o = parse(&["--rate", "1000", "--duration", "60s"]).unwrap();
        let orders = 60_000.0 * o.mix.checkout_share();
        assert!(o.pool_size() as f64 >= orders / 9.0, "{}", o.pool_size());
        let o = parse(&["--accounts", "3"]).unwrap();
        assert_eq!(o.pool_size(), 3);
    }
}
