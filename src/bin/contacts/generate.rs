//! The options, the generator and the check.

use crate::db::Db;
use crate::net::{sync, Failure, Server};
use edge_crdt::crdt::contacts::{ClockId, Column, ContactId, ContactRow, Value};
use edge_crdt::kinds::contacts::{Cursor, Outcome, Replica};
use edge_crdt::Rng;
use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const USAGE: &str = "usage: contacts --db PATH [--url URL] [--book NAME] [--seconds S] [--seed N] [--check] [--nodes K]
  --db PATH       the client's SQLite database (created if missing; its client id is kept there)
  --url URL       the cluster (default http://127.0.0.1:8787)
  --book NAME     the address book (default cli)
  --seconds S     generate for S seconds: create, edit and delete at random, offline now and then (default 10)
  --seed N        seed of the random choices (default: from the clock; printed)
  --check         no generating: sync, then compare the database with every node's book until they agree
  --nodes K       nodes node-0..node-{K-1} the check compares with (default 4)
  --timeout S     how long the final sync and the check may take (default 60)
Pushes carry `Authorization: Bearer $WRITE_TOKEN` when that variable is set
(a deployment with contacts in WRITE_PROTECTED takes no other).";

struct Options {
    db: String,
    url: String,
    book: String,
    seconds: f64,
    seed: u64,
    check: bool,
    nodes: u32,
    timeout: u64,
}

fn parse(args: Vec<String>) -> Result<Options, String> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut o = Options {
        db: String::new(),
        url: "http://127.0.0.1:8787".into(),
        book: "cli".into(),
        seconds: 10.0,
        seed: nanos ^ u64::from(std::process::id()),
        check: false,
        nodes: 4,
        timeout: 60,
    };
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        if flag == "--check" {
            o.check = true;
            continue;
        }
        if flag == "--help" || flag == "-h" {
            return Err(USAGE.into());
        }
        let value = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let number = |v: &str| {
            v.parse::<f64>()
                .map_err(|_| format!("{flag} takes a number, not `{v}`"))
        };
        match flag.as_str() {
            "--db" => o.db = value,
            "--url" => o.url = value,
            "--book" => o.book = value,
            "--seconds" => o.seconds = number(&value)?,
            "--seed" => {
                o.seed = value
                    .parse()
                    .map_err(|_| format!("--seed takes an integer, not `{value}`"))?
            }
            "--nodes" => o.nodes = number(&value)? as u32,
            "--timeout" => o.timeout = number(&value)? as u64,
            _ => return Err(format!("unknown option {flag}\n{USAGE}")),
        }
    }
    if o.db.is_empty() {
        return Err(format!("--db is required\n{USAGE}"));
    }
    Ok(o)
}

pub fn main(args: Vec<String>) -> i32 {
    let o = match parse(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    match run(&o) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("contacts: {e}");
            1
        }
    }
}

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn run(o: &Options) -> Result<(), String> {
    let mut db = Db::open(&o.db)?;
    let mut rng = Rng::new(o.seed);
    let mut replica = db.load(ClockId::client(rng.next_u64()))?;
    let server = Server::new(&o.url, &o.book);
    println!(
        "contacts: client {} on book {} ({}), seed {}, {} pending from before",
        replica.client(),
        o.book,
        o.db,
        o.seed,
        replica.pending()
    );
    if !o.check {
        generate(o, &server, &mut replica, &mut db, &mut rng)?;
    }
    let deadline = Instant::now() + Duration::from_secs(o.timeout);
    settle(&server, &mut replica, &mut db, deadline)?;
    check(o, &server, &mut replica, &mut db, deadline)
}

/// Syncs until the outbox is empty.
fn settle(
    server: &Server,
    replica: &mut Replica,
    db: &mut Db,
    deadline: Instant,
) -> Result<(), String> {
    loop {
        match sync(server, replica, db) {
            Ok(()) if replica.pending() == 0 => return Ok(()),
            Ok(()) => {}
            Err(e) => eprintln!("contacts: sync: {e}"),
        }
        if Instant::now() > deadline {
            return Err(format!("{} deltas still unacknowledged", replica.pending()));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn generate(
    o: &Options,
    server: &Server,
    replica: &mut Replica,
    db: &mut Db,
    rng: &mut Rng,
) -> Result<(), String> {
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(o.seconds);
    let (mut ops, mut syncs, mut errors, mut offline_until) = (0u64, 0u64, 0u64, start);
    let mut report = start + Duration::from_secs(1);
    while Instant::now() < end {
        let id = edit_at_random(replica, rng)?;
        db.save(replica, &[id])?;
        ops += 1;
        let now = Instant::now();
        if now >= offline_until {
            if rng.chance(30) {
                offline_until = now + Duration::from_millis(rng.range(300, 1_500));
            } else {
                match sync(server, replica, db) {
                    Ok(()) => syncs += 1,
                    Err(Failure::Refused(422, m)) => {
                        errors += 1;
                        eprintln!("contacts: the server refused a stamp, keeping the outbox: {m}");
                    }
                    Err(e) => {
                        errors += 1;
                        eprintln!("contacts: sync: {e}");
                    }
                }
            }
        }
        if now >= report {
            let offline = if now < offline_until { ", offline" } else { "" };
            println!(
                "[{:>3.0} s] {ops} edits, {} pending, {syncs} syncs, {errors} errors{offline}",
                start.elapsed().as_secs_f64(),
                replica.pending()
            );
            report += Duration::from_secs(1);
        }
        std::thread::sleep(Duration::from_millis(rng.range(5, 30)));
    }
    println!(
        "contacts: {ops} edits in {:.1} s, {syncs} syncs, {errors} errors",
        o.seconds
    );
    Ok(())
}

/// One random edit: create, edit a column, delete, or bring back.
fn edit_at_random(replica: &mut Replica, rng: &mut Rng) -> Result<ContactId, String> {
    let ids: Vec<ContactId> = replica.rows().keys().cloned().collect();
    let roll = rng.below(100);
    let (id, column, value) = if ids.is_empty() || roll < 25 {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&rng.next_u64().to_le_bytes());
        bytes[8..].copy_from_slice(&rng.next_u64().to_le_bytes());
        let id = uuid::Builder::from_random_bytes(bytes)
            .into_uuid()
            .to_string();
        (
            id.parse()?,
            Column::Name,
            Value::Text(format!("person {}", rng.below(1_000))),
        )
    } else {
        let id = ids[rng.below(ids.len() as u64) as usize].clone();
        match roll {
            25..=84 => {
                let column = [Column::Name, Column::Phone, Column::Email][rng.below(3) as usize];
                (
                    id,
                    column,
                    Value::Text(format!("{}-{}", column.name(), rng.below(100_000))),
                )
            }
            85..=96 => (id, Column::Tombstone, Value::Flag(true)),
            _ => (id, Column::Tombstone, Value::Flag(false)),
        }
    };
    replica
        .edit(&id, column, value, wall_ms())
        .map_err(|e| e.to_string())?;
    Ok(id)
}

/// Pulls, then compares the database's contacts with each node's, until
/// all agree (other clients may still be writing).
fn check(
    o: &Options,
    server: &Server,
    replica: &mut Replica,
    db: &mut Db,
    deadline: Instant,
) -> Result<(), String> {
    loop {
        if let Err(e) = sync(server, replica, db) {
            eprintln!("contacts: sync: {e}");
        }
        let mine = replica.rows();
        let mut differing = Vec::new();
        for n in 0..o.nodes {
            let node = format!("node-{n}");
            match snapshot(server, &node) {
                Ok(theirs) if &theirs == mine => {}
                Ok(theirs) => differing.push(format!("{node}: {}", difference(mine, &theirs))),
                Err(e) => differing.push(format!("{node}: {e}")),
            }
        }
        if differing.is_empty() {
            println!(
                "contacts: check passed: {} contacts, the same on {} nodes",
                mine.len(),
                o.nodes
            );
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the database differs from the server: {}",
                differing.join("; ")
            ));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Every contact at `node`, from a pull that starts from nothing.
fn snapshot(server: &Server, node: &str) -> Result<BTreeMap<ContactId, ContactRow>, Failure> {
    let mut whole = Replica::new(ClockId::client(0));
    let mut cursor = Cursor::default();
    for _ in 0..1_000 {
        let Outcome::Changes {
            changes,
            cursor: next,
            more,
            ..
        } = server.changes(&cursor, Some(node))?
        else {
            return Err(Failure::Unreachable(
                "a pull replied with something else".into(),
            ));
        };
        whole.merge(changes);
        cursor = next;
        if !more {
            break;
        }
    }
    Ok(whole.rows().clone())
}

fn difference(
    mine: &BTreeMap<ContactId, ContactRow>,
    theirs: &BTreeMap<ContactId, ContactRow>,
) -> String {
    let only_mine = mine.keys().filter(|k| !theirs.contains_key(*k)).count();
    let only_theirs = theirs.keys().filter(|k| !mine.contains_key(*k)).count();
    let changed: Vec<&ContactId> = mine
        .iter()
        .filter(|(k, r)| theirs.get(*k).is_some_and(|t| t != *r))
        .map(|(k, _)| k)
        .collect();
    format!(
        "{only_mine} contacts only here, {only_theirs} only there, {} differ (first: {:?})",
        changed.len(),
        changed.first().map(|k| (mine.get(*k), theirs.get(*k)))
    )
}
