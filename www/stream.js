// An event stream's page. Every event that arrives goes into a
// StreamReplica, which checks it (its id is the hash of its bytes, its
// topic, its limits) and lists the events in the one total order every
// replica agrees on; it is saved in localStorage at once. On load the page
// shows what was saved, catches up through the node's log from the saved
// cursor, then follows /live (server-sent events).

import init, { StreamReplica } from "@edge-crdt/browser/stream";

const LOG_PAGE = 500;
const MAX_PAGES = 10_000;
const MAX_BACKOFF_MS = 30_000;
const MAX_REFUSED = 1_000;

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const topic = params.get("topic") || "chat";
const api = `/api/streams/${encodeURIComponent(topic)}`;
const hint = params.get("node");
const query = (node, extra = {}) => {
  const q = new URLSearchParams({ ...extra, ...(node ? { node } : {}) }).toString();
  return q ? `?${q}` : "";
};

let replica = null;
let live = null;
let syncing = false;
let backoff = 0;
let timer = null;
/** The reasons of the refused events, each once ("<cid>: <why>"). */
const refused = new Set();

function setStatus(state, text = state) {
  $("status").dataset.state = state;
  $("status").textContent = text;
}

function showMessage(text) {
  $("message").textContent = text;
}

/** The node the page follows: `?node=`, else the saved cursor's. */
function followed() {
  return hint || replica.cursor()?.node || null;
}

function render() {
  const list = replica.events();
  $("count").textContent = String(list.length);
  $("events").replaceChildren(...list.map(item));
}

function item(event) {
  const li = document.createElement("li");
  li.dataset.cid = event.cid;
  const time = document.createElement("time");
  const at = new Date(Number(BigInt(event.timestamp_ns) / 1_000_000n));
  time.dateTime = at.toISOString();
  time.textContent = at.toLocaleTimeString();
  const message = document.createElement("span");
  message.className = "message";
  message.textContent = event.message;
  const cid = document.createElement("code");
  cid.textContent = `…${event.cid.slice(-8)}`;
  cid.title = event.cid;
  li.append(time, message, cid);
  return li;
}

function renderRefused() {
  $("refused").dataset.count = String(refused.size);
  $("refused-count").textContent = String(refused.size);
  $("reasons").replaceChildren(...[...refused].map((why) => {
    const li = document.createElement("li");
    li.textContent = why;
    return li;
  }));
}

/** Hands JSON text of events to the replica; saves and shows what changed. */
function take(data) {
  const { added, refused: reasons } = replica.receive(data);
  for (const why of reasons) if (refused.size < MAX_REFUSED) refused.add(why);
  if (reasons.length) renderRefused();
  if (added) {
    if (!replica.save()) showMessage("this browser did not keep the events (storage full?)");
    render();
  }
}

/** `fetch`, with a network failure marked `offline`. */
async function request(url, init) {
  try {
    return await fetch(url, init);
  } catch (e) {
    throw Object.assign(new Error(`offline (${e.message})`), { offline: true });
  }
}

/** One page of `node`'s log after `after` (the first page of any node without one). */
async function logPage(node, after) {
  const res = await request(`${api}/log${query(node, { after: String(after), limit: String(LOG_PAGE) })}`);
  const text = await res.text();
  // A topic nobody wrote to yet may have no log at all.
  if (res.status === 404 && after === 0) return { node, entries: [], more: false, text: "[]" };
  if (res.status !== 200) throw Object.assign(new Error(`log: ${res.status} ${text.slice(0, 200)}`), { status: res.status });
  return { ...JSON.parse(text), text };
}

/** Takes the log's pages from the cursor on; the node followed. */
async function catchUp() {
  let node = followed();
  let cursor = replica.cursor();
  if (cursor && cursor.node !== node) {
    // Another node's sequence numbers mean nothing here.
    replica.clearCursor();
    cursor = null;
  }
  let after = cursor?.seq ?? 0;
  for (let page = 0; page < MAX_PAGES; page += 1) {
    let data;
    try {
      data = await logPage(node, after);
    } catch (e) {
      if (!(e.status >= 400 && e.status < 500 && cursor && !hint)) throw e;
      // The saved node may be gone: start over at any node.
      replica.clearCursor();
      [cursor, node, after] = [null, null, 0];
      continue;
    }
    take(data.text);
    node = data.node || node;
    after = data.entries.at(-1)?.seq ?? after;
    if (node) replica.setCursor(node, after);
    replica.save();
    if (!data.more || data.entries.length === 0) break;
  }
  return node;
}

function openLive(node) {
  live?.close();
  const source = new EventSource(`${api}/live${query(node)}`);
  live = source;
  source.onopen = () => {
    backoff = 0;
    setStatus("synced");
  };
  source.onmessage = (e) => {
    try {
      take(e.data);
    } catch (err) {
      console.warn("edge-crdt: ignoring live data:", err);
    }
  };
  source.onerror = () => {
    if (source !== live) return;
    if (source.readyState === EventSource.CLOSED) {
      // Refused for good (not an event stream): start over later.
      live = null;
      retry("error", "the live stream failed");
    } else {
      setStatus("offline", "reconnecting");
    }
  };
}

function retry(state, why) {
  backoff = Math.min(MAX_BACKOFF_MS, Math.max(1_000, backoff * 2));
  setStatus(state, `${why}, retrying in ${Math.round(backoff / 1000)} s`);
  clearTimeout(timer);
  timer = setTimeout(sync, backoff);
}

async function sync() {
  if (syncing) return;
  syncing = true;
  clearTimeout(timer);
  try {
    if (!navigator.onLine) throw Object.assign(new Error("offline"), { offline: true });
    setStatus("loading");
    openLive(await catchUp());
  } catch (e) {
    live?.close();
    live = null;
    if (e.offline) retry("offline", "offline");
    else retry("error", e.message);
  } finally {
    syncing = false;
  }
}

function syncSoon() {
  clearTimeout(timer);
  timer = setTimeout(sync, 50);
}

async function post(message) {
  const res = await request(`${api}/events${query(followed())}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ message }),
  });
  const data = await res.json().catch(() => ({}));
  if (res.status !== 200) throw new Error(`the server refused the message (${res.status}): ${data.message ?? "unknown error"}`);
  // The reply has no block: the event comes back through /live, or the log.
  if (!replica.has(data.cid ?? "") && live?.readyState !== EventSource.OPEN) syncSoon();
}

$("post").addEventListener("submit", async (e) => {
  e.preventDefault();
  const form = e.target;
  const message = form.elements.message.value;
  if (!message) return;
  form.querySelector("button").disabled = true;
  try {
    await post(message);
    form.reset();
    showMessage("");
  } catch (err) {
    showMessage(err.offline ? "offline: the message was not sent" : err.message);
  } finally {
    form.querySelector("button").disabled = false;
  }
});

addEventListener("online", syncSoon);
addEventListener("offline", () => {
  live?.close();
  live = null;
  setStatus("offline");
});

await init();
replica = StreamReplica.load(topic);
$("topic").textContent = topic;
render();
renderRefused();
sync();
