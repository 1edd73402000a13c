// An offline-first address book. Every edit goes into a ContactsReplica
// (rows, this client's clock, the outbox, the pull cursor), saved in
// localStorage at once; a sync loop pushes the outbox and pulls the
// changes after the cursor whenever the network allows, and server-sent
// events bring other clients' changes live.

import init, { ContactsReplica } from "@edge-crdt/browser/contacts";

const SYNC_EVERY_MS = 2_000;
const MAX_BACKOFF_MS = 30_000;

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const book = params.get("book") || "family";
const api = `/api/contacts/${encodeURIComponent(book)}`;
const hint = params.get("node");
const query = (extra = {}) => {
  const q = new URLSearchParams({ ...extra, ...(hint ? { node: hint } : {}) }).toString();
  return q ? `?${q}` : "";
};

let replica = null;
let syncing = false;
let backoff = 0;
let timer = null;
let events = null;

function setStatus(state, text = state) {
  $("status").dataset.state = state;
  $("status").textContent = text;
}

function showMessage(text) {
  $("message").textContent = text;
}

function render() {
  const pending = replica.pending();
  $("pending").textContent = String(pending);
  $("pending").dataset.count = String(pending);
  const rows = $("rows");
  const editing = document.activeElement?.closest?.("tr")?.dataset.id;
  const list = replica.contacts();
  rows.replaceChildren(...list.map((c) => row(c, c.id === editing)));
}

function row(contact, keepFocus) {
  const tr = document.createElement("tr");
  tr.dataset.id = contact.id;
  for (const column of ["name", "phone", "email"]) {
    const td = document.createElement("td");
    const input = document.createElement("input");
    input.value = contact[column] ?? "";
    input.name = column;
    input.addEventListener("change", () => edit(contact.id, column, input.value));
    td.append(input);
    tr.append(td);
  }
  const td = document.createElement("td");
  const del = document.createElement("button");
  del.textContent = "Delete";
  del.addEventListener("click", () => edit(contact.id, "tombstone", true));
  td.append(del);
  tr.append(td);
  if (keepFocus) queueMicrotask(() => tr.querySelector("input")?.focus());
  return tr;
}

function edit(id, column, value) {
  try {
    replica.edit(id, column, value, Date.now());
    replica.save();
    showMessage("");
  } catch (e) {
    showMessage(e.message);
  }
  render();
  syncSoon();
}

$("add").addEventListener("submit", (e) => {
  e.preventDefault();
  const form = new FormData(e.target);
  const id = crypto.randomUUID();
  for (const column of ["name", "phone", "email"]) {
    const value = String(form.get(column) ?? "").trim();
    if (value) {
      try {
        replica.edit(id, column, value, Date.now());
      } catch (err) {
        showMessage(err.message);
      }
    }
  }
  replica.save();
  e.target.reset();
  render();
  syncSoon();
});

async function request(method, path, body) {
  const res = await fetch(path, {
    method,
    headers: body ? { "content-type": "application/json" } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = await res.json().catch(() => ({}));
  return { status: res.status, data };
}

/** Pushes the whole outbox, in batches; false if the server refused a batch. */
async function pushAll() {
  for (let body = replica.pushBody(); body; body = replica.pushBody()) {
    const { status, data } = await request("POST", `${api}/push${query()}`, body);
    if (status !== 200) {
      // 422 (a clock ahead of the server's) or 409: keep the outbox and try later.
      showMessage(`the server refused the changes (${status}): ${data.message ?? "unknown error"}`);
      return false;
    }
    const before = replica.pending();
    replica.acknowledged(data.acked, body.cursor, data.cursor ?? undefined);
    replica.save();
    if (replica.pending() === before) return true; // acknowledged elsewhere later
  }
  return true;
}

async function pullAll() {
  for (let page = 0; page < 100; page += 1) {
    const { status, data } = await request("GET", `${api}/changes${query({ cursor: replica.cursor(), limit: "500" })}`);
    if (status !== 200) throw new Error(`pull: ${status} ${data.message ?? ""}`);
    for (const c of data.changes) replica.mergeChange(c.id, c.column, c.value, c.timestamp);
    replica.setCursor(data.cursor);
    replica.save();
    if (!data.more) return;
  }
}

async function sync() {
  if (syncing) return;
  syncing = true;
  clearTimeout(timer);
  try {
    if (!navigator.onLine) throw new Error("offline");
    setStatus("syncing");
    const pushed = await pushAll();
    await pullAll();
    render();
    backoff = 0;
    setStatus(pushed && replica.pending() === 0 ? "synced" : "syncing", pushed ? "synced" : "waiting");
    openEvents();
  } catch (e) {
    backoff = Math.min(MAX_BACKOFF_MS, Math.max(1_000, backoff * 2));
    setStatus("offline", navigator.onLine ? `unavailable, retrying in ${Math.round(backoff / 1000)} s` : "offline");
  } finally {
    syncing = false;
    timer = setTimeout(sync, backoff || SYNC_EVERY_MS);
  }
}

function syncSoon() {
  clearTimeout(timer);
  timer = setTimeout(sync, 50);
}

function openEvents() {
  if (events && events.readyState !== EventSource.CLOSED) return;
  events = new EventSource(`${api}/events${query()}`);
  events.onmessage = (e) => {
    try {
      let changed = false;
      for (const c of JSON.parse(e.data)) changed = replica.mergeChange(c.id, c.column, c.value, c.timestamp) || changed;
      if (changed) {
        replica.save();
        render();
      }
    } catch (err) {
      console.warn("edge-crdt: ignoring an event:", err);
    }
  };
  events.onerror = () => {
    if (!navigator.onLine) {
      events.close();
      setStatus("offline");
    }
  };
}

addEventListener("online", syncSoon);
addEventListener("offline", () => {
  events?.close();
  setStatus("offline");
});

await init();
replica = ContactsReplica.load(book);
$("book").textContent = book;
render();
sync();
