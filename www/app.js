// A live visit counter. The page is a passive replica of one PN-counter:
// it merges the states it receives (the visit's HTTP reply, server-sent
// events, other tabs) into a CounterReplica kept in localStorage, and shows
// only the replica's value, so the number never goes down.

import init, { CounterReplica } from "@edge-crdt/browser";

const MIN_BACKOFF_MS = 1_000;
const MAX_BACKOFF_MS = 30_000;

const $ = (id) => document.getElementById(id);
const el = {
  name: $("name"),
  count: $("count"),
  node: $("node"),
  status: $("status"),
  message: $("message"),
  nodes: $("nodes"),
  retired: $("retired"),
};

const params = new URLSearchParams(location.search);
const name = params.get("counter") || "home";
const api = `/api/counters/${encodeURIComponent(name)}`;
// Optional `?node=node-N` in the page URL is passed on to the API, which
// then serves this page from that node (for demos and tests).
const hint = params.get("node");
const query = hint ? `?node=${encodeURIComponent(hint)}` : "";

let replica = null;
let answeredBy = null;
let shown = null;

function showMessage(text) {
  el.message.textContent = text;
}

function setStatus(state, text = state) {
  el.status.dataset.state = state;
  el.status.textContent = text;
}

function formatInt(n) {
  return Number.isFinite(n) ? n.toLocaleString() : String(n);
}

// Everything shown comes from the replica.
function render() {
  let contributions = {};
  let retired = {};
  try {
    contributions = replica.contributions();
    retired = replica.retired();
  } catch (e) {
    console.warn("edge-crdt: cannot read the replica:", e);
  }
  const nodes = Object.keys(contributions);
  const gone = Object.keys(retired);
  const value = replica.value();

  if (nodes.length > 0 || gone.length > 0) {
    el.count.textContent = formatInt(value);
    el.count.dataset.value = String(value);
    if (shown !== null && value !== shown) {
      el.count.classList.add("bump");
      requestAnimationFrame(() => requestAnimationFrame(() => el.count.classList.remove("bump")));
    }
    shown = value;
  }

  const tbody = el.nodes.tBodies[0];
  tbody.replaceChildren(
    ...nodes.map((node) => {
      const tr = document.createElement("tr");
      if (node === answeredBy) tr.className = "answered";
      const id = document.createElement("td");
      id.textContent = node;
      const n = document.createElement("td");
      n.textContent = formatInt(contributions[node]);
      tr.append(id, n);
      return tr;
    }),
  );
  el.nodes.hidden = nodes.length === 0;
  el.retired.textContent = gone.length
    ? "Retired: " + gone.map((g) => `${g} → ${retired[g]}`).join(", ")
    : "";
}

// Merges a base64 state; saves and re-renders when it changed.
function merge(b64, from) {
  let changed;
  try {
    changed = replica.mergeState(b64);
  } catch (e) {
    console.warn(`${e?.message ?? e} (ignored, from ${from})`);
    return;
  }
  if (changed) {
    replica.save();
    render();
  }
}

async function errorText(res) {
  try {
    const body = await res.json();
    if (body && typeof body.message === "string") return `${res.status} ${body.error ?? ""}: ${body.message}`;
  } catch {
    // not JSON
  }
  return `${res.status} ${res.statusText}`.trim();
}

// Counts this page view once; never retried, as a lost reply may still
// have been counted.
async function countVisit() {
  try {
    const res = await fetch(`${api}/increment${query}`, {
      method: "POST",
      headers: { accept: "application/json" },
      cache: "no-store",
    });
    if (!res.ok) throw new Error(await errorText(res));
    const reply = await res.json();
    if (!reply || typeof reply.state !== "string") throw new Error("the reply has no state");
    answeredBy = typeof reply.node === "string" ? reply.node : null;
    el.node.textContent = answeredBy ? `Your visit was counted by ${answeredBy}` : "Your visit was counted";
    merge(reply.state, "the visit reply");
    render();
  } catch (e) {
    console.warn("edge-crdt: the visit was not counted:", e);
    showMessage(`Could not count this visit: ${e?.message ?? e}`);
  }
}

// Live updates. EventSource reconnects by itself after a dropped stream
// (the server sends `retry:`); when it gives up (CLOSED, e.g. after an HTTP
// error) it is reopened here with an exponential back-off.
let source = null;
let backoff = MIN_BACKOFF_MS;
let reopenTimer = null;

function connect() {
  clearTimeout(reopenTimer);
  reopenTimer = null;
  if (source) source.close();
  setStatus("connecting", "connecting");
  let es;
  try {
    es = new EventSource(`${api}/events${query}`);
  } catch (e) {
    console.warn("edge-crdt: cannot open the event stream:", e);
    scheduleReopen();
    return;
  }
  source = es;
  es.onopen = () => {
    backoff = MIN_BACKOFF_MS;
    setStatus("live");
  };
  es.onmessage = (event) => {
    setStatus("live");
    merge(event.data, "an event");
  };
  es.onerror = () => {
    if (es !== source) return;
    if (es.readyState === EventSource.CLOSED) {
      es.close();
      source = null;
      scheduleReopen();
    } else {
      setStatus("reconnecting", "reconnecting");
    }
  };
}

function scheduleReopen() {
  if (reopenTimer !== null) return;
  const wait = backoff * (0.75 + Math.random() / 2);
  backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
  setStatus("offline", `offline, retrying in ${Math.round(wait / 1000)} s`);
  reopenTimer = setTimeout(connect, wait);
}

function watchStream() {
  connect();
  // Back online or back to the tab: do not wait for the back-off.
  const reopenNow = () => {
    if (source === null && reopenTimer !== null) {
      backoff = MIN_BACKOFF_MS;
      connect();
    }
  };
  addEventListener("online", reopenNow);
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") reopenNow();
  });
}

async function main() {
  el.name.textContent = name;
  document.title = `${name} · visits`;
  try {
    await init();
  } catch (e) {
    console.error("edge-crdt: cannot load the WebAssembly module:", e);
    showMessage(`Cannot load the counter module: ${e?.message ?? e}`);
    setStatus("offline", "unavailable");
    return;
  }

  replica = CounterReplica.load(name);
  render();

  // Other tabs of this counter save to the same key.
  addEventListener("storage", (e) => {
    if (e.key === replica.storageKey && e.newValue) merge(e.newValue, "another tab");
  });

  watchStream();
  await countVisit();
}

main().catch((e) => {
  console.error("edge-crdt:", e);
  showMessage(`Something went wrong: ${e?.message ?? e}`);
});
