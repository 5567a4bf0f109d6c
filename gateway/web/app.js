// The kithnet dashboard: a client of the gateway's HTTP/WebSocket API, nothing more.
//
// Plain ES module, no library, no build step: the page works offline from the gateway.
// Every name, room and value comes from nodes or people, so it only ever reaches the page
// as text (el() below and textContent), never as markup; the page's Content-Security-Policy
// forbids inline script besides.

const TOKEN_KEY = "kithnet.token";
const BOOL_KINDS = new Set(["switch", "motion", "occupancy", "contact"]);
const WORDS = { motion: ["detected", "clear"], contact: ["closed", "open"], occupancy: ["occupied", "clear"] };
const RANGE_KINDS = new Set(["brightness", "colour_temp"]);
const LOG_MAX = 60;
const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 15000;
const SVG = "http://www.w3.org/2000/svg";

const $ = (id) => document.getElementById(id);

let token = null;
let generation = 0; // bumped on every (re)login: late answers of an older one are ignored
let socket = null;
let backoff = BACKOFF_MIN_MS;
let pending = [];
let shape = ""; // what the device cards were built from: rebuilt only when it changes
const devices = new Map(); // node id -> Device (the API's JSON)
const views = new Map(); // node id -> {card, status, seen, rows: Map(capability -> row)}
const results = new Map(); // "id/capability" -> [text, class]: a command's outcome
const pendingViews = new Map(); // node id -> its box under "Waiting to join"

class ApiError extends Error {
  constructor(status, error, reason) {
    super(status ? `${error} (${status}): ${reason}` : reason);
    this.status = status;
    this.error = error;
    this.reason = reason;
  }
}

// -- DOM helpers: text only ----------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  setAttrs(e, attrs);
  for (const c of children) {
    if (c !== null && c !== undefined) e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

function svg(tag, attrs = {}, text) {
  const e = document.createElementNS(SVG, tag);
  setAttrs(e, attrs);
  if (text !== undefined) e.textContent = String(text);
  return e;
}

function setAttrs(e, attrs) {
  for (const [k, v] of Object.entries(attrs)) {
    if (v !== null && v !== undefined && v !== false) e.setAttribute(k, v === true ? "" : String(v));
  }
}

// -- the API -------------------------------------------------------------------------------

async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${token}` };
  const init = { method, headers, cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let r;
  try {
    r = await fetch(path, init);
  } catch {
    throw new ApiError(0, "network", "the gateway cannot be reached");
  }
  const text = await r.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  const reason = (data && data.reason) || r.statusText || "no reason given";
  if (r.status === 401) {
    refused(reason);
    throw new ApiError(401, "unauthorized", reason);
  }
  if (!r.ok) throw new ApiError(r.status, (data && data.error) || "error", reason);
  return { status: r.status, data };
}

const devicePath = (id) => `/api/devices/${encodeURIComponent(id)}`;

// -- the token -----------------------------------------------------------------------------

// A link with #token=... (the fragment never reaches a server, so never a log): keep the
// token in this browser's storage and take it out of the address bar.
function takeFragment() {
  const m = /(?:^#|&)token=([^&]*)/.exec(location.hash);
  if (!m) return false;
  let given = "";
  try {
    given = decodeURIComponent(m[1]).trim();
  } catch {
    given = m[1]; // not percent-encoded after all: as it is (the gateway will judge it)
  }
  if (given) localStorage.setItem(TOKEN_KEY, given);
  history.replaceState(null, "", location.pathname + location.search);
  return Boolean(given);
}

function start() {
  takeFragment();
  window.addEventListener("hashchange", () => takeFragment() && connect()); // a new link, same tab
  $("login-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const given = $("token-input").value.trim();
    if (!given) return;
    $("token-input").value = "";
    localStorage.setItem(TOKEN_KEY, given);
    connect();
  });
  $("forget").addEventListener("click", () => {
    localStorage.removeItem(TOKEN_KEY);
    stop();
    showLogin("");
  });
  $("chart-close").addEventListener("click", () => {
    $("chart-panel").hidden = true;
  });
  setInterval(tickSeen, 1000);
  setInterval(() => token && updateHealth(), 10000);
  if (localStorage.getItem(TOKEN_KEY)) connect();
  else showLogin("");
}

function stop() {
  generation += 1;
  token = null;
  if (socket) socket.close();
  socket = null;
  setConn("off", "not connected");
}

function refused(reason) {
  localStorage.removeItem(TOKEN_KEY);
  stop();
  showLogin(`The gateway refused the token (${reason}). Enter its current token.`);
}

function showLogin(message) {
  $("main").hidden = true;
  $("forget").hidden = true;
  $("login").hidden = false;
  $("login-msg").textContent = message;
  $("health").textContent = "";
  $("token-input").focus();
}

async function connect() {
  stop();
  token = localStorage.getItem(TOKEN_KEY);
  const gen = generation;
  try {
    await refresh();
  } catch (e) {
    if (e.status === 401 || gen !== generation) return;
    $("login").hidden = true;
    $("main").hidden = false;
    $("forget").hidden = false;
    notice(`Cannot load the devices: ${e.message}`);
    reconnectLater(gen);
    return;
  }
  if (gen !== generation) return;
  $("login").hidden = true;
  $("main").hidden = false;
  $("forget").hidden = false;
  updateHealth();
  openSocket(gen);
}

// -- live events ---------------------------------------------------------------------------

function setConn(state, text) {
  $("conn").dataset.state = state;
  $("conn").textContent = text;
}

function openSocket(gen) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const s = new WebSocket(`${scheme}//${location.host}/api/ws?token=${encodeURIComponent(token)}`);
  socket = s;
  s.onopen = () => {
    if (gen !== generation) return s.close();
    backoff = BACKOFF_MIN_MS;
    setConn("on", "live");
    notice("");
    refresh().catch(() => {}); // whatever happened while the socket was away
  };
  s.onmessage = (m) => {
    if (gen !== generation) return;
    let ev;
    try {
      ev = JSON.parse(m.data);
    } catch {
      return;
    }
    onEvent(ev);
  };
  s.onclose = () => {
    if (socket === s) socket = null;
    if (gen !== generation) return;
    reconnectLater(gen);
  };
}

function reconnectLater(gen) {
  const delay = backoff * (0.8 + 0.4 * Math.random());
  backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
  setConn("off", `reconnecting in ${Math.max(1, Math.round(delay / 1000))} s`);
  setTimeout(async () => {
    if (gen !== generation) return;
    try {
      await api("GET", "/api/metrics"); // a refused token shows the form, not endless retries
    } catch (e) {
      if (e.status !== 401 && gen === generation) reconnectLater(gen);
      return;
    }
    if (gen === generation) openSocket(gen);
  }, delay);
}

function onEvent(ev) {
  const d = devices.get(ev.node);
  switch (ev.type) {
    case "state":
      if (!d) {
        // A device this page has not loaded yet (adopted elsewhere a moment ago): load it,
        // once; the gateway applied this state before it sent the event, so it comes along.
        if (!loading.has(ev.node)) {
          loading.add(ev.node);
          reloadDevice(ev.node).finally(() => loading.delete(ev.node));
        }
        return;
      }
      for (const [cap, value] of Object.entries(ev.values || {})) {
        d.state[cap] = { value, ts: ev.ts };
        updateRow(d.id, cap);
      }
      d.last_seen = ev.ts;
      updateStatus(d);
      break;
    case "event":
      if (!d) return;
      flash(d, ev.capability, ev.event);
      log(`${d.name}: ${ev.capability} ${ev.event}${ev.count > 1 ? ` x${ev.count}` : ""}`);
      break;
    case "availability":
      if (!d) return;
      d.online = ev.online;
      d.reason = ev.reason;
      updateStatus(d);
      log(`${d.name}: ${ev.online ? "online" : "offline"} (${ev.reason})`);
      updateHealth();
      break;
    case "device":
      log(`${d ? d.name : ev.node}: ${ev.action}`);
      reloadDevice(ev.node, ev.action);
      break;
    case "pending":
      reloadPending();
      updateHealth();
      break;
    case "dropped":
      refresh().catch(() => {}); // this page was too slow for the gateway: start again
      break;
  }
}

const loading = new Set(); // ids of devices being loaded because an event named them
const deviceGen = new Map(); // device id -> number of its latest reload (older answers lose)

async function reloadDevice(id, action) {
  const gen = (deviceGen.get(id) || 0) + 1;
  deviceGen.set(id, gen);
  try {
    if (action === "removed") devices.delete(id);
    else {
      const fresh = (await api("GET", devicePath(id))).data;
      if (deviceGen.get(id) !== gen) return;
      // State events may have come while it was on its way: keep what is newer.
      const old = devices.get(id);
      for (const [cap, v] of Object.entries((old && old.state) || {})) {
        const f = fresh.state[cap];
        if (!f || f.ts < v.ts) fresh.state[cap] = v;
      }
      devices.set(id, fresh);
    }
  } catch (e) {
    if (e.status === 404 && deviceGen.get(id) === gen) devices.delete(id);
    else return;
  }
  renderDevices();
  if (action === "adopted") reloadPending();
  updateHealth();
}

// Each read of the pending list, or change made here, takes a number: an answer that
// comes back after a newer one started (or after an adoption on this page) is stale.
let pendingGen = 0;

async function reloadPending() {
  const gen = ++pendingGen;
  let data;
  try {
    data = (await api("GET", "/api/pending")).data;
  } catch {
    return;
  }
  if (gen !== pendingGen) return;
  pending = data;
  renderPending();
}

async function refresh() {
  const gen = ++pendingGen;
  const [devs, pend] = await Promise.all([api("GET", "/api/devices"), api("GET", "/api/pending")]);
  devices.clear();
  for (const d of devs.data) devices.set(d.id, d);
  if (gen === pendingGen) pending = pend.data;
  renderDevices();
  renderPending();
}

async function updateHealth() {
  let m;
  try {
    m = (await api("GET", "/api/metrics")).data;
  } catch {
    return;
  }
  const parts = [`${m.online}/${m.nodes} nodes online`];
  if (m.pending) parts.push(`${m.pending} waiting to join`);
  if ("mqtt_connected" in m) parts.push(m.mqtt_connected ? "MQTT connected" : "MQTT not connected");
  parts.push(`up ${ago(m.uptime_s)}`);
  $("health").textContent = parts.join(" · ");
}

// -- devices -------------------------------------------------------------------------------

function byName(a, b) {
  return a.name.localeCompare(b.name) || a.id.localeCompare(b.id);
}

function shapeOf() {
  const all = [...devices.values()].sort(byName);
  return JSON.stringify(all.map((d) => [d.id, d.name, d.room, d.type, d.model, d.sleepy, d.capabilities]));
}

function renderDevices() {
  const now = shapeOf();
  if (now === shape) {
    for (const d of devices.values()) refreshCard(d); // same cards: values and status in place
    return;
  }
  shape = now;
  const rooms = new Map();
  for (const d of [...devices.values()].sort(byName)) {
    const room = d.room || "";
    if (!rooms.has(room)) rooms.set(room, []);
    rooms.get(room).push(d);
  }
  const order = [...rooms.keys()].sort((a, b) => (!a ? 1 : !b ? -1 : a.localeCompare(b)));
  views.clear();
  const root = $("rooms");
  root.replaceChildren();
  if (!devices.size) {
    root.append(el("p", { class: "hint" }, "No devices yet: adopt a node waiting to join, or with `kithnet adopt`."));
  }
  for (const room of order) {
    const cards = el("div", { class: "cards" });
    for (const d of rooms.get(room)) cards.append(card(d));
    root.append(el("section", { class: "room", "data-room": room }, el("h2", {}, room || "No room"), cards));
  }
}

function card(d) {
  const status = el("span", { class: "status" });
  const seen = el("span", { class: "seen" });
  const rows = new Map();
  const body = el("tbody");
  for (const c of d.capabilities) {
    const row = capRow(d, c);
    rows.set(c.name, row);
    body.append(row.tr);
  }
  const kind = [d.type, d.model, d.sleepy ? "sleeps between reports" : null].filter(Boolean).join(" · ");
  const article = el(
    "article",
    { class: "card", "data-id": d.id },
    el("h3", { class: "name" }, d.name),
    el("div", { class: "meta" }, kind, el("br"), el("code", {}, d.id)),
    el("div", { class: "meta" }, status, " · last seen ", seen),
    el("table", { class: "caps" }, body),
  );
  const view = { card: article, status, seen, rows };
  views.set(d.id, view);
  refreshCard(d);
  return article;
}

function refreshCard(d) {
  const v = views.get(d.id);
  if (!v) return;
  for (const cap of v.rows.keys()) updateRow(d.id, cap);
  updateStatus(d);
}

function updateStatus(d) {
  const v = views.get(d.id);
  if (!v) return;
  v.card.classList.toggle("offline", !d.online);
  v.status.className = `status ${d.online ? "online" : "offline"}`;
  v.status.textContent = d.online ? "online" : `offline: ${d.reason}`;
  v.status.title = d.reason || "";
  v.seen.dataset.ts = d.last_seen ?? "";
  tickSeen();
}

function tickSeen() {
  const now = Date.now() / 1000;
  for (const v of views.values()) {
    const ts = parseFloat(v.seen.dataset.ts);
    v.seen.textContent = Number.isFinite(ts) ? `${ago(now - ts)} ago` : "never";
  }
}

function ago(s) {
  s = Math.max(0, s);
  if (s < 60) return `${Math.floor(s)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) return `${Math.floor(s / 3600)} h`;
  return `${Math.floor(s / 86400)} d`;
}

function valueOf(d, cap) {
  const s = d.state && d.state[cap];
  return s ? s.value : undefined;
}

function numeric(c, value) {
  return !c.options && !BOOL_KINDS.has(c.kind) && typeof value !== "boolean";
}

function show(c, value) {
  if (value === undefined || value === null) return "—";
  if (typeof value === "boolean") {
    const words = WORDS[c.kind] || ["on", "off"];
    return value ? words[0] : words[1];
  }
  if (typeof value === "number") {
    const n = String(Math.round(value * 1000) / 1000);
    return c.unit ? `${n} ${c.unit}` : n;
  }
  return String(value);
}

function capRow(d, c) {
  const value = valueOf(d, c.name);
  const name = numeric(c, value)
    ? el("button", { type: "button", class: "cap-name", title: "history" }, c.name)
    : el("span", { class: "cap-name" }, c.name);
  if (name.tagName === "BUTTON") name.addEventListener("click", () => showHistory(d.id, c));
  const shown = el("span", { class: "v" });
  const result = el("span", { class: "result", role: "status" });
  const row = { tr: null, shown, result, input: null, kind: null };
  const ctl = c.writable ? control(d, c, row) : null;
  row.tr = el(
    "tr",
    { "data-cap": c.name },
    el("td", {}, name),
    el("td", { class: "value" }, shown),
    el("td", {}, ctl ? el("div", { class: "control" }, ctl) : null, result),
  );
  return row;
}

function control(d, c, row) {
  const value = valueOf(d, c.name);
  if (BOOL_KINDS.has(c.kind) || typeof value === "boolean") {
    const b = el("button", { type: "button", class: "toggle", role: "switch", "aria-label": c.name });
    b.addEventListener("click", () => command(d.id, c, b.getAttribute("aria-checked") !== "true", b));
    row.input = b;
    row.kind = "toggle";
    return b;
  }
  if (c.options) {
    const s = el("select", { "aria-label": c.name });
    for (const o of c.options) s.append(el("option", { value: o }, o));
    s.addEventListener("change", () => command(d.id, c, s.value, s));
    row.input = s;
    row.kind = "select";
    return s;
  }
  const range = RANGE_KINDS.has(c.kind);
  const i = el("input", {
    type: range ? "range" : "number",
    min: c.min,
    max: c.max,
    step: range ? 1 : "any",
    "aria-label": c.name,
  });
  i.addEventListener("change", () => {
    if (i.value === "" || !i.checkValidity()) {
      setResult(d.id, c.name, `${c.name} takes a number from ${c.min} to ${c.max}`, "error");
      return;
    }
    command(d.id, c, Number(i.value), i);
  });
  row.input = i;
  row.kind = "number";
  return i;
}

function updateRow(id, cap) {
  const d = devices.get(id);
  const row = views.get(id)?.rows.get(cap);
  if (!d || !row) return;
  const c = d.capabilities.find((x) => x.name === cap);
  const value = valueOf(d, cap);
  row.shown.textContent = show(c, value);
  const [text, cls] = results.get(`${id}/${cap}`) || ["", ""];
  row.result.textContent = text;
  row.result.className = `result ${cls}`;
  const i = row.input;
  if (!i || value === undefined) return;
  if (row.kind === "toggle") {
    i.setAttribute("aria-checked", value ? "true" : "false");
    i.textContent = show(c, value);
  } else if (row.kind === "select") {
    i.value = String(value);
  } else if (document.activeElement !== i) {
    i.value = String(value); // not while someone types in it
  }
}

function setResult(id, cap, text, cls) {
  results.set(`${id}/${cap}`, [text, cls]);
  updateRow(id, cap);
}

async function command(id, c, value, input) {
  const d = devices.get(id);
  if (!d) return;
  input.disabled = true;
  setResult(id, c.name, "sending…", "");
  const what = `${d.name}: ${c.name} → ${show(c, value)}`;
  try {
    const r = await api("POST", `${devicePath(id)}/set`, { values: { [c.name]: value } });
    if (r.data.status === "queued") {
      setResult(id, c.name, "queued: sent when the node next wakes", "queued");
      log(`${what}: queued until it wakes`);
    } else {
      for (const [cap, v] of Object.entries(r.data.state || {})) d.state[cap] = { value: v, ts: Date.now() / 1000 };
      setResult(id, c.name, "applied", "ok");
      log(`${what}: applied`);
      refreshCard(d);
    }
  } catch (e) {
    setResult(id, c.name, e.message, "error");
    log(`${what}: ${e.message}`);
  } finally {
    input.disabled = false;
    updateRow(id, c.name);
  }
}

function flash(d, cap, event) {
  const row = views.get(d.id)?.rows.get(cap);
  if (!row) return;
  const c = d.capabilities.find((x) => x.name === cap);
  d.state[cap] = { value: event, ts: Date.now() / 1000 };
  row.shown.textContent = show(c, event);
  row.tr.classList.add("flash");
  setTimeout(() => row.tr.classList.remove("flash"), 1500);
}

// -- nodes waiting to join -----------------------------------------------------------------

function renderPending() {
  // A node's box stays while it is pending: a key half typed in is not lost to a refresh.
  const box = $("pending");
  const ids = new Set(pending.map((p) => p.id));
  for (const [id, view] of pendingViews) {
    if (!ids.has(id)) {
      view.remove();
      pendingViews.delete(id);
    }
  }
  $("pending-section").hidden = pending.length === 0;
  for (const p of pending) {
    const about = [p.model, p.type, p.firmware && `firmware ${p.firmware}`, p.address, `${p.hellos} hellos`];
    const known = pendingViews.get(p.id);
    if (known) {
      known.querySelector(".meta").textContent = about.filter(Boolean).join(" · ");
      continue;
    }
    const key = el("input", {
      name: "key", required: true, pattern: "[0-9a-fA-F]{32}", placeholder: "32 hex digits",
      autocomplete: "off", spellcheck: "false", size: 34,
    });
    const name = el("input", { name: "name", value: p.name || "" });
    const room = el("input", { name: "room" });
    const result = el("span", { class: "result", role: "status" });
    const form = el(
      "form",
      {},
      el("label", {}, "Key", key),
      el("label", {}, "Name", name),
      el("label", {}, "Room", room),
      el("button", { type: "submit" }, "Adopt"),
      result,
    );
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const body = { key: key.value.trim() };
      if (name.value.trim()) body.name = name.value.trim();
      if (room.value.trim()) body.room = room.value.trim();
      result.textContent = "adopting…";
      result.className = "result";
      try {
        const dev = (await api("POST", `/api/pending/${encodeURIComponent(p.id)}/adopt`, body)).data;
        devices.set(dev.id, dev);
        pendingGen++; // a list read before this adoption must not bring the node back
        pending = pending.filter((x) => x.id !== p.id);
        log(`${dev.name}: adopted`);
        renderDevices();
        renderPending();
      } catch (err) {
        result.textContent = err.message;
        result.className = "result error";
      }
    });
    const view = el(
      "div",
      { class: "pending-node", "data-id": p.id },
      el("strong", {}, p.name || p.id),
      " ",
      el("code", {}, p.id),
      el("div", { class: "meta" }, about.filter(Boolean).join(" · ")),
      form,
    );
    pendingViews.set(p.id, view);
    box.append(view);
  }
}

// -- history chart -------------------------------------------------------------------------

async function showHistory(id, c) {
  const d = devices.get(id);
  if (!d) return;
  $("chart-panel").hidden = false;
  $("chart-title").textContent = `${d.name} · ${c.name}${c.unit ? ` (${c.unit})` : ""}`;
  $("chart-msg").textContent = "";
  $("chart").replaceChildren();
  let points;
  try {
    points = (await api("GET", `${devicePath(id)}/history/${encodeURIComponent(c.name)}?limit=500`)).data;
  } catch (e) {
    $("chart-msg").textContent = e.message;
    return;
  }
  points = points.filter((p) => typeof p.value === "number" && Number.isFinite(p.value));
  if (points.length < 2) {
    $("chart-msg").textContent = `not enough history yet (${points.length} point${points.length === 1 ? "" : "s"})`;
    return;
  }
  $("chart").append(chart(points, c.unit));
  $("chart-panel").scrollIntoView({ block: "nearest" });
}

function chart(points, unit) {
  const W = 640, H = 220, L = 64, R = 12, T = 12, B = 28;
  const ts = points.map((p) => p.ts), vs = points.map((p) => p.value);
  let t0 = Math.min(...ts), t1 = Math.max(...ts), v0 = Math.min(...vs), v1 = Math.max(...vs);
  if (t1 === t0) t1 = t0 + 1;
  if (v1 === v0) { v0 -= 1; v1 += 1; }
  const x = (t) => L + ((t - t0) / (t1 - t0)) * (W - L - R);
  const y = (v) => T + (1 - (v - v0) / (v1 - v0)) * (H - T - B);
  const line = points.map((p) => `${x(p.ts).toFixed(1)},${y(p.value).toFixed(1)}`).join(" ");
  const u = unit ? ` ${unit}` : "";
  const clock = (t) => new Date(t * 1000).toLocaleTimeString();
  const s = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "history" });
  s.append(
    svg("line", { class: "axis", x1: L, y1: T, x2: L, y2: H - B }),
    svg("line", { class: "axis", x1: L, y1: H - B, x2: W - R, y2: H - B }),
    svg("text", { x: L - 6, y: T + 4, "text-anchor": "end" }, `${round(v1)}${u}`),
    svg("text", { x: L - 6, y: H - B, "text-anchor": "end" }, `${round(v0)}${u}`),
    svg("text", { x: L, y: H - 8 }, clock(t0)),
    svg("text", { x: W - R, y: H - 8, "text-anchor": "end" }, clock(t1)),
    svg("polyline", { class: "line", points: line }),
  );
  return s;
}

function round(v) {
  return String(Math.round(v * 100) / 100);
}

// -- notices and the event log -------------------------------------------------------------

function notice(text) {
  $("notice").textContent = text;
  $("notice").hidden = !text;
}

function log(text) {
  const list = $("log");
  const now = new Date();
  list.prepend(el("li", {}, el("time", { datetime: now.toISOString() }, now.toLocaleTimeString()), text));
  while (list.children.length > LOG_MAX) list.lastChild.remove();
}

start();
