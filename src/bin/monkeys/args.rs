//! The command line: the options, their defaults and checks, and `--help`.

use crate::clock::wall_ms;
use crate::loopback::loopback_base;
use crate::set_api::bias_named;
use edge_crdt::crdt::Bias;
use edge_crdt::engine::check_name;
use edge_crdt::Rng;
use std::collections::BTreeMap;
use std::str::FromStr;

pub const USAGE: &str = "\
usage: monkeys [--normal N] [--offline-online N] [--viewer N] [options]

modes (at least one; each takes a worker count):
  --normal N            random inserts/deletes at random nodes
  --offline-online N    offline bursts on a local replica, synced through /update
  --viewer N            replicas fed by /updates polling or SSE
options:
  --url URL             the cluster, a loopback http URL (default http://127.0.0.1:8787)
  --seconds S           how long the load runs (default 10)
  --seed N              seed of every random choice (default: from the clock; printed)
  --nodes K             nodes node-0..node-{K-1} (default 4)
  --set NAME            the set (default monkeys-<seed>-<unix time>)
  --bias B              add-wins | remove-wins: the set is created with it at start (default add-wins)
  --sync-token T        token of /update (default: $SYNC_TOKEN, else SYNC_TOKEN in .dev.vars)
  --write-token T       sent with inserts, deletes and the creation: past the write rate
                        limit and WRITE_PROTECTED (default: $WRITE_TOKEN, else WRITE_TOKEN
                        in .dev.vars; without one, writes are rate limited per address)
  --max-ops N           at most N writes (or offline changes) per load worker (default 100000);
                        viewers stop when the check is done, or at the time limit
  --viewer-mode M       sse | poll | both (default both)
  --pool N              elements in the shared pool (default 200)
  --pause-ms N          normal workers pause 0..N ms between writes (default 25)
  --window-ms N         pollers re-read from N ms before the last latest (default 15000)
  --converge-timeout S  how long to wait for the nodes to agree (default 60)";

/// Every option, without its `--`. (`--help=X` is accepted and ignored.)
const KNOWN: [&str; 18] = [
    "normal",
    "offline-online",
    "viewer",
    "url",
    "seconds",
    "seed",
    "nodes",
    "set",
    "bias",
    "sync-token",
    "write-token",
    "max-ops",
    "viewer-mode",
    "pool",
    "pause-ms",
    "window-ms",
    "converge-timeout",
    "help",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ViewerMode {
    Sse,
    Poll,
    Both,
}

impl ViewerMode {
    /// Whether viewer `i` reads an SSE stream (with `Both`, odd ones do).
    pub fn streams(self, i: usize) -> bool {
        match self {
            ViewerMode::Sse => true,
            ViewerMode::Poll => false,
            ViewerMode::Both => i % 2 == 1,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Options {
    pub base: String,
    pub seconds: f64,
    pub seed: u64,
    pub nodes: u64,
    pub set: String,
    pub bias: Bias,
    pub sync_token: Option<String>,
    pub write_token: Option<String>,
    pub max_ops: u64,
    pub normal: usize,
    pub offline: usize,
    pub viewers: usize,
    pub viewer_mode: ViewerMode,
    pub pool: usize,
    pub pause_ms: u64,
    pub window_ms: u64,
    pub converge_timeout: f64,
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Command {
    Help,
    Run(Options),
}

/// Parses the arguments (without the program name). `default_token` is
/// asked for a secret (`SYNC_TOKEN`, `WRITE_TOKEN`) its option does not give.
pub fn parse(
    args: &[String],
    default_token: impl Fn(&str) -> Option<String>,
) -> Result<Command, String> {
    let Some(given) = flags(args)? else {
        return Ok(Command::Help);
    };
    let opts = options(&given, default_token)?;
    check(&opts)?;
    Ok(Command::Run(opts))
}

/// The `--key value` and `--key=value` pairs, or `None` when `-h` or
/// `--help` comes first.
fn flags(args: &[String]) -> Result<Option<BTreeMap<String, String>>, String> {
    let mut given = BTreeMap::new();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        if arg == "-h" || arg == "--help" {
            return Ok(None);
        }
        let Some(flag) = arg.strip_prefix("--") else {
            return Err(format!("unexpected argument `{arg}`"));
        };
        let (key, value) = match flag.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => {
                i += 1;
                let v = args.get(i).ok_or(format!("--{flag} needs a value"))?;
                (flag.to_owned(), v.clone())
            }
        };
        if !KNOWN.contains(&key.as_str()) {
            return Err(format!("unknown option --{key}"));
        }
        if given.insert(key.clone(), value).is_some() {
            return Err(format!("--{key} is given twice"));
        }
        i += 1;
    }
    Ok(Some(given))
}

/// The options with their defaults; the first bad value is the error.
fn options(
    given: &BTreeMap<String, String>,
    default_token: impl Fn(&str) -> Option<String>,
) -> Result<Options, String> {
    let seed = seed(given)?;
    let bias = match given.get("bias") {
        None => Bias::AddWins,
        Some(b) => bias_named(b).ok_or(format!("--bias is add-wins or remove-wins, not `{b}`"))?,
    };
    let viewer_mode = viewer_mode(given)?;
    let set = match given.get("set") {
        Some(s) => s.clone(),
        None => format!("monkeys-{seed}-{}", wall_ms() / 1000),
    };
    check_name(&set).map_err(|e| format!("--set: {e}"))?;
    let url = given
        .get("url")
        .map_or("http://127.0.0.1:8787", String::as_str);
    Ok(Options {
        base: loopback_base(url)?,
        seconds: number(given, "seconds", 10.0)?,
        seed,
        nodes: number(given, "nodes", 4)?,
        set,
        bias,
        sync_token: given
            .get("sync-token")
            .cloned()
            .or_else(|| default_token("SYNC_TOKEN")),
        write_token: given
            .get("write-token")
            .cloned()
            .or_else(|| default_token("WRITE_TOKEN")),
        max_ops: number(given, "max-ops", 100_000)?,
        normal: number(given, "normal", 0)?,
        offline: number(given, "offline-online", 0)?,
        viewers: number(given, "viewer", 0)?,
        viewer_mode,
        pool: number(given, "pool", 200)?,
        pause_ms: number(given, "pause-ms", 25)?,
        window_ms: number(given, "window-ms", 15_000)?,
        converge_timeout: number(given, "converge-timeout", 60.0)?,
    })
}

fn number<T: FromStr>(
    given: &BTreeMap<String, String>,
    key: &str,
    default: T,
) -> Result<T, String> {
    match given.get(key) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|_| format!("--{key} takes a number, not `{v}`")),
    }
}

/// `--seed`, or one from the clock and the process id.
fn seed(given: &BTreeMap<String, String>) -> Result<u64, String> {
    match given.get("seed") {
        Some(v) => v
            .parse()
            .map_err(|_| format!("--seed takes an unsigned integer, not `{v}`")),
        None => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            let mut rng = Rng::new(nanos ^ u64::from(std::process::id()));
            Ok(rng.next_u64() % 1_000_000_000)
        }
    }
}

fn viewer_mode(given: &BTreeMap<String, String>) -> Result<ViewerMode, String> {
    match given.get("viewer-mode").map(String::as_str) {
        None | Some("both") => Ok(ViewerMode::Both),
        Some("sse") => Ok(ViewerMode::Sse),
        Some("poll") => Ok(ViewerMode::Poll),
        Some(other) => Err(format!("--viewer-mode is sse, poll or both, not `{other}`")),
    }
}

/// The bounds of the options, checked together.
fn check(opts: &Options) -> Result<(), String> {
    let workers = opts.normal + opts.offline + opts.viewers;
    if workers == 0 {
        return Err("give at least one of --normal, --offline-online, --viewer".into());
    }
    if workers > 256 {
        return Err("at most 256 workers in all".into());
    }
    let finite = |x: f64| x.is_finite() && x > 0.0 && x <= 86_400.0;
    if !finite(opts.seconds) || !finite(opts.converge_timeout) {
        return Err("--seconds and --converge-timeout are 0 < s <= 86400".into());
    }
    if !(1..=64).contains(&opts.nodes) {
        return Err("--nodes is 1 to 64".into());
    }
    if !(1..=5_000).contains(&opts.pool) {
        return Err("--pool is 1 to 5000".into());
    }
    if opts.max_ops == 0 {
        return Err("--max-ops is at least 1".into());
    }
    if opts.pause_ms > 60_000 || opts.window_ms > 3_600_000 {
        return Err("--pause-ms is at most 60000, --window-ms at most 3600000".into());
    }
    if opts.offline > 0 && opts.sync_token.is_none() {
        return Err("--offline-online needs the sync token: --sync-token, $SYNC_TOKEN or SYNC_TOKEN in .dev.vars".into());
    }
    Ok(())
}

/// Secret `name` when its option is not given: `$name`, else `name` in
/// `.dev.vars` here or in the crate's folder.
pub fn default_token(name: &str) -> Option<String> {
    if let Some(token) = std::env::var(name).ok().filter(|t| !t.is_empty()) {
        return Some(token);
    }
    let dirs = [
        std::path::PathBuf::from("."),
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")),
    ];
    dirs.iter()
        .filter_map(|dir| std::fs::read_to_string(dir.join(".dev.vars")).ok())
        .find_map(|text| token_in(&text, name))
}

/// Secret `name` in the text of a `.dev.vars` file (`KEY=value`, the
/// value maybe quoted).
fn token_in(text: &str, name: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let v = line.trim().strip_prefix(name)?.strip_prefix('=')?.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(v);
        (!v.is_empty()).then(|| v.to_owned())
    })
}

#[cfg(test)]
mod test {
    use super::*;

    fn parse_with(args: &str, token: Option<&str>) -> Result<Command, String> {
        let args: Vec<String> = args.split_whitespace().map(str::to_owned).collect();
        parse(&args, |name| token.map(|t| format!("{name}:{t}")))
    }

    /// The options of `args` when every secret's default is `NAME:dflt`.
    fn with_defaults(args: &str) -> Options {
        match parse_with(args, Some("dflt")) {
            Ok(Command::Run(o)) => o,
            other => panic!("{args}: {other:?}"),
        }
    }

    fn run(args: &str) -> Options {
        match parse_with(args, None) {
            Ok(Command::Run(opts)) => opts,
            other => panic!("{args}: {other:?}"),
        }
    }

    fn error(args: &str) -> String {
        match parse_with(args, None) {
            Err(e) => e,
            other => panic!("{args}: {other:?}"),
        }
    }

    #[test]
    fn the_defaults() {
        let o = run("--normal 2 --seed 5");
        assert_eq!(o.base, "http://127.0.0.1:8787");
        assert_eq!((o.seconds, o.converge_timeout), (10.0, 60.0));
        assert_eq!((o.seed, o.nodes, o.max_ops), (5, 4, 100_000));
        assert!(o.set.starts_with("monkeys-5-"), "{}", o.set);
        assert_eq!(o.bias, Bias::AddWins);
        assert_eq!((o.normal, o.offline, o.viewers), (2, 0, 0));
        assert_eq!(o.viewer_mode, ViewerMode::Both);
        assert_eq!((o.pool, o.pause_ms, o.window_ms), (200, 25, 15_000));
        assert_eq!((o.sync_token, o.write_token), (None, None));
    }

    #[test]
    fn every_option_in_both_spellings() {
        let o = run(
            "--normal=1 --offline-online 2 --viewer=3 --url http://[::1]:9/ --seconds 1.5 \
             --seed=9 --nodes 2 --set s1 --bias remove-wins --sync-token t --write-token w --max-ops 7 \
             --viewer-mode sse --pool 10 --pause-ms 0 --window-ms 99 --converge-timeout 3",
        );
        assert_eq!((o.normal, o.offline, o.viewers), (1, 2, 3));
        assert_eq!(o.base, "http://[::1]:9");
        assert_eq!((o.seconds, o.seed, o.nodes), (1.5, 9, 2));
        assert_eq!((o.set.as_str(), o.bias), ("s1", Bias::RemoveWins));
        assert_eq!(o.sync_token.as_deref(), Some("t"));
        assert_eq!(o.write_token.as_deref(), Some("w"));
        assert_eq!((o.max_ops, o.viewer_mode), (7, ViewerMode::Sse));
        assert_eq!((o.pool, o.pause_ms, o.window_ms), (10, 0, 99));
        assert_eq!(o.converge_timeout, 3.0);
    }

    #[test]
    fn help_when_it_comes_before_any_error() {
        assert!(matches!(parse_with("--help", None), Ok(Command::Help)));
        assert!(matches!(
            parse_with("--normal 1 -h", None),
            Ok(Command::Help)
        ));
        assert_eq!(error("--bogus 1 --help"), "unknown option --bogus");
        // A value that looks like --help is a value.
        assert!(error("--set --help").starts_with("give at least one"));
    }

    fn refused(args: &str, message: &str) {
        assert_eq!(error(args), message, "{args}");
    }

    #[test]
    fn bad_arguments() {
        refused(
            "",
            "give at least one of --normal, --offline-online, --viewer",
        );
        refused("stray", "unexpected argument `stray`");
        refused("--normal", "--normal needs a value");
        refused("--normal 1 --normal 2", "--normal is given twice");
        refused("--normal x", "--normal takes a number, not `x`");
        refused(
            "--normal 1 --seed -1",
            "--seed takes an unsigned integer, not `-1`",
        );
        refused(
            "--normal 1 --bias x",
            "--bias is add-wins or remove-wins, not `x`",
        );
        refused(
            "--normal 1 --viewer-mode x",
            "--viewer-mode is sse, poll or both, not `x`",
        );
        refused("--normal 300", "at most 256 workers in all");
        let seconds = "--seconds and --converge-timeout are 0 < s <= 86400";
        refused("--normal 1 --seconds 0", seconds);
        refused("--normal 1 --converge-timeout inf", seconds);
        refused("--normal 1 --nodes 65", "--nodes is 1 to 64");
        refused("--normal 1 --pool 0", "--pool is 1 to 5000");
        refused("--normal 1 --max-ops 0", "--max-ops is at least 1");
        let pauses = "--pause-ms is at most 60000, --window-ms at most 3600000";
        refused("--normal 1 --window-ms 3600001", pauses);
        assert!(error("--normal 1 --url http://10.0.0.1").contains("not a loopback address"));
        assert!(error("--normal 1 --set a\u{7}b").starts_with("--set: "));
        // The first bad value is the one reported.
        refused(
            "--seconds x --nodes y --normal 1",
            "--seconds takes a number, not `x`",
        );
    }

    #[test]
    fn offline_replicas_need_the_sync_token() {
        assert!(error("--offline-online 1").starts_with("--offline-online needs the sync token"));
        let from_default = |args| with_defaults(args).sync_token;
        assert_eq!(
            from_default("--offline-online 1").as_deref(),
            Some("SYNC_TOKEN:dflt")
        );
        assert_eq!(
            from_default("--offline-online 1 --sync-token given").as_deref(),
            Some("given")
        );
    }

    #[test]
    fn writers_take_the_write_token_from_its_option_or_the_default() {
        let write_token = |args| with_defaults(args).write_token;
        assert_eq!(
            write_token("--normal 1").as_deref(),
            Some("WRITE_TOKEN:dflt")
        );
        assert_eq!(
            write_token("--normal 1 --write-token w").as_deref(),
            Some("w")
        );
    }

    #[test]
    fn viewers_stream_by_mode() {
        assert!((0..4).all(|i| ViewerMode::Sse.streams(i) && !ViewerMode::Poll.streams(i)));
        assert!(!ViewerMode::Both.streams(0) && ViewerMode::Both.streams(1));
    }

    #[test]
    fn tokens_in_dev_vars() {
        let text = "ADMIN_TOKEN=\"a\"\nSYNC_TOKEN=\"b1\"\nWRITE_TOKEN='w1'\n";
        assert_eq!(token_in(text, "SYNC_TOKEN").as_deref(), Some("b1"));
        assert_eq!(token_in(text, "WRITE_TOKEN").as_deref(), Some("w1"));
        let plain = token_in("SYNC_TOKEN=plain", "SYNC_TOKEN");
        assert_eq!(plain.as_deref(), Some("plain"));
        assert_eq!(token_in("SYNC_TOKEN=''\nX=1", "SYNC_TOKEN"), None);
        assert_eq!(token_in("ADMIN_TOKEN=a", "SYNC_TOKEN"), None);
        assert_eq!(
            token_in("SYNC_TOKENS=a", "SYNC_TOKEN"),
            None,
            "the whole name"
        );
    }
}
