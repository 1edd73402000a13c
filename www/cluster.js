// The cluster dashboard: reads `GET /admin/live` (server-sent events, one
// snapshot of every member's view a second) with the admin token, shows
// each node's state and rates, the gossip between nodes and the partition,
// plots the last five minutes, and drains, adds and partitions nodes.

const WINDOW_MS = 5 * 60 * 1000;
const COLORS = ["#f38020", "#1f77b4", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"];
const $ = (id) => document.getElementById(id);

let token = sessionStorage.getItem("edge-crdt-admin-token") ?? "";
let previous = null; // the last snapshot, for rates
let history = []; // [{at, rates: {node: {requests, gossip, repairs, tombstones}}}]
let reader = null;

function setStatus(state, text) {
  $("status").dataset.state = state;
  $("status").textContent = text;
}

function say(text) {
  $("message").textContent = text;
}

async function admin(method, path, body) {
  const res = await fetch(path, {
    method,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(`${res.status} ${data.error ?? ""}: ${data.message ?? ""}`);
  return data;
}

const stateOf = (view) => (view === null ? "down" : typeof view.status === "string" ? view.status : Object.keys(view.status)[0]);

/** Per node: requests/s, gossip bytes/s out, repaired rows/s, tombstones, and bytes/s to each peer. */
function rates(snapshot) {
  const dt = previous ? (snapshot.at - previous.at) / 1000 : 0;
  const out = {};
  for (const [node, view] of Object.entries(snapshot.nodes)) {
    const before = previous?.nodes[node];
    const per = (now, then) => (dt > 0 && then !== undefined ? Math.max(0, now - then) / dt : 0);
    out[node] = view === null ? null : {
      requests: view.requests.per_second,
      gossip: per(view.sent.bytes, before?.sent.bytes),
      repairs: per(view.repaired_rows, before?.repaired_rows),
      tombstones: view.tombstones,
      to: Object.fromEntries(Object.entries(view.sent_to).map(([peer, s]) => [peer, per(s.bytes, before?.sent_to[peer]?.bytes)])),
    };
  }
  return out;
}

/** The partition as the first answering node sees it: its groups. */
function partitionOf(snapshot) {
  const view = Object.values(snapshot.nodes).find((v) => v !== null);
  return view ? view.partition : [];
}

function renderNodes(snapshot, now) {
  const body = $("nodes").tBodies[0];
  body.replaceChildren();
  for (const [node, view] of Object.entries(snapshot.nodes)) {
    const r = now[node];
    const row = body.insertRow();
    row.dataset.node = node;
    const state = stateOf(view);
    const cells = [node, state, r?.requests.toFixed(1), r?.gossip.toFixed(0), r?.repairs.toFixed(1), view?.tombstones, view?.keys_in_memory];
    for (const v of cells) row.insertCell().textContent = v ?? "–";
    row.cells[1].className = state;
    const act = row.insertCell();
    if (state === "active") {
      const drain = document.createElement("button");
      drain.textContent = "Drain";
      drain.onclick = () => act_(`drain ${node}`, () => admin("POST", `/admin/nodes/${node}/retire`));
      act.append(drain);
    }
  }
}

function renderMatrix(snapshot, now, groups) {
  const nodes = Object.keys(snapshot.nodes);
  const group = (n) => groups.findIndex((g) => g.includes(n));
  const cut = (a, b) => groups.length > 0 && group(a) !== group(b);
  const table = $("matrix");
  table.replaceChildren();
  const head = table.insertRow();
  head.insertCell().textContent = "";
  for (const n of nodes) head.insertCell().textContent = n;
  for (const from of nodes) {
    const row = table.insertRow();
    row.insertCell().textContent = from;
    for (const to of nodes) {
      const cell = row.insertCell();
      const v = now[from]?.to[to];
      cell.textContent = from === to ? "·" : v === undefined ? "0" : v.toFixed(0);
      if (from !== to && cut(from, to)) cell.className = "cut";
      cell.dataset.pair = `${from}>${to}`;
    }
  }
}

function renderPartition(groups) {
  const text = groups.length ? groups.map((g) => g.join(" ")).join(" | ") : "none";
  $("partition").textContent = text;
  $("partition").dataset.groups = groups.length ? text : "";
  $("partition").className = groups.length ? "cut" : "";
}

function chart(id, metric) {
  const svg = $(id);
  const nodes = [...new Set(history.flatMap((h) => Object.keys(h.rates)))].sort();
  const end = history.length ? history[history.length - 1].at : 0;
  const max = Math.max(1, ...history.flatMap((h) => Object.values(h.rates).map((r) => r?.[metric] ?? 0)));
  svg.replaceChildren();
  nodes.forEach((node, i) => {
    const points = history
      .filter((h) => h.rates[node])
      .map((h) => `${(300 * (1 - (end - h.at) / WINDOW_MS)).toFixed(1)},${(100 - (95 * h.rates[node][metric]) / max).toFixed(1)}`);
    const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
    line.setAttribute("points", points.join(" "));
    line.setAttribute("fill", "none");
    line.setAttribute("stroke", COLORS[i % COLORS.length]);
    line.setAttribute("vector-effect", "non-scaling-stroke");
    svg.append(line);
  });
  $("legend").replaceChildren(...nodes.map((n, i) => Object.assign(document.createElement("span"), { textContent: `■ ${n}`, style: `color:${COLORS[i % COLORS.length]}` })));
}

function onSnapshot(snapshot) {
  const now = rates(snapshot);
  previous = snapshot;
  history.push({ at: snapshot.at, rates: now });
  history = history.filter((h) => h.at > snapshot.at - WINDOW_MS);
  const groups = partitionOf(snapshot);
  renderNodes(snapshot, now);
  renderMatrix(snapshot, now, groups);
  renderPartition(groups);
  chart("chart-requests", "requests");
  chart("chart-gossip", "gossip");
  chart("chart-repairs", "repairs");
  chart("chart-tombstones", "tombstones");
  setStatus("live", `live: ${Object.keys(snapshot.nodes).length} nodes, ${new Date(snapshot.at).toLocaleTimeString()}`);
}

/** Reads the event stream; each `data:` line is a snapshot, an `error` event says why there is none. */
async function follow() {
  const res = await fetch("/admin/live", { headers: { authorization: `Bearer ${token}` } });
  if (!res.ok) {
    const data = await res.json().catch(() => ({}));
    throw new Error(`${res.status} ${data.error ?? ""}: ${data.message ?? res.statusText}`);
  }
  reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = event.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5)).join("\n");
      if (event.startsWith("event: error")) setStatus("error", `error: ${JSON.parse(data).message}`);
      else if (data) onSnapshot(JSON.parse(data));
    }
  }
}

async function connect() {
  await reader?.cancel().catch(() => {});
  setStatus("idle", "connecting…");
  for (;;) {
    try {
      await follow();
      setStatus("idle", "the stream ended; reconnecting");
    } catch (e) {
      setStatus("error", String(e.message ?? e));
      if (/^401/.test(e.message)) return;
    }
    await new Promise((r) => setTimeout(r, 2000));
  }
}

async function act_(what, run) {
  try {
    const result = await run();
    say(`${what}: done${result?.node ? ` (${result.node})` : ""}`);
  } catch (e) {
    say(`${what}: ${e.message}`);
  }
}

$("login").onsubmit = (e) => {
  e.preventDefault();
  token = $("token").value.trim();
  sessionStorage.setItem("edge-crdt-admin-token", token);
  connect();
};
$("cut").onsubmit = (e) => {
  e.preventDefault();
  const groups = $("groups").value.split("|").map((g) => g.trim().split(/[\s,]+/).filter(Boolean)).filter((g) => g.length);
  act_("partition", () => admin("PUT", "/admin/partition", { groups }));
};
$("heal").onclick = () => act_("heal", () => admin("DELETE", "/admin/partition"));
$("add").onclick = () => act_("add a node", () => admin("POST", "/admin/nodes"));

if (token) {
  $("token").value = token;
  connect();
}
