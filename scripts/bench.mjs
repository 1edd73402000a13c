// The measuring half of scripts/bench.sh (run that, not this): given a
// running `wrangler dev` with BENCH_BASELINE=on and an admin token, measures
//   1. throughput: wrk on the cluster increment vs the naive baseline,
//   2. gossip bytes and frames per increment at a steady write rate,
//   3. time to converge after a burst of writes stops,
//   4. bundle sizes (from a `wrangler deploy --dry-run` output dir),
// then prints a summary table and writes the figures as JSON.
//
// Inputs come from the environment (bench.sh sets them):
//   BENCH_BASE       http://127.0.0.1:PORT
//   BENCH_TOKEN      the ADMIN_TOKEN given to wrangler dev with --var
//   BENCH_LUA        the wrk script (scripts/bench-post.lua)
//   BENCH_BUNDLE     the --outdir of `wrangler deploy --dry-run`
//   BENCH_DRYRUN_LOG that command's output (for its "Total Upload" line)
//   BENCH_BUNDLE_CORE, BENCH_DRYRUN_CORE_LOG  the same for the Worker built
//                    with counters, sets and registers only (WORKER_KINDS=)
//   BENCH_BROWSER_WASM  the browser module's .wasm
//   BENCH_CONFIG     the wrangler config the server runs with
//   BENCH_OUT        where to write the JSON
//   BENCH_SERVER_PGID  wrangler's process group, to tell our CPU use from others'
// and optional knobs: BENCH_WRK_THREADS (2), BENCH_WRK_CONNECTIONS (16),
// BENCH_WRK_SECONDS (10), BENCH_WARMUP_SECONDS (3), BENCH_ROUNDS (4),
// BENCH_GOSSIP_INCREMENTS (2000), BENCH_GOSSIP_RATE (100 per second),
// BENCH_GOSSIP_LOOPS (16), BENCH_CONVERGE_REPEATS (5), BENCH_BURST (200).
// Node 20, no dependencies.

import { spawn, spawnSync } from "node:child_process";
import { readFileSync, readdirSync, writeFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

const env = process.env;
const need = (name) => {
  if (!env[name]) throw new Error(`bench.mjs: ${name} is not set (run scripts/bench.sh)`);
  return env[name];
};
const num = (name, dflt) => {
  const v = Number(env[name] ?? dflt);
  if (!Number.isFinite(v) || v <= 0) throw new Error(`${name} must be a positive number`);
  return v;
};

const BASE = need("BENCH_BASE");
const TOKEN = need("BENCH_TOKEN");
const LUA = need("BENCH_LUA");
const OUT = need("BENCH_OUT");
const WRK = {
  threads: num("BENCH_WRK_THREADS", 2),
  connections: num("BENCH_WRK_CONNECTIONS", 16),
  seconds: num("BENCH_WRK_SECONDS", 10),
  warmup: num("BENCH_WARMUP_SECONDS", 3),
  rounds: num("BENCH_ROUNDS", 4),
};
const GOSSIP = {
  increments: num("BENCH_GOSSIP_INCREMENTS", 2000),
  rate: num("BENCH_GOSSIP_RATE", 100),
  loops: num("BENCH_GOSSIP_LOOPS", 16),
};
const CONVERGE = { repeats: num("BENCH_CONVERGE_REPEATS", 5), burst: num("BENCH_BURST", 200) };
const POLL_MS = 20;

const hhmmss = () => new Date().toTimeString().slice(0, 8);
const log = (msg) => console.log(`[${hhmmss()}] ${msg}`);
const step = (msg) => console.log(`\n[${hhmmss()}] == ${msg}`);
const problems = [];
const problem = (msg) => {
  problems.push(msg);
  log(`PROBLEM: ${msg}`);
};
const warnings = [];
const warn = (msg) => {
  warnings.push(msg);
  log(`warning: ${msg}`);
};

// ---------------------------------------------------------------- CPU accounting
// The machine is shared: other processes (builds, tests) can take CPU from
// the server during a round. Each wrk round reports how busy the machine was
// and how much of that was not the server (wrangler's process group), wrk or
// this script, in % of all cores.

const SERVER_PGID = Number(env.BENCH_SERVER_PGID || 0);
const OTHER_CPU_WARN_PCT = 10;

function cpuSnapshot() {
  try {
    const f = readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
    const [user, nice, system, idle, iowait, irq, softirq, steal] = f;
    const busy = user + nice + system + irq + softirq + (steal || 0);
    let ours = 0;
    for (const p of readdirSync("/proc")) {
      if (!/^\d+$/.test(p)) continue;
      let stat;
      try {
        stat = readFileSync(`/proc/${p}/stat`, "utf8");
      } catch {
        continue;
      }
      // After "(comm) ": state ppid pgrp ... utime(14) stime cutime cstime.
      const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(p) === process.pid || (SERVER_PGID && Number(rest[2]) === SERVER_PGID)) {
        // cutime/cstime: wrk's time lands in ours once it is reaped.
        ours += Number(rest[11]) + Number(rest[12]) + Number(rest[13]) + Number(rest[14]);
      }
    }
    return { busy, total: busy + idle + iowait, ours };
  } catch {
    return null;
  }
}

function cpuShare(a, b) {
  if (!a || !b || b.total <= a.total) return null;
  const total = b.total - a.total;
  const busy = b.busy - a.busy;
  const ours = Math.min(busy, b.ours - a.ours);
  return { busy_pct: (100 * busy) / total, ours_pct: (100 * ours) / total, others_pct: Math.max(0, (100 * (busy - ours)) / total) };
}

// ---------------------------------------------------------------- HTTP

const admin = { authorization: `Bearer ${TOKEN}` };

async function getJson(path, headers = {}) {
  const res = await fetch(BASE + path, { headers });
  const text = await res.text();
  if (!res.ok) throw new Error(`GET ${path}: ${res.status} ${text.slice(0, 300)}`);
  return JSON.parse(text);
}

/** One increment at `node`; resolves to {ok, status, at} (at = ack time, ms). */
async function increment(name, node) {
  const res = await fetch(`${BASE}/api/counters/${name}/increment?node=${node}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: '{"by": 1}',
  });
  const text = await res.text();
  return { ok: res.ok, status: res.status, at: performance.now(), body: text };
}

async function readAt(name, node) {
  const view = await getJson(`/api/counters/${name}?node=${node}`);
  if (view.node !== node) throw new Error(`asked ${node}, ${view.node} answered`);
  return view.value;
}

async function activeNodes() {
  const view = await getJson("/admin/nodes", admin);
  return Object.entries(view.members)
    .filter(([, status]) => status === "active")
    .map(([id]) => id)
    .sort((a, b) => Number(a.split("-")[1]) - Number(b.split("-")[1]));
}

/** Every node's `sent` counters, each read from that node by GET /admin/nodes/:id. */
async function readSent(nodes) {
  const views = await Promise.all(nodes.map((id) => getJson(`/admin/nodes/${id}`, admin)));
  const sent = {};
  views.forEach((v, i) => {
    if (v.node !== nodes[i]) throw new Error(`asked ${nodes[i]} for its view, ${v.node} answered`);
    sent[v.node] = { frames: v.sent.frames, bytes: v.sent.bytes };
  });
  return sent;
}

function sentDelta(before, after) {
  let frames = 0;
  let bytes = 0;
  for (const id of Object.keys(after)) {
    const a = after[id];
    const b = before[id] ?? { frames: 0, bytes: 0 };
    if (a.bytes < b.bytes || a.frames < b.frames) {
      problem(`${id}'s sent counters went down (object restarted?): the gossip figures are unreliable`);
    }
    frames += a.frames - b.frames;
    bytes += a.bytes - b.bytes;
  }
  return { frames, bytes };
}

/** Polls every node every POLL_MS until `check(values)` holds; returns the time it did. */
async function pollUntil(name, nodes, check, timeoutMs = 15_000) {
  const start = performance.now();
  for (;;) {
    const round = performance.now();
    const values = await Promise.all(nodes.map((id) => readAt(name, id)));
    const now = performance.now();
    if (check(values)) return { at: now, values };
    if (now - start > timeoutMs) return { at: null, values };
    const wait = round + POLL_MS - performance.now();
    if (wait > 0) await sleep(wait);
  }
}

// ---------------------------------------------------------------- 1. throughput

function runWrk(label, path, seconds) {
  const args = [
    `-t${WRK.threads}`, `-c${WRK.connections}`, `-d${seconds}s`, "--timeout", "5s",
    "-s", LUA, BASE + path,
  ];
  log(`wrk ${args.join(" ")}  (${label})`);
  return new Promise((resolve, reject) => {
    const cpu0 = cpuSnapshot();
    const child = spawn("wrk", args, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (err += d));
    child.on("error", reject);
    child.on("close", (code) => {
      const line = out.split("\n").find((l) => l.startsWith("BENCH_WRK "));
      if (code !== 0 || !line) {
        reject(new Error(`wrk exited ${code}:\n${out}\n${err}`));
        return;
      }
      const r = JSON.parse(line.slice("BENCH_WRK ".length));
      const e = r.errors;
      const result = {
        label,
        path,
        seconds: r.duration_us / 1e6,
        requests: r.requests,
        rps: r.requests / (r.duration_us / 1e6),
        non2xx: e.status,
        socket_errors: e.connect + e.read + e.write + e.timeout,
        latency_ms: Object.fromEntries(Object.entries(r.latency_us).map(([k, v]) => [k, v / 1000])),
        cpu: cpuShare(cpu0, cpuSnapshot()),
      };
      const cpuNote = result.cpu
        ? `; CPU busy ${result.cpu.busy_pct.toFixed(0)}%, of which others ${result.cpu.others_pct.toFixed(0)}%`
        : "";
      log(
        `  ${label}: ${result.requests} requests in ${result.seconds.toFixed(2)} s = ${result.rps.toFixed(0)} req/s, ` +
          `p50 ${result.latency_ms.p50.toFixed(1)} ms, p99 ${result.latency_ms.p99.toFixed(1)} ms, ` +
          `non-2xx ${result.non2xx}, socket errors ${result.socket_errors}${cpuNote}`,
      );
      resolve(result);
    });
  });
}

const CLUSTER_PATH = "/api/counters/bench/increment";
const NAIVE_PATH = "/bench/naive/increment";

async function throughput() {
  step(`throughput: wrk -t${WRK.threads} -c${WRK.connections}, POST {"by": 1}; warm-up ${WRK.warmup} s each, then ${WRK.rounds} alternating rounds of ${WRK.seconds} s`);
  const warm = [
    await runWrk("naive warm-up", NAIVE_PATH, WRK.warmup),
    await runWrk("cluster warm-up", CLUSTER_PATH, WRK.warmup),
  ];
  for (const w of warm) {
    if (w.non2xx || w.socket_errors) problem(`${w.label}: ${w.non2xx} non-2xx, ${w.socket_errors} socket errors`);
  }
  const naive = [];
  const cluster = [];
  // A B B A ...: a drift in the machine's load falls on both sides alike.
  for (let i = 1; i <= WRK.rounds; i++) {
    const runNaive = async () => naive.push(await runWrk(`naive round ${i}`, NAIVE_PATH, WRK.seconds));
    const runCluster = async () => cluster.push(await runWrk(`cluster round ${i}`, CLUSTER_PATH, WRK.seconds));
    if (i % 2) {
      await runNaive();
      await runCluster();
    } else {
      await runCluster();
      await runNaive();
    }
  }
  const sum = (rs, f) => rs.reduce((a, r) => a + f(r), 0);
  const summarize = (rs) => ({
    rounds_rps: rs.map((r) => r.rps),
    rps: sum(rs, (r) => r.requests) / sum(rs, (r) => r.seconds),
    requests: sum(rs, (r) => r.requests),
    non2xx: sum(rs, (r) => r.non2xx),
    socket_errors: sum(rs, (r) => r.socket_errors),
    p50_ms: rs.map((r) => r.latency_ms.p50),
    p99_ms: rs.map((r) => r.latency_ms.p99),
    others_cpu_pct: rs.map((r) => r.cpu?.others_pct ?? null),
  });
  const result = {
    tool: `wrk -t${WRK.threads} -c${WRK.connections} -d${WRK.seconds}s -s scripts/bench-post.lua`,
    rounds: WRK.rounds,
    naive: { path: `POST ${NAIVE_PATH}`, ...summarize(naive) },
    cluster: { path: `POST ${CLUSTER_PATH} (router picks a random node)`, ...summarize(cluster) },
  };
  result.ratio_cluster_over_naive = result.cluster.rps / result.naive.rps;
  result.round_ratios = cluster.map((c, i) => c.rps / naive[i].rps);
  result.cpu_note =
    "others_cpu_pct: % of all cores used during the round by processes other than wrangler dev's group, wrk and this script";
  for (const r of [...naive, ...cluster]) {
    if (r.cpu && r.cpu.others_pct > OTHER_CPU_WARN_PCT) {
      warn(`${r.label}: other processes used ${r.cpu.others_pct.toFixed(0)}% of the CPU: its req/s is disturbed`);
    }
  }
  for (const side of ["naive", "cluster"]) {
    const s = result[side];
    if (s.non2xx !== 0) problem(`${side}: wrk counted ${s.non2xx} non-2xx responses`);
    if (s.socket_errors !== 0) problem(`${side}: wrk counted ${s.socket_errors} socket errors`);
  }
  log(`naive ${result.naive.rps.toFixed(0)} req/s, cluster ${result.cluster.rps.toFixed(0)} req/s, ratio ${result.ratio_cluster_over_naive.toFixed(2)} (rounds: ${result.round_ratios.map((r) => r.toFixed(2)).join(", ")})`);

  // Sanity: the cluster's counter holds at least every increment wrk saw succeed.
  const nodes = await activeNodes();
  const counted = sum([warm[1], ...cluster], (r) => r.requests - r.non2xx);
  const settled = await pollUntil("bench", nodes, (v) => v.every((x) => x === v[0] && x >= counted));
  if (settled.at === null) {
    problem(`the "bench" counter did not settle to >= ${counted} on every node: ${settled.values.join(", ")}`);
  } else {
    log(`"bench" counter agrees on all ${nodes.length} nodes: ${settled.values[0]} (wrk counted ${counted} 2xx; requests in flight when wrk stopped are not counted)`);
  }
  result.cluster.final_value = settled.values[0];
  result.cluster.wrk_counted_2xx = counted;
  return result;
}

// ---------------------------------------------------------------- 2. gossip bytes

/** `total` increments from `loops` concurrent loops at `rate`/s overall, spread over `nodes`. */
async function steadyWrites(name, nodes, total, rate, loops) {
  const start = performance.now();
  let acked = 0;
  let failed = 0;
  let lastAck = 0;
  let firstFailure = null;
  const loop = async (k) => {
    for (let i = k; i < total; i += loops) {
      const due = start + (i * 1000) / rate;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
      const r = await increment(name, nodes[i % nodes.length]);
      if (r.ok) {
        acked++;
        lastAck = Math.max(lastAck, r.at);
      } else {
        failed++;
        firstFailure ??= `${r.status} ${r.body.slice(0, 200)}`;
      }
    }
  };
  await Promise.all(Array.from({ length: loops }, (_, k) => loop(k)));
  const seconds = (performance.now() - start) / 1000;
  if (failed) problem(`${failed} of ${total} increments to "${name}" failed, first: ${firstFailure}`);
  return { acked, failed, seconds, lastAck };
}

async function gossipBytes() {
  const { increments, rate, loops } = GOSSIP;
  step(`gossip traffic: ${increments} increments at ~${rate}/s from ${loops} loops, spread over the nodes with ?node=`);
  const nodes = await activeNodes();
  log(`active nodes: ${nodes.join(", ")}`);
  const idleSeconds = 4;
  const idle0 = await readSent(nodes);
  const idleStart = performance.now();
  await sleep(idleSeconds * 1000);
  const idle1 = await readSent(nodes);
  const idleWindow = (performance.now() - idleStart) / 1000;
  const idle = sentDelta(idle0, idle1);
  log(`idle (no writes) for ${idleWindow.toFixed(1)} s: ${idle.frames} frames, ${idle.bytes} bytes (anti-entropy digests and other background traffic)`);

  const name = `gossip-${Date.now().toString(36)}`;
  const before = await readSent(nodes);
  const windowStart = performance.now();
  const w = await steadyWrites(name, nodes, increments, rate, loops);
  log(`${w.acked} acknowledged in ${w.seconds.toFixed(2)} s (${(w.acked / w.seconds).toFixed(0)}/s); waiting for every node to read ${w.acked}`);
  if (w.acked / w.seconds < 0.8 * rate) {
    warn(`the writes ran at ${(w.acked / w.seconds).toFixed(0)}/s, under the ${rate}/s asked for: the server or the ${loops} loops could not keep up`);
  }
  const conv = await pollUntil(name, nodes, (v) => v.every((x) => x === w.acked));
  if (conv.at === null) problem(`"${name}" did not converge: ${conv.values.join(", ")}`);
  else log(`converged ${(conv.at - w.lastAck).toFixed(0)} ms after the last acknowledgement`);
  const after = await readSent(nodes);
  const window = (performance.now() - windowStart) / 1000;
  const d = sentDelta(before, after);
  const perNode = Object.fromEntries(
    nodes.map((id) => [id, { frames: after[id].frames - before[id].frames, bytes: after[id].bytes - before[id].bytes }]),
  );
  const idleRate = { frames: idle.frames / idleWindow, bytes: idle.bytes / idleWindow };
  const result = {
    increments: w.acked,
    target_rate_per_s: rate,
    achieved_rate_per_s: w.acked / w.seconds,
    window_seconds: window,
    frames: d.frames,
    bytes: d.bytes,
    bytes_per_increment: d.bytes / w.acked,
    frames_per_increment: d.frames / w.acked,
    per_node: perNode,
    idle: { seconds: idleWindow, frames: idle.frames, bytes: idle.bytes },
    // The window's background share, estimated from the idle rate.
    bytes_per_increment_minus_idle: (d.bytes - idleRate.bytes * window) / w.acked,
    frames_per_increment_minus_idle: (d.frames - idleRate.frames * window) / w.acked,
    note:
      "sum over all nodes of `sent` (frames sent + bytes of frames sent and of /peer replies) between two reads; " +
      "includes anti-entropy digests/summaries and any other background peer traffic in the window; " +
      "deltas are batched per gossip interval, so the figures per increment fall as the write rate rises",
  };
  log(
    `${d.frames} frames, ${d.bytes} bytes over ${window.toFixed(1)} s: ` +
      `${result.bytes_per_increment.toFixed(1)} bytes/increment, ${result.frames_per_increment.toFixed(3)} frames/increment ` +
      `(includes anti-entropy digests; ~${result.bytes_per_increment_minus_idle.toFixed(1)} bytes/increment without the idle rate)`,
  );
  return result;
}

// ---------------------------------------------------------------- 3. convergence

async function burst(name, nodes, total, concurrency) {
  let next = 0;
  let acked = 0;
  let failed = 0;
  let lastAck = 0;
  const worker = async () => {
    while (next < total) {
      const i = next++;
      const r = await increment(name, nodes[i % nodes.length]);
      if (r.ok) {
        acked++;
        lastAck = Math.max(lastAck, r.at);
      } else {
        failed++;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { acked, failed, lastAck };
}

async function convergence() {
  const { repeats, burst: size } = CONVERGE;
  step(`time to converge: ${repeats} bursts of ${size} increments (16 concurrent) over all nodes, then poll every node every ${POLL_MS} ms`);
  const nodes = await activeNodes();
  const runs = [];
  for (let r = 1; r <= repeats; r++) {
    const name = `conv-${Date.now().toString(36)}-${r}`;
    const b = await burst(name, nodes, size, 16);
    if (b.failed) problem(`burst ${r}: ${b.failed} increments failed`);
    const conv = await pollUntil(name, nodes, (v) => v.every((x) => x === b.acked));
    if (conv.at === null) {
      problem(`burst ${r}: "${name}" did not converge to ${b.acked}: ${conv.values.join(", ")}`);
      continue;
    }
    const ms = conv.at - b.lastAck;
    runs.push(ms);
    log(`burst ${r}: ${b.acked} acknowledged; all ${nodes.length} nodes read ${b.acked} after ${ms.toFixed(0)} ms`);
    await sleep(300);
  }
  const sorted = [...runs].sort((a, b) => a - b);
  const median = sorted.length ? (sorted.length % 2 ? sorted[(sorted.length - 1) / 2] : (sorted[sorted.length / 2 - 1] + sorted[sorted.length / 2]) / 2) : null;
  return {
    bursts: repeats,
    burst_size: size,
    poll_ms: POLL_MS,
    runs_ms: runs,
    median_ms: median,
    max_ms: sorted.length ? sorted[sorted.length - 1] : null,
    note:
      "from the last acknowledged increment to the first poll round (its responses received) in which every node read the acknowledged total",
  };
}

// ---------------------------------------------------------------- 4. sizes

function gzipSize(buf) {
  const r = spawnSync("gzip", ["-9c"], { input: buf, maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`gzip failed: ${r.stderr}`);
  return r.stdout.length;
}

/** The upload modules in a `wrangler deploy --dry-run --outdir` and their sizes. */
function bundle(what, dir, logFile) {
  // The upload is the modules, not the sourcemap or wrangler's README.
  const files = readdirSync(dir)
    .filter((f) => !f.endsWith(".map") && f !== "README.md")
    .sort();
  const modules = files.map((f) => {
    const buf = readFileSync(join(dir, f));
    return { file: f, bytes: buf.length, gzip9: gzipSize(buf) };
  });
  const all = Buffer.concat(files.map((f) => readFileSync(join(dir, f))));
  const wasm = modules.filter((m) => m.file.endsWith(".wasm"));
  const worker = {
    modules,
    wasm_bytes: wasm.reduce((a, m) => a + m.bytes, 0),
    wasm_gzip9: wasm.reduce((a, m) => a + m.gzip9, 0),
    upload_bytes: all.length,
    upload_gzip9: gzipSize(all),
    upload_gzip9_note: "gzip -9 of all upload modules concatenated",
  };
  const dryLog = logFile ? readFileSync(logFile, "utf8") : "";
  const m = dryLog.match(/Total Upload: ([\d.]+ \w+) \/ gzip: ([\d.]+ \w+)/);
  worker.wrangler_reports = m ? `Total Upload: ${m[1]} / gzip: ${m[2]}` : null;
  for (const mod of modules) log(`worker (${what}) ${mod.file}: ${mod.bytes} bytes, ${mod.gzip9} gzip -9`);
  log(`worker (${what}) upload: ${worker.upload_bytes} bytes, ${worker.upload_gzip9} gzip -9 (wrangler: ${worker.wrangler_reports ?? "n/a"})`);
  return worker;
}

function sizes() {
  step("sizes: the Worker bundle (wrangler deploy --dry-run) and the browser module");
  const worker = bundle("every kind", need("BENCH_BUNDLE"), env.BENCH_DRYRUN_LOG);
  const workerCore = bundle("counters, sets, registers", need("BENCH_BUNDLE_CORE"), env.BENCH_DRYRUN_CORE_LOG);
  const wasmPath = need("BENCH_BROWSER_WASM");
  const bw = readFileSync(wasmPath);
  const browser = { file: "www/pkg/edge_crdt_bg.wasm", bytes: bw.length, gzip9: gzipSize(bw) };
  log(`browser ${browser.file}: ${browser.bytes} bytes, ${browser.gzip9} gzip -9`);
  return { worker, worker_core: workerCore, browser };
}

// ---------------------------------------------------------------- report

function configVar(name) {
  try {
    const m = readFileSync(need("BENCH_CONFIG"), "utf8").match(new RegExp(`^${name}\\s*=\\s*"([^"]*)"`, "m"));
    return m ? m[1] : null;
  } catch {
    return null;
  }
}

const kib = (n) => `${n} B (${(n / 1024).toFixed(1)} KiB)`;

function table(r) {
  const t = r.throughput;
  const g = r.gossip;
  const c = r.convergence;
  const s = r.sizes;
  const f0 = (x) => (x == null ? "n/a" : x.toFixed(0));
  const rows = [
    ["throughput", `${t.tool}, ${t.rounds} alternating rounds each`],
    ["  naive   req/s", `${f0(t.naive.rps)}  (rounds: ${t.naive.rounds_rps.map(f0).join(", ")}; p50 ${t.naive.p50_ms.map((x) => x.toFixed(1)).join("/")} ms)`],
    ["  cluster req/s", `${f0(t.cluster.rps)}  (rounds: ${t.cluster.rounds_rps.map(f0).join(", ")}; p50 ${t.cluster.p50_ms.map((x) => x.toFixed(1)).join("/")} ms)`],
    ["  ratio cluster/naive", `${t.ratio_cluster_over_naive.toFixed(2)}  (rounds: ${t.round_ratios.map((r) => r.toFixed(2)).join(", ")})`],
    ["  others' CPU % (naive/cluster)", `${t.naive.others_cpu_pct.map(f0).join(", ")} / ${t.cluster.others_cpu_pct.map(f0).join(", ")}  (other processes on this ${r.settings.cores}-core machine)`],
    ["  non-2xx (naive/cluster)", `${t.naive.non2xx} / ${t.cluster.non2xx}  (socket errors ${t.naive.socket_errors} / ${t.cluster.socket_errors})`],
    ["gossip", `${g.increments} increments at ${f0(g.achieved_rate_per_s)}/s over ${r.settings.nodes} nodes, gossip every ${r.settings.gossip_interval_ms} ms`],
    ["  bytes / increment", `${g.bytes_per_increment.toFixed(1)}  (${g.bytes} B in ${g.window_seconds.toFixed(1)} s; includes anti-entropy digests)`],
    ["  frames / increment", `${g.frames_per_increment.toFixed(3)}  (${g.frames} frames)`],
    ["  idle background", `${g.idle.bytes} B, ${g.idle.frames} frames in ${g.idle.seconds.toFixed(1)} s (anti-entropy every ${r.settings.anti_entropy_interval_ms} ms)`],
    ["  bytes / increment minus idle", `~${g.bytes_per_increment_minus_idle.toFixed(1)} (estimate)`],
    ["convergence", `${c.bursts} bursts of ${c.burst_size}, poll every ${c.poll_ms} ms, gossip interval ${r.settings.gossip_interval_ms} ms`],
    ["  median / max ms", `${f0(c.median_ms)} / ${f0(c.max_ms)}  (runs: ${c.runs_ms.map(f0).join(", ")})`],
    ["worker bundle (dry-run)", `${kib(s.worker.upload_bytes)}, gzip -9 ${kib(s.worker.upload_gzip9)}`],
    ["  worker .wasm", `${kib(s.worker.wasm_bytes)}, gzip -9 ${kib(s.worker.wasm_gzip9)}`],
    ["  wrangler says", s.worker.wrangler_reports ?? "n/a"],
    ["worker, counters/sets/registers", `${kib(s.worker_core.upload_bytes)}, gzip -9 ${kib(s.worker_core.upload_gzip9)}`],
    ["  wrangler says", s.worker_core.wrangler_reports ?? "n/a"],
    ["browser edge_crdt_bg.wasm", `${kib(s.browser.bytes)}, gzip -9 ${kib(s.browser.gzip9)}`],
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(w)} | ${v}`).join("\n");
}

async function main() {
  const started = new Date();
  const settings = {
    nodes: Number(configVar("NODES")),
    gossip_interval_ms: Number(configVar("GOSSIP_INTERVAL_MS")),
    anti_entropy_interval_ms: Number(configVar("ANTI_ENTROPY_INTERVAL_MS")),
    base: BASE,
    server: "wrangler dev (workerd, local), 127.0.0.1",
    cores: (await import("node:os")).availableParallelism(),
  };
  const git = spawnSync("git", ["rev-parse", "--short", "HEAD"], { encoding: "utf8" });
  const results = {
    started: started.toISOString(),
    commit: git.status === 0 ? git.stdout.trim() : null,
    worktree_note: "the working tree may hold uncommitted changes",
    settings,
    throughput: await throughput(),
    gossip: await gossipBytes(),
    convergence: await convergence(),
    sizes: sizes(),
  };
  results.finished = new Date().toISOString();
  results.problems = problems;
  results.warnings = warnings;
  mkdirSync(dirname(OUT), { recursive: true });
  writeFileSync(OUT, JSON.stringify(results, null, 2) + "\n");
  step("summary");
  console.log(table(results));
  console.log(`\nJSON: ${OUT}`);
  if (warnings.length) {
    console.log(`\n${warnings.length} warning(s):`);
    for (const w of warnings) console.log(`  - ${w}`);
  }
  if (problems.length) {
    console.log(`\n${problems.length} problem(s):`);
    for (const p of problems) console.log(`  - ${p}`);
    process.exitCode = 1;
  }
}

main().catch((e) => {
  console.error(`[${hhmmss()}] bench.mjs failed: ${e.stack ?? e}`);
  process.exit(2);
});
