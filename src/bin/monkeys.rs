//! Chaos clients for the LWW element set API of a local cluster: random
//! writers, offline-then-online replicas and viewers, all at once, then a
//! check that every node and viewer converged on the set that the log of
//! acknowledged operations implies.
//!
//! ```text
//! cargo run --release --bin monkeys -- --url http://127.0.0.1:8787 \
//!     --normal 4 --offline-online 2 --viewer 2 --seconds 30 --bias remove-wins
//! ```
//!
//! Modes (any together, each with its worker count):
//! - `--normal N`: inserts and deletes of 1-3 elements from a shared pool, at
//!   a random node (`?node=node-K`), at random intervals. Each write's
//!   timestamp is read from the reply's `stamp`.
//! - `--offline-online N`: each keeps a local `LwwSet` and its own `Hlc` on
//!   the local wall clock (shifted by a skew of up to ±2 s, and for half of
//!   them coarse, so that clients tie), makes a burst of changes offline,
//!   then pushes its whole replica to `/update` with the sync token, pulls
//!   `/updates?since=`, and repeats. Now and then a change is the opposite
//!   of another client's recent write at the same stamp: a tie, which the
//!   bias decides.
//! - `--viewer N`: each keeps a replica from `/updates?since=` polling at a
//!   random node (re-polling from `--window-ms` before the last `latest`,
//!   since late entries carry older stamps) or from an SSE stream
//!   (`--viewer-mode sse|poll|both`, default both: even viewers poll, odd
//!   ones stream). A poller shows its entries under the bias of the last
//!   reply: a node that has not yet heard of the creation says add-wins.
//!
//! When the load stops: waits until every node answers the same members and
//! `latest` for a few polls in a row, waits for the viewers to catch up, and
//! compares every node and viewer with an oracle: the LWW rule, with the
//! set's bias, over the log of acknowledged operations. Writes whose outcome
//! is unknown (a timeout, a 5xx) are not in the log: their elements are left
//! out of the oracle comparison and counted. Exits 1 on a mismatch, when the
//! nodes do not converge, or when nothing was acknowledged; 2 on bad
//! arguments or setup. Every random choice comes from `--seed` (the timing,
//! and so the interleaving, does not repeat). `--max-ops` bounds each load
//! worker's writes; every loop also ends at a time limit.
//!
//! Only loopback addresses are accepted, and only plain http.

#[cfg(target_arch = "wasm32")]
fn main() {}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    std::process::exit(native::main());
}

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use edge_crdt::api::check_name;
    use edge_crdt::codec;
    use edge_crdt::crdt::{Bias, Crdt, Element, Hlc, LwwSet};
    use serde_json::{json, Value as Json};
    use std::collections::{BTreeMap, BTreeSet};
    use std::io::{BufRead, BufReader, Write};
    use std::net::{Ipv4Addr, Ipv6Addr, ToSocketAddrs};
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
    use std::sync::{Arc, Mutex};
    use std::thread;
    use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

    const USAGE: &str = "\
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
  --max-ops N           at most N writes (or offline changes) per load worker (default 100000);
                        viewers stop when the check is done, or at the time limit
  --viewer-mode M       sse | poll | both (default both)
  --pool N              elements in the shared pool (default 200)
  --pause-ms N          normal workers pause 0..N ms between writes (default 25)
  --window-ms N         pollers re-read from N ms before the last latest (default 15000)
  --converge-timeout S  how long to wait for the nodes to agree (default 60)";

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum ViewerMode {
        Sse,
        Poll,
        Both,
    }

    #[derive(Clone, Debug)]
    struct Options {
        base: String,
        seconds: f64,
        seed: u64,
        nodes: u64,
        set: String,
        bias: Bias,
        sync_token: Option<String>,
        max_ops: u64,
        normal: usize,
        offline: usize,
        viewers: usize,
        viewer_mode: ViewerMode,
        pool: usize,
        pause_ms: u64,
        window_ms: u64,
        converge_timeout: f64,
    }

    fn parse_args(args: &[String]) -> Result<Options, String> {
        let mut given: BTreeMap<String, String> = BTreeMap::new();
        let mut i = 0;
        while i < args.len() {
            let arg = &args[i];
            if arg == "-h" || arg == "--help" {
                return Err(String::new());
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
            const KNOWN: [&str; 17] = [
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
                "max-ops",
                "viewer-mode",
                "pool",
                "pause-ms",
                "window-ms",
                "converge-timeout",
                "help",
            ];
            if !KNOWN.contains(&key.as_str()) {
                return Err(format!("unknown option --{key}"));
            }
            if given.insert(key.clone(), value).is_some() {
                return Err(format!("--{key} is given twice"));
            }
            i += 1;
        }
        fn num<T: std::str::FromStr>(
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
        let seed = match given.get("seed") {
            Some(v) => v
                .parse()
                .map_err(|_| format!("--seed takes an unsigned integer, not `{v}`"))?,
            None => {
                let nanos = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(0);
                splitmix(nanos ^ u64::from(std::process::id())) % 1_000_000_000
            }
        };
        let bias = match given.get("bias").map(String::as_str) {
            None | Some("add-wins") => Bias::AddWins,
            Some("remove-wins") => Bias::RemoveWins,
            Some(other) => return Err(format!("--bias is add-wins or remove-wins, not `{other}`")),
        };
        let viewer_mode = match given.get("viewer-mode").map(String::as_str) {
            None | Some("both") => ViewerMode::Both,
            Some("sse") => ViewerMode::Sse,
            Some("poll") => ViewerMode::Poll,
            Some(other) => {
                return Err(format!("--viewer-mode is sse, poll or both, not `{other}`"))
            }
        };
        let set = match given.get("set") {
            Some(s) => s.clone(),
            None => format!("monkeys-{seed}-{}", wall_ms() / 1000),
        };
        check_name(&set).map_err(|e| format!("--set: {}", e.message))?;
        let opts = Options {
            base: loopback_base(
                given
                    .get("url")
                    .map(String::as_str)
                    .unwrap_or("http://127.0.0.1:8787"),
            )?,
            seconds: num(&given, "seconds", 10.0)?,
            seed,
            nodes: num(&given, "nodes", 4)?,
            set,
            bias,
            sync_token: given
                .get("sync-token")
                .cloned()
                .or_else(|| std::env::var("SYNC_TOKEN").ok().filter(|t| !t.is_empty()))
                .or_else(token_from_dev_vars),
            max_ops: num(&given, "max-ops", 100_000)?,
            normal: num(&given, "normal", 0)?,
            offline: num(&given, "offline-online", 0)?,
            viewers: num(&given, "viewer", 0)?,
            viewer_mode,
            pool: num(&given, "pool", 200)?,
            pause_ms: num(&given, "pause-ms", 25)?,
            window_ms: num(&given, "window-ms", 15_000)?,
            converge_timeout: num(&given, "converge-timeout", 60.0)?,
        };
        if opts.normal + opts.offline + opts.viewers == 0 {
            return Err("give at least one of --normal, --offline-online, --viewer".into());
        }
        if opts.normal + opts.offline + opts.viewers > 256 {
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
        Ok(opts)
    }

    /// `http://HOST[:PORT]` with HOST a loopback address; anything else is
    /// refused, since this tool puts load on what it is pointed at.
    fn loopback_base(url: &str) -> Result<String, String> {
        let refuse = |why: &str| Err(format!("--url {url}: {why}"));
        let Some(rest) = url.strip_prefix("http://") else {
            return refuse("only plain http:// URLs (the tool targets loopback only)");
        };
        let authority = rest.trim_end_matches('/');
        if authority.is_empty() || authority.contains(['/', '?', '#', '@', ' ']) {
            return refuse("give only the scheme, host and port");
        }
        let (host, port) = if let Some(r) = authority.strip_prefix('[') {
            let Some((h, p)) = r.split_once(']') else {
                return refuse("unclosed [");
            };
            (h, p)
        } else {
            match authority.split_once(':') {
                Some((h, p)) => (h, &authority[h.len()..][..p.len() + 1]),
                None => (authority, ""),
            }
        };
        let port: u16 = match port {
            "" => 80,
            p => match p.strip_prefix(':').and_then(|p| p.parse().ok()) {
                Some(n) if n > 0 => n,
                _ => return refuse("the port is a number 1-65535"),
            },
        };
        let loopback = if host.eq_ignore_ascii_case("localhost") {
            // Whatever it resolves to must be loopback too.
            let addrs: Vec<_> = (host, port)
                .to_socket_addrs()
                .map_err(|e| format!("--url {url}: cannot resolve localhost: {e}"))?
                .collect();
            !addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback())
        } else if authority.starts_with('[') {
            host.parse::<Ipv6Addr>() == Ok(Ipv6Addr::LOCALHOST)
        } else {
            host.parse::<Ipv4Addr>().is_ok_and(|a| a.is_loopback())
        };
        if !loopback {
            return refuse("not a loopback address (127.0.0.0/8, localhost, [::1])");
        }
        Ok(format!("http://{authority}"))
    }

    fn token_from_dev_vars() -> Option<String> {
        let dirs = [
            std::path::PathBuf::from("."),
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")),
        ];
        dirs.iter()
            .filter_map(|dir| std::fs::read_to_string(dir.join(".dev.vars")).ok())
            .find_map(|text| sync_token_in(&text))
    }

    /// `SYNC_TOKEN` in the text of a `.dev.vars` file (`KEY=value`, the
    /// value maybe quoted).
    fn sync_token_in(text: &str) -> Option<String> {
        text.lines().find_map(|line| {
            let v = line.trim().strip_prefix("SYNC_TOKEN=")?.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(v);
            (!v.is_empty()).then(|| v.to_owned())
        })
    }

    // ------------------------------------------------------------ randomness

    fn splitmix(x: u64) -> u64 {
        let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// SplitMix64: small, fast, and enough for choosing operations.
    struct Rng(u64);

    impl Rng {
        /// The generator of stream `stream` of `seed`.
        fn new(seed: u64, stream: u64) -> Rng {
            Rng(splitmix(seed ^ splitmix(stream.wrapping_add(0x5EED))))
        }

        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            splitmix(self.0)
        }

        /// Uniform in `0..n` (`n` > 0).
        fn below(&mut self, n: u64) -> u64 {
            ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
        }

        /// Uniform in `lo..=hi`.
        fn range(&mut self, lo: u64, hi: u64) -> u64 {
            lo + self.below(hi - lo + 1)
        }

        fn chance(&mut self, p: f64) -> bool {
            ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < p
        }
    }

    // ------------------------------------------------------------ elements

    /// The shared pool: each element with its canonical identity.
    struct Pool {
        items: Vec<(Json, Element)>,
    }

    impl Pool {
        fn new(size: usize, rng: &mut Rng) -> Pool {
            let mut values = vec![
                json!(true),
                json!(false),
                json!(""),
                json!("with space"),
                json!("ünïcödé"),
                json!("🐒"),
                json!("quote\" and \\ back"),
                json!("1"),
                json!("true"),
                json!(0.5),
                json!(2.5),
                json!(-7.25),
                json!(0.1),
                json!(1e21),
                json!(123_456_789_012_u64),
                json!(9_007_199_254_740_993_u64),
            ];
            values.extend((-5..30).map(|n: i64| json!(n)));
            let mut n = 0;
            while values.len() < size {
                values.push(json!(format!("e{n:03}")));
                n += 1;
            }
            values.truncate(size);
            let mut items: Vec<(Json, Element)> = Vec::new();
            let mut seen = BTreeSet::new();
            for v in values {
                let e = Element::from_json(&v).expect("the pool holds scalars");
                if seen.insert(e.clone()) {
                    items.push((v, e));
                }
            }
            for i in (1..items.len()).rev() {
                let j = rng.below(i as u64 + 1) as usize;
                items.swap(i, j);
            }
            Pool { items }
        }

        /// An index: half the time from a hot few, so writers collide.
        fn pick(&self, rng: &mut Rng) -> usize {
            let hot = self.items.len().min(24) as u64;
            let n = if rng.chance(0.5) {
                hot
            } else {
                self.items.len() as u64
            };
            rng.below(n) as usize
        }

        /// 1-3 indices, now and then up to 20.
        fn batch(&self, rng: &mut Rng) -> Vec<usize> {
            let n = if rng.chance(0.05) {
                rng.range(4, 20)
            } else {
                rng.range(1, 3)
            };
            (0..n).map(|_| self.pick(rng)).collect()
        }

        fn element(&self, i: usize) -> &Element {
            &self.items[i].1
        }

        /// How element `i` is written on the wire: integers sometimes as
        /// floats (`3.0`, `-0.0`), which name the same element.
        fn spell(&self, i: usize, rng: &mut Rng) -> Json {
            let v = &self.items[i].0;
            match v.as_i64() {
                Some(0) if rng.chance(0.2) => json!(-0.0),
                Some(n) if n.unsigned_abs() < 1 << 53 && rng.chance(0.3) => json!(n as f64),
                _ => v.clone(),
            }
        }
    }

    // ------------------------------------------------------------ HTTP

    /// A failed request: refused (a 4xx: nothing was written) or uncertain
    /// (transport error, timeout, 5xx: a write may have been stored).
    #[derive(Debug)]
    enum Failure {
        Refused(u16, String),
        Uncertain(String),
    }

    impl Failure {
        fn text(&self) -> &str {
            match self {
                Failure::Refused(_, s) | Failure::Uncertain(s) => s,
            }
        }
    }

    struct Http {
        agent: ureq::Agent,
        base: String,
    }

    impl Http {
        fn new(base: &str, timeout: Duration) -> Http {
            let config = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .proxy(None)
                .timeout_connect(Some(Duration::from_secs(5)))
                .timeout_global(Some(timeout))
                .build();
            Http {
                agent: ureq::Agent::new_with_config(config),
                base: base.to_owned(),
            }
        }

        fn get(&self, path: &str) -> Result<Json, Failure> {
            let res = self
                .agent
                .get(format!("{}{path}", self.base))
                .header("accept", "application/json")
                .call();
            finish(path, res)
        }

        fn send(
            &self,
            method: &str,
            path: &str,
            body: &Json,
            token: Option<&str>,
        ) -> Result<Json, Failure> {
            let url = format!("{}{path}", self.base);
            let mut req = if method == "PUT" {
                self.agent.put(url)
            } else {
                self.agent.post(url)
            };
            req = req.header("content-type", "application/json");
            if let Some(t) = token {
                req = req.header("authorization", format!("Bearer {t}"));
            }
            finish(path, req.send(body.to_string()))
        }
    }

    fn clip(s: &str, n: usize) -> String {
        let mut out: String = s.chars().take(n).collect();
        if out.len() < s.len() {
            out.push('…');
        }
        out
    }

    fn finish(
        path: &str,
        res: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Json, Failure> {
        let mut res = res.map_err(|e| Failure::Uncertain(format!("{path}: {e}")))?;
        let status = res.status().as_u16();
        let text = res
            .body_mut()
            .read_to_string()
            .map_err(|e| Failure::Uncertain(format!("{path}: {status}, body: {e}")))?;
        match status {
            200 => serde_json::from_str(&text).map_err(|e| {
                Failure::Uncertain(format!(
                    "{path}: 200 but not JSON ({e}): {}",
                    clip(&text, 200)
                ))
            }),
            400..=499 => Err(Failure::Refused(
                status,
                format!("{path}: {status} {}", clip(&text, 300)),
            )),
            _ => Err(Failure::Uncertain(format!(
                "{path}: {status} {}",
                clip(&text, 300)
            ))),
        }
    }

    fn wall_ms() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }

    fn sleep_ms(ms: u64) {
        if ms > 0 {
            thread::sleep(Duration::from_millis(ms));
        }
    }

    /// `[[element, t], …]` of an `/updates` reply.
    fn entries(reply: &Json, side: &str) -> Result<Vec<(Element, u64)>, String> {
        let list = reply[side]
            .as_array()
            .ok_or(format!("the reply has no `{side}` list"))?;
        list.iter()
            .map(|pair| {
                let e = Element::from_json(&pair[0]);
                let t = pair[1].as_u64();
                e.zip(t).ok_or(format!("bad entry {pair} in `{side}`"))
            })
            .collect()
    }

    /// Why a pull of `/updates` failed.
    enum PullError {
        /// The reply was not a valid `/updates` answer.
        Reply(String),
        /// The request itself failed.
        Http(Failure),
    }

    /// Pulls `/updates?since=` from a random node and merges its entries
    /// into `replica`; returns the reply, for its `latest` and `bias`.
    fn pull(
        ctx: &Ctx,
        http: &Http,
        rng: &mut Rng,
        replica: &mut LwwSet,
        since: u64,
    ) -> Result<Json, PullError> {
        let path = format!(
            "{}/updates?since={since}&node={}",
            ctx.set_path,
            ctx.node(rng)
        );
        let reply = http.get(&path).map_err(PullError::Http)?;
        let adds = entries(&reply, "adds").map_err(|e| PullError::Reply(format!("{path}: {e}")))?;
        let removes =
            entries(&reply, "removes").map_err(|e| PullError::Reply(format!("{path}: {e}")))?;
        merge_entries(replica, &adds, &removes);
        Ok(reply)
    }

    fn merge_entries(set: &mut LwwSet, adds: &[(Element, u64)], removes: &[(Element, u64)]) {
        for (e, t) in adds {
            let delta = set.insert([e.clone()], *t);
            set.merge(&delta);
        }
        for (e, t) in removes {
            let delta = set.remove([e.clone()], *t);
            set.merge(&delta);
        }
    }

    fn bias_of(text: Option<&str>) -> Option<Bias> {
        match text {
            Some("add-wins") => Some(Bias::AddWins),
            Some("remove-wins") => Some(Bias::RemoveWins),
            _ => None,
        }
    }

    fn bias_name(b: Bias) -> &'static str {
        match b {
            Bias::AddWins => "add-wins",
            Bias::RemoveWins => "remove-wins",
        }
    }

    // ------------------------------------------------------------ shared state

    /// One acknowledged write of one element.
    #[derive(Clone, Debug)]
    struct Logged {
        add: bool,
        element: Element,
        stamp: u64,
    }

    /// What a load worker hands back.
    #[derive(Default)]
    struct WorkerLog {
        log: Vec<Logged>,
        /// elements of writes whose outcome is unknown
        uncertain: Vec<Element>,
    }

    #[derive(Default)]
    struct Counters {
        normal_acked: AtomicU64,
        offline_acked: AtomicU64,
        syncs: AtomicU64,
        errors: AtomicU64,
        uncertain: AtomicU64,
        polls: AtomicU64,
        events: AtomicU64,
        viewer_errors: AtomicU64,
    }

    /// What a viewer shows to the checker.
    #[derive(Default)]
    struct ViewerState {
        members: Option<BTreeSet<Element>>,
    }

    struct Ctx {
        opts: Options,
        pool: Pool,
        set_path: String,
        load_deadline: Instant,
        hard_deadline: Instant,
        /// Viewers stop at the hard deadline; this bound (10 requests a
        /// second until then) only backs it up. `--max-ops` bounds writes:
        /// a viewer cut short could not be checked.
        viewer_max_ops: u64,
        counters: Counters,
        stop_viewers: AtomicBool,
        fatal: Mutex<Option<String>>,
        first_errors: Mutex<Vec<String>>,
        /// Recent writes (worker, pool index, stamp, add) that offline
        /// workers repeat with the opposite operation at the same stamp:
        /// two clients stamping alike, a tie that the bias decides.
        ties: Mutex<Vec<(usize, usize, u64, bool)>>,
    }

    impl Ctx {
        fn error(&self, f: &Failure) {
            self.counters.errors.fetch_add(1, Relaxed);
            if let Failure::Uncertain(_) = f {
                self.counters.uncertain.fetch_add(1, Relaxed);
            }
            self.note(f.text());
        }

        fn note(&self, text: &str) {
            let mut first = self.first_errors.lock().unwrap();
            if first.len() < 8 {
                first.push(text.to_owned());
            }
        }

        fn fail(&self, why: String) {
            let mut fatal = self.fatal.lock().unwrap();
            if fatal.is_none() {
                *fatal = Some(why);
            }
        }

        fn load_over(&self) -> bool {
            Instant::now() >= self.load_deadline || self.fatal.lock().unwrap().is_some()
        }

        fn post_tie(&self, worker: usize, index: usize, stamp: u64, add: bool) {
            let mut board = self.ties.lock().unwrap();
            if board.len() >= 16 {
                board.remove(0);
            }
            board.push((worker, index, stamp, add));
        }

        /// The newest write of another worker on the board, taken off it.
        fn take_tie(&self, worker: usize) -> Option<(usize, u64, bool)> {
            let mut board = self.ties.lock().unwrap();
            let at = board.iter().rposition(|t| t.0 != worker)?;
            let (_, index, stamp, add) = board.remove(at);
            Some((index, stamp, add))
        }

        fn node(&self, rng: &mut Rng) -> String {
            format!("node-{}", rng.below(self.opts.nodes))
        }
    }

    // ------------------------------------------------------------ workers

    fn normal_worker(ctx: &Ctx, worker: usize, mut rng: Rng) -> WorkerLog {
        let http = Http::new(&ctx.opts.base, Duration::from_secs(20));
        let mut out = WorkerLog::default();
        let mut ops = 0;
        while ops < ctx.opts.max_ops && !ctx.load_over() {
            ops += 1;
            let add = rng.chance(0.55);
            let batch = ctx.pool.batch(&mut rng);
            let body = Json::Array(batch.iter().map(|&i| ctx.pool.spell(i, &mut rng)).collect());
            let path = format!(
                "{}/{}?node={}",
                ctx.set_path,
                if add { "insert" } else { "delete" },
                ctx.node(&mut rng)
            );
            match http.send("POST", &path, &body, None) {
                Ok(reply) => match reply["stamp"].as_u64() {
                    Some(stamp) if stamp > 0 => {
                        out.log.extend(batch.iter().map(|&i| Logged {
                            add,
                            element: ctx.pool.element(i).clone(),
                            stamp,
                        }));
                        ctx.counters.normal_acked.fetch_add(1, Relaxed);
                        if rng.chance(0.2) {
                            ctx.post_tie(worker, batch[0], stamp, add);
                        }
                    }
                    _ => {
                        ctx.fail(format!(
                            "{path}: the reply has no `stamp` (is the Worker built from this tree?): {}",
                            clip(&reply.to_string(), 200)
                        ));
                        out.uncertain
                            .extend(batch.iter().map(|&i| ctx.pool.element(i).clone()));
                    }
                },
                Err(f) => {
                    if let Failure::Uncertain(_) = f {
                        out.uncertain
                            .extend(batch.iter().map(|&i| ctx.pool.element(i).clone()));
                    }
                    ctx.error(&f);
                }
            }
            sleep_ms(rng.below(ctx.opts.pause_ms + 1));
        }
        out
    }

    /// A change made offline, not yet acknowledged by a sync.
    struct Pending {
        log: Vec<Logged>,
        /// a sync that carried it failed without telling whether it was stored
        uncertain: bool,
    }

    fn offline_worker(ctx: &Ctx, worker: usize, mut rng: Rng) -> WorkerLog {
        let http = Http::new(&ctx.opts.base, Duration::from_secs(20));
        let skew = rng.range(0, 4_000) as i64 - 2_000;
        let coarse = rng.chance(0.5);
        let clock = || {
            let ms = (wall_ms() as i64 + skew).max(1) as u64;
            if coarse {
                (ms / 16 * 16).max(1)
            } else {
                ms
            }
        };
        let window = Hlc::stamp_of(ctx.opts.window_ms);
        let mut hlc = Hlc::default();
        let mut replica = LwwSet::default();
        let mut pending: Vec<Pending> = Vec::new();
        let mut out = WorkerLog::default();
        let mut since = 0;
        let mut ops = 0;
        while ops < ctx.opts.max_ops && !ctx.load_over() {
            // Offline: a burst of changes over a while.
            let changes = rng.range(5, 40).min(ctx.opts.max_ops - ops);
            let gap = rng.range(200, 2_500) / changes;
            for _ in 0..changes {
                if ctx.load_over() {
                    break;
                }
                ops += 1;
                let tie = if rng.chance(0.15) {
                    ctx.take_tie(worker)
                } else {
                    None
                };
                let (add, batch, stamp) = match tie {
                    // The opposite of another client's write, stamped alike.
                    Some((index, stamp, add)) => {
                        hlc.observe(stamp);
                        (!add, vec![index], stamp)
                    }
                    None => {
                        let add = rng.chance(0.5);
                        let batch = ctx.pool.batch(&mut rng);
                        let stamp = hlc.now(clock());
                        if rng.chance(0.2) {
                            ctx.post_tie(worker, batch[0], stamp, add);
                        }
                        (add, batch, stamp)
                    }
                };
                let elements: Vec<Element> =
                    batch.iter().map(|&i| ctx.pool.element(i).clone()).collect();
                let delta = if add {
                    replica.insert(elements.iter().cloned(), stamp)
                } else {
                    replica.remove(elements.iter().cloned(), stamp)
                };
                replica.merge(&delta);
                pending.push(Pending {
                    log: elements
                        .into_iter()
                        .map(|element| Logged {
                            add,
                            element,
                            stamp,
                        })
                        .collect(),
                    uncertain: false,
                });
                sleep_ms(gap);
            }
            // Online: push the whole replica, then pull what others wrote.
            if !sync(ctx, &http, &mut rng, &replica, &mut pending, &mut out) {
                continue;
            }
            match pull(ctx, &http, &mut rng, &mut replica, since) {
                Ok(reply) => {
                    let latest = reply["latest"].as_u64().unwrap_or(0);
                    hlc.observe(latest);
                    since = latest.saturating_sub(window);
                }
                Err(PullError::Reply(text)) => ctx.note(&text),
                Err(PullError::Http(f)) => ctx.error(&f),
            }
        }
        // The last changes: a few tries, then whatever is left is unknown
        // (if a try may have stored it) or not stored at all.
        for attempt in 0..4 {
            if sync(ctx, &http, &mut rng, &replica, &mut pending, &mut out)
                || ctx.fatal.lock().unwrap().is_some()
            {
                break;
            }
            sleep_ms(250 << attempt);
        }
        for p in pending {
            if p.uncertain {
                out.uncertain.extend(p.log.into_iter().map(|l| l.element));
            }
        }
        out
    }

    /// Pushes the whole replica to `/update`; true when it was stored (or
    /// there was nothing to push).
    fn sync(
        ctx: &Ctx,
        http: &Http,
        rng: &mut Rng,
        replica: &LwwSet,
        pending: &mut Vec<Pending>,
        out: &mut WorkerLog,
    ) -> bool {
        if pending.is_empty() {
            return true;
        }
        let (adds, removes) = replica.entries();
        let list = |m: &BTreeMap<Element, u64>| {
            Json::Array(m.iter().map(|(e, t)| json!([e.to_json(), t])).collect())
        };
        let body = json!({"adds": list(adds), "removes": list(removes)});
        let path = format!("{}/update?node={}", ctx.set_path, ctx.node(rng));
        match http.send("POST", &path, &body, ctx.opts.sync_token.as_deref()) {
            Ok(_) => {
                let changes = pending.len() as u64;
                out.log.extend(pending.drain(..).flat_map(|p| p.log));
                ctx.counters.offline_acked.fetch_add(changes, Relaxed);
                ctx.counters.syncs.fetch_add(1, Relaxed);
                true
            }
            Err(f) => {
                if let Failure::Uncertain(_) = f {
                    pending.iter_mut().for_each(|p| p.uncertain = true);
                }
                if let Failure::Refused(401 | 503, why) = &f {
                    ctx.fail(format!("the sync token does not open /update: {why}"));
                }
                ctx.error(&f);
                false
            }
        }
    }

    fn poll_viewer(ctx: &Ctx, mut rng: Rng, shown: &Mutex<ViewerState>) {
        let http = Http::new(&ctx.opts.base, Duration::from_secs(20));
        let window = Hlc::stamp_of(ctx.opts.window_ms);
        // Entries only: the bias comes with each reply, and a node that has
        // not yet heard of the creation answers add-wins, the default.
        let mut replica = LwwSet::default();
        let mut since = 0;
        let mut polls = 0;
        while polls < ctx.viewer_max_ops
            && !ctx.stop_viewers.load(Relaxed)
            && Instant::now() < ctx.hard_deadline
        {
            polls += 1;
            match pull(ctx, &http, &mut rng, &mut replica, since) {
                Ok(reply) => {
                    since = reply["latest"].as_u64().unwrap_or(0).saturating_sub(window);
                    // The set as that node would show it: its bias, our
                    // entries (the creation's stamp stays local).
                    let bias = bias_of(reply["bias"].as_str()).unwrap_or(Bias::AddWins);
                    let mut view = LwwSet::new(bias, 1);
                    view.merge(&replica);
                    shown.lock().unwrap().members = Some(view.members().cloned().collect());
                    ctx.counters.polls.fetch_add(1, Relaxed);
                }
                Err(e) => {
                    ctx.counters.viewer_errors.fetch_add(1, Relaxed);
                    match e {
                        PullError::Reply(text) => ctx.note(&text),
                        PullError::Http(f) => ctx.note(f.text()),
                    }
                }
            }
            sleep_ms(rng.range(100, 300));
        }
    }

    fn sse_viewer(ctx: &Ctx, node: u64, shown: &Mutex<ViewerState>) {
        // Each stream lives at most 20 s, then reconnects (and gets the
        // whole state again), so that a quiet stream cannot block forever.
        let http = Http::new(&ctx.opts.base, Duration::from_secs(20));
        let path = format!("{}/events?node=node-{node}", ctx.set_path);
        let mut replica = LwwSet::default();
        let mut connects = 0;
        while connects < ctx.viewer_max_ops
            && !ctx.stop_viewers.load(Relaxed)
            && Instant::now() < ctx.hard_deadline
        {
            connects += 1;
            let res = http
                .agent
                .get(format!("{}{path}", http.base))
                .header("accept", "text/event-stream")
                .call();
            let res = match res {
                Ok(r) if r.status().as_u16() == 200 => r,
                Ok(r) => {
                    ctx.counters.viewer_errors.fetch_add(1, Relaxed);
                    ctx.note(&format!("{path}: {}", r.status()));
                    sleep_ms(500);
                    continue;
                }
                Err(e) => {
                    ctx.counters.viewer_errors.fetch_add(1, Relaxed);
                    ctx.note(&format!("{path}: {e}"));
                    sleep_ms(500);
                    continue;
                }
            };
            let mut reader = BufReader::new(res.into_body().into_reader());
            let mut line = String::new();
            loop {
                line.clear();
                match reader.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                if line.len() > 4 << 20 {
                    ctx.note(&format!("{path}: a line over 4 MiB"));
                    break;
                }
                if let Some(data) = line.strip_prefix("data:") {
                    match codec::state_from_base64::<LwwSet>(data.trim()) {
                        Ok(state) => {
                            replica.merge(&state);
                            shown.lock().unwrap().members =
                                Some(replica.members().cloned().collect());
                            ctx.counters.events.fetch_add(1, Relaxed);
                        }
                        Err(e) => {
                            ctx.counters.viewer_errors.fetch_add(1, Relaxed);
                            ctx.note(&format!("{path}: an event that is not a set: {e}"));
                        }
                    }
                }
                if ctx.stop_viewers.load(Relaxed) || Instant::now() >= ctx.hard_deadline {
                    return;
                }
            }
            sleep_ms(200);
        }
    }

    // ------------------------------------------------------------ checks

    #[derive(Clone, Debug, PartialEq, Eq)]
    struct NodeView {
        members: BTreeSet<Element>,
        latest: u64,
        bias: String,
    }

    fn read_node(http: &Http, set_path: &str, node: u64) -> Result<NodeView, String> {
        let reply = http
            .get(&format!("{set_path}?node=node-{node}"))
            .map_err(|f| f.text().to_owned())?;
        let members = reply["members"]
            .as_array()
            .ok_or("the reply has no `members`")?
            .iter()
            .map(|v| Element::from_json(v).ok_or(format!("member {v} is not an element")))
            .collect::<Result<_, _>>()?;
        Ok(NodeView {
            members,
            latest: reply["latest"]
                .as_u64()
                .ok_or("the reply has no `latest`")?,
            bias: reply["bias"].as_str().unwrap_or("?").to_owned(),
        })
    }

    struct Quiet {
        converged: bool,
        /// from the end of the load to the end of the first poll of the
        /// agreeing run: an upper bound, to within one poll
        after: Duration,
        views: Vec<Result<NodeView, String>>,
    }

    /// Polls every node until all give the same members and `latest` for
    /// `streak` polls in a row, or until `timeout`.
    fn quiesce(ctx: &Ctx, stopped: Instant, timeout: Duration, streak: u32) -> Quiet {
        let http = Http::new(&ctx.opts.base, Duration::from_secs(10));
        let mut run = 0;
        let mut run_start = stopped;
        loop {
            let views: Vec<_> = (0..ctx.opts.nodes)
                .map(|n| read_node(&http, &ctx.set_path, n))
                .collect();
            let same = views.iter().all(|v| v.is_ok())
                && views.windows(2).all(|w| {
                    let (a, b) = (w[0].as_ref().unwrap(), w[1].as_ref().unwrap());
                    a.members == b.members && a.latest == b.latest
                });
            if same {
                if run == 0 {
                    // Every node read here already held every acknowledged
                    // write (the node that took the last one has it, and
                    // all agree), so the nodes agreed by the end of it.
                    run_start = Instant::now();
                }
                run += 1;
                if run >= streak {
                    return Quiet {
                        converged: true,
                        after: run_start.saturating_duration_since(stopped),
                        views,
                    };
                }
            } else {
                run = 0;
            }
            if stopped.elapsed() >= timeout {
                return Quiet {
                    converged: false,
                    after: stopped.elapsed(),
                    views,
                };
            }
            sleep_ms(50);
        }
    }

    /// What the log says: per element the latest add and remove.
    struct Oracle {
        adds: BTreeMap<Element, u64>,
        removes: BTreeMap<Element, u64>,
        bias: Bias,
        latest: u64,
    }

    impl Oracle {
        fn new(bias: Bias, created: u64) -> Oracle {
            Oracle {
                adds: BTreeMap::new(),
                removes: BTreeMap::new(),
                bias,
                latest: created,
            }
        }

        fn record(&mut self, add: bool, e: &Element, t: u64) {
            let side = if add {
                &mut self.adds
            } else {
                &mut self.removes
            };
            let slot = side.entry(e.clone()).or_insert(0);
            *slot = (*slot).max(t);
            self.latest = self.latest.max(t);
        }

        /// The LWW rule: present when the latest add is later than the
        /// latest remove, or equal with add-wins bias.
        fn present(&self, e: &Element) -> bool {
            match (self.adds.get(e), self.removes.get(e)) {
                (None, _) => false,
                (Some(_), None) => true,
                (Some(a), Some(r)) => a > r || (a == r && self.bias == Bias::AddWins),
            }
        }

        fn members(&self) -> BTreeSet<Element> {
            self.adds
                .keys()
                .filter(|e| self.present(e))
                .cloned()
                .collect()
        }

        /// Elements whose latest add and remove carry the same stamp.
        fn ties(&self) -> usize {
            self.adds
                .iter()
                .filter(|(e, a)| self.removes.get(*e) == Some(*a))
                .count()
        }

        fn explain(&self, e: &Element) -> String {
            let t = |m: &BTreeMap<Element, u64>| {
                m.get(e).map_or("none".to_owned(), |t| {
                    format!("{t} ({} ms)", Hlc::millis(*t))
                })
            };
            format!(
                "{e}: latest add {}, latest remove {}",
                t(&self.adds),
                t(&self.removes)
            )
        }
    }

    /// "2 extra [a, b], 1 missing [c]" of `got` against `want`, or `None`.
    fn difference(
        got: &BTreeSet<Element>,
        want: &BTreeSet<Element>,
        skip: &BTreeSet<Element>,
    ) -> Option<(Vec<Element>, Vec<Element>)> {
        let extra: Vec<_> = got
            .difference(want)
            .filter(|e| !skip.contains(*e))
            .cloned()
            .collect();
        let missing: Vec<_> = want
            .difference(got)
            .filter(|e| !skip.contains(*e))
            .cloned()
            .collect();
        (!extra.is_empty() || !missing.is_empty()).then_some((extra, missing))
    }

    fn show(list: &[Element]) -> String {
        let first: Vec<String> = list.iter().take(5).map(|e| e.to_string()).collect();
        let more = if list.len() > 5 { ", …" } else { "" };
        format!("{} [{}{more}]", list.len(), first.join(", "))
    }

    fn secs(d: Duration) -> f64 {
        d.as_secs_f64()
    }

    // ------------------------------------------------------------ main

    pub fn main() -> i32 {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let opts = match parse_args(&args) {
            Ok(o) => o,
            Err(e) if e.is_empty() => {
                println!("{USAGE}");
                return 0;
            }
            Err(e) => {
                eprintln!("monkeys: {e}\n\n{USAGE}");
                return 2;
            }
        };
        match run(opts) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("monkeys: {e}");
                2
            }
        }
    }

    fn run(opts: Options) -> Result<i32, String> {
        println!(
            "monkeys: seed {} (rerun with --seed {}), {} against {} ({} nodes), set {:?} ({})",
            opts.seed,
            opts.seed,
            format_args!(
                "{} normal, {} offline-online, {} viewer ({:?})",
                opts.normal, opts.offline, opts.viewers, opts.viewer_mode
            ),
            opts.base,
            opts.nodes,
            opts.set,
            bias_name(opts.bias),
        );
        let encoded: String = opts
            .set
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        let set_path = format!("/api/sets/{encoded}");
        let http = Http::new(&opts.base, Duration::from_secs(30));

        // What the set already holds counts in the oracle: the union of
        // every node's entries.
        let mut before = LwwSet::default();
        for n in 0..opts.nodes {
            let reply = http
                .get(&format!("{set_path}/updates?since=0&node=node-{n}"))
                .map_err(|f| format!("cannot read the set at node-{n}: {}", f.text()))?;
            merge_entries(
                &mut before,
                &entries(&reply, "adds")?,
                &entries(&reply, "removes")?,
            );
        }
        let (old_adds, old_removes) = before.entries();
        if !old_adds.is_empty() || !old_removes.is_empty() {
            println!(
                "the set already holds {} entries: they count in the oracle",
                old_adds.len() + old_removes.len()
            );
        }

        let mut rng = Rng::new(opts.seed, 0);
        let created = http
            .send(
                "PUT",
                &format!("{set_path}?node=node-{}", rng.below(opts.nodes)),
                &json!({"bias": bias_name(opts.bias)}),
                None,
            )
            .map_err(|f| format!("cannot create the set: {}", f.text()))?;
        let created_stamp = created["stamp"]
            .as_u64()
            .ok_or("the creation's reply has no `stamp`: is the Worker built from this tree?")?;
        if bias_of(created["bias"].as_str()) != Some(opts.bias) {
            return Err(format!(
                "the set has bias {}, not {}",
                created["bias"],
                bias_name(opts.bias)
            ));
        }
        let mut oracle = Oracle::new(opts.bias, created_stamp);
        for (e, t) in old_adds {
            oracle.record(true, e, *t);
        }
        for (e, t) in old_removes {
            oracle.record(false, e, *t);
        }

        let pool = Pool::new(opts.pool, &mut rng);
        let load = Duration::from_secs_f64(opts.seconds);
        let converge_timeout = Duration::from_secs_f64(opts.converge_timeout);
        let viewer_timeout = Duration::from_secs(20);
        let hard = load + converge_timeout + viewer_timeout + Duration::from_secs(30);
        let start = Instant::now();
        let ctx = Arc::new(Ctx {
            set_path,
            pool,
            load_deadline: start + load,
            hard_deadline: start + hard,
            viewer_max_ops: hard.as_secs() * 10 + 100,
            counters: Counters::default(),
            stop_viewers: AtomicBool::new(false),
            fatal: Mutex::new(None),
            first_errors: Mutex::new(Vec::new()),
            ties: Mutex::new(Vec::new()),
            opts,
        });
        let opts = &ctx.opts;

        // Viewers first, so that they see the load from the start.
        let mut shown = Vec::new();
        for i in 0..opts.viewers {
            let state = Arc::new(Mutex::new(ViewerState::default()));
            let sse = match opts.viewer_mode {
                ViewerMode::Sse => true,
                ViewerMode::Poll => false,
                ViewerMode::Both => i % 2 == 1,
            };
            shown.push((sse, state.clone()));
            let ctx = ctx.clone();
            let rng = Rng::new(opts.seed, 3_000 + i as u64);
            let node = i as u64 % opts.nodes;
            // Viewers are not joined: an SSE read may wait for the next
            // event, and the process ends when the check is done.
            thread::spawn(move || {
                if sse {
                    sse_viewer(&ctx, node, &state)
                } else {
                    poll_viewer(&ctx, rng, &state)
                }
            });
        }
        let mut load_threads = Vec::new();
        for i in 0..opts.normal {
            let ctx = ctx.clone();
            let rng = Rng::new(opts.seed, 1_000 + i as u64);
            load_threads.push(thread::spawn(move || normal_worker(&ctx, i, rng)));
        }
        for i in 0..opts.offline {
            let ctx = ctx.clone();
            let rng = Rng::new(opts.seed, 2_000 + i as u64);
            load_threads.push(thread::spawn(move || offline_worker(&ctx, 1_000 + i, rng)));
        }

        // Progress: one line a second.
        let done = Arc::new(AtomicBool::new(false));
        let progress = {
            let (ctx, done) = (ctx.clone(), done.clone());
            thread::spawn(move || {
                let c = &ctx.counters;
                let mut last = 0;
                let mut tick = 0u64;
                while !done.load(Relaxed) {
                    sleep_ms(100);
                    let due = start + Duration::from_secs(tick + 1);
                    if Instant::now() < due {
                        continue;
                    }
                    tick += 1;
                    let normal = c.normal_acked.load(Relaxed);
                    let offline = c.offline_acked.load(Relaxed);
                    let acked = normal + offline;
                    println!(
                        "[{tick:>3}s] acked {acked} (normal {normal}, offline {offline} in {} syncs), {} ops/s, errors {} ({} uncertain); viewers: {} polls, {} events, {} errors",
                        c.syncs.load(Relaxed),
                        acked - last,
                        c.errors.load(Relaxed),
                        c.uncertain.load(Relaxed),
                        c.polls.load(Relaxed),
                        c.events.load(Relaxed),
                        c.viewer_errors.load(Relaxed),
                    );
                    let _ = std::io::stdout().flush();
                    last = acked;
                }
            })
        };

        let mut log = Vec::new();
        let mut uncertain = BTreeSet::new();
        for t in load_threads {
            let out = t.join().map_err(|_| "a worker panicked".to_owned())?;
            log.extend(out.log);
            uncertain.extend(out.uncertain);
        }
        let stopped = Instant::now();
        let load_secs = secs(stopped - start);
        println!(
            "load stopped after {load_secs:.1} s; waiting for the nodes to agree (up to {} s)",
            opts.converge_timeout
        );

        let quiet = quiesce(&ctx, stopped, converge_timeout, 4);
        let agreed = quiet.views.first().and_then(|v| v.as_ref().ok()).cloned();

        // Viewers: until each shows the nodes' set, or 20 s.
        let mut viewers_after = None;
        if opts.viewers > 0 {
            if let (true, Some(target)) = (quiet.converged, &agreed) {
                let since = Instant::now();
                while since.elapsed() < viewer_timeout {
                    let all = shown
                        .iter()
                        .all(|(_, s)| s.lock().unwrap().members.as_ref() == Some(&target.members));
                    if all {
                        viewers_after = Some(since.elapsed());
                        break;
                    }
                    sleep_ms(50);
                }
            }
        }
        ctx.stop_viewers.store(true, Relaxed);
        done.store(true, Relaxed);
        let _ = progress.join();

        // ---------------------------------------------------- the report
        let c = &ctx.counters;
        let mut mismatches: Vec<String> = Vec::new();
        if let Some(why) = ctx.fatal.lock().unwrap().clone() {
            mismatches.push(format!("stopped early: {why}"));
        }
        for entry in &log {
            oracle.record(entry.add, &entry.element, entry.stamp);
        }
        let expected = oracle.members();
        let normal = c.normal_acked.load(Relaxed);
        let offline = c.offline_acked.load(Relaxed);
        let acked = normal + offline;
        println!();
        println!("== result");
        println!(
            "acknowledged: {acked} ops in {load_secs:.1} s = {:.1} ops/s (normal: {normal} writes, {:.1}/s; offline-online: {offline} changes in {} syncs, {:.1}/s); {} element entries logged",
            acked as f64 / load_secs,
            normal as f64 / load_secs,
            c.syncs.load(Relaxed),
            offline as f64 / load_secs,
            log.len(),
        );
        println!(
            "errors: {} ({} with unknown outcome; {} elements left out of the oracle check); viewer errors: {}",
            c.errors.load(Relaxed),
            c.uncertain.load(Relaxed),
            uncertain.len(),
            c.viewer_errors.load(Relaxed),
        );
        for e in ctx.first_errors.lock().unwrap().iter() {
            println!("  error: {e}");
        }
        if acked == 0 {
            mismatches.push("nothing was acknowledged".into());
        }

        if quiet.converged {
            let v = agreed.as_ref().expect("converged views are Ok");
            println!(
                "converged: yes, all {} nodes agree ({} members, latest {}, bias {}) {:.3} s after the load stopped",
                opts.nodes,
                v.members.len(),
                v.latest,
                v.bias,
                secs(quiet.after)
            );
        } else {
            println!(
                "converged: NO, the nodes still disagree {:.1} s after the load stopped",
                secs(quiet.after)
            );
            mismatches.push("the nodes did not converge".into());
        }
        // Every node against the oracle (and so against each other).
        for (n, view) in quiet.views.iter().enumerate() {
            match view {
                Err(e) => mismatches.push(format!("node-{n}: no answer: {e}")),
                Ok(v) => {
                    if v.bias != bias_name(oracle.bias) {
                        mismatches.push(format!(
                            "node-{n}: bias {} instead of {}",
                            v.bias,
                            bias_name(oracle.bias)
                        ));
                    }
                    if let Some((extra, missing)) = difference(&v.members, &expected, &uncertain) {
                        let first = extra.iter().chain(&missing).next().expect("one differs");
                        mismatches.push(format!(
                            "node-{n} against the oracle: {} extra, {} missing; {}",
                            show(&extra),
                            show(&missing),
                            oracle.explain(first)
                        ));
                    }
                    let latest_ok = if uncertain.is_empty() {
                        v.latest == oracle.latest
                    } else {
                        v.latest >= oracle.latest
                    };
                    if !latest_ok {
                        mismatches.push(format!(
                            "node-{n}: latest {} but the log's latest is {}",
                            v.latest, oracle.latest
                        ));
                    }
                }
            }
        }
        // Every viewer against the nodes' set, and the oracle.
        let mut viewers_ok = 0;
        for (i, (sse, state)) in shown.iter().enumerate() {
            let kind = if *sse { "sse" } else { "poll" };
            let members = state.lock().unwrap().members.clone();
            let Some(members) = members else {
                mismatches.push(format!("viewer {i} ({kind}): never received the set"));
                continue;
            };
            let mut ok = agreed.is_some();
            if let Some(target) = &agreed {
                if let Some((extra, missing)) =
                    difference(&members, &target.members, &BTreeSet::new())
                {
                    ok = false;
                    mismatches.push(format!(
                        "viewer {i} ({kind}) against the nodes: {} extra, {} missing",
                        show(&extra),
                        show(&missing)
                    ));
                }
            }
            if let Some((extra, missing)) = difference(&members, &expected, &uncertain) {
                mismatches.push(format!(
                    "viewer {i} ({kind}) against the oracle: {} extra, {} missing",
                    show(&extra),
                    show(&missing)
                ));
            }
            viewers_ok += usize::from(ok);
        }
        if opts.viewers > 0 {
            let polls = shown.iter().filter(|(sse, _)| !sse).count();
            println!(
                "viewers: {viewers_ok} of {} hold the nodes' set ({polls} polling: {} polls; {} on SSE: {} events){}",
                opts.viewers,
                c.polls.load(Relaxed),
                opts.viewers - polls,
                c.events.load(Relaxed),
                viewers_after.map_or(String::new(), |d| format!(", all {:.3} s after the nodes agreed", secs(d))),
            );
        }
        println!(
            "oracle: {} members from {} logged entries, latest {}, bias {}; {} elements end in a tie that the bias decides",
            expected.len(),
            log.len(),
            oracle.latest,
            bias_name(oracle.bias),
            oracle.ties(),
        );
        for m in &mismatches {
            println!("MISMATCH: {m}");
        }
        println!(
            "summary: acked={acked} ops_per_s={:.1} normal={normal} offline={offline} syncs={} errors={} uncertain={} converged={} converge_ms={} viewers_ok={viewers_ok}/{} mismatches={}",
            acked as f64 / load_secs,
            c.syncs.load(Relaxed),
            c.errors.load(Relaxed),
            c.uncertain.load(Relaxed),
            if quiet.converged { "yes" } else { "no" },
            quiet.after.as_millis(),
            opts.viewers,
            mismatches.len(),
        );
        if mismatches.is_empty() {
            println!("OK: every node and viewer holds the set the log of acknowledged operations implies");
            Ok(0)
        } else {
            println!("FAILED: {} mismatch(es)", mismatches.len());
            Ok(1)
        }
    }

    #[cfg(test)]
    mod test {
        use super::*;

        #[test]
        fn only_loopback_urls() {
            assert_eq!(
                loopback_base("http://127.0.0.1:8787/").unwrap(),
                "http://127.0.0.1:8787"
            );
            assert!(loopback_base("http://127.8.9.10:1").is_ok());
            assert!(loopback_base("http://[::1]:8787").is_ok());
            for bad in [
                "https://127.0.0.1:8787",
                "http://10.0.0.1:8787",
                "http://example.com",
                "http://127.0.0.1.example.com",
                "http://[::2]:80",
                "http://127.0.0.1:0",
                "http://user@127.0.0.1",
                "http://127.0.0.1:8787/api",
                "ftp://127.0.0.1",
            ] {
                assert!(loopback_base(bad).is_err(), "{bad}");
            }
        }

        #[test]
        fn the_sync_token_in_dev_vars() {
            let text = "ADMIN_TOKEN=\"a\"\nSYNC_TOKEN=\"b1\"\n";
            assert_eq!(sync_token_in(text).as_deref(), Some("b1"));
            assert_eq!(sync_token_in("SYNC_TOKEN=plain").as_deref(), Some("plain"));
            assert_eq!(sync_token_in("SYNC_TOKEN=''\nX=1"), None);
            assert_eq!(sync_token_in("ADMIN_TOKEN=a"), None);
        }

        #[test]
        fn the_oracle_applies_lww_with_the_bias() {
            let a = Element::Str("a".into());
            for (bias, present) in [(Bias::AddWins, true), (Bias::RemoveWins, false)] {
                let mut o = Oracle::new(bias, 1);
                o.record(true, &a, 5);
                o.record(false, &a, 5);
                assert_eq!(o.present(&a), present);
                o.record(true, &a, 4);
                assert_eq!(o.present(&a), present);
                o.record(true, &a, 6);
                assert!(o.present(&a));
                assert_eq!(o.latest, 6);
            }
        }

        #[test]
        fn seeded_choices_repeat() {
            let (mut a, mut b) = (Rng::new(7, 1), Rng::new(7, 1));
            let (pa, pb) = (Pool::new(200, &mut a), Pool::new(200, &mut b));
            assert_eq!(pa.items, pb.items);
            assert_eq!(pa.items.len(), 200);
            assert!((0..1000).all(|_| a.below(10) < 10 && a.range(3, 5) >= 3));
            assert_ne!(Rng::new(7, 2).next(), Rng::new(7, 1).next());
        }
    }
}
