// reframe-vj's control page: every control is made from the show's parameter schema (GET /api/v1/schema),
// changes go out over one WebSocket (/api/v1/ws) and every change from anywhere (OSC, MIDI, keys, cues,
// another browser) comes back on it. Plain JS, no build step, no network beyond the show itself.
"use strict";

const API = "/api/v1";
const $ = (id) => document.getElementById(id);
const el = (tag, props = {}, ...children) => {
  const e = Object.assign(document.createElement(tag), props);
  for (const c of children) e.append(c);
  return e;
};

const show = { schema: null, params: {}, widgets: {}, genre: null, genres: [], keys: {}, learn: false,
               tempo: { bpm: 120, beat: 0, at: 0 }, socket: null, touched: {} };

// ------------------------------------------------------------------ the connection
function connect() {
  const proto = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${proto}://${location.host}${API}/ws`);
  show.socket = ws;
  ws.onopen = () => $("link").classList.add("on");
  ws.onclose = () => { $("link").classList.remove("on"); setTimeout(connect, 1000); };
  ws.onmessage = (ev) => {
    const msg = JSON.parse(ev.data);
    if (msg.type === "state") onState(msg);
    else if (msg.type === "changes") onChanges(msg);
    else if (msg.type === "status") onStatus(msg);
    else if (msg.type === "error") toast(msg.error);
  };
}

function send(message) {
  if (show.socket && show.socket.readyState === WebSocket.OPEN) {
    show.socket.send(JSON.stringify(message));
    return;
  }
  const url = message.type === "param" ? `${API}/params/${encodeURIComponent(message.name)}`
    : message.type === "key" ? `${API}/key/${encodeURIComponent(message.key)}`
    : `${API}/${message.name}` + (message.argument != null ? `/${encodeURIComponent(message.argument)}` : "");
  fetch(url, { method: message.type === "param" ? "PUT" : "POST", headers: { "Content-Type": "application/json" },
               body: message.type === "param" ? JSON.stringify({ value: message.value }) : undefined })
    .then((r) => r.ok ? null : r.json().then((j) => toast(j.error)));
}

const command = (name, argument = null) => send({ type: "command", name, argument });

// ------------------------------------------------------------------ state from the show
async function onState(state) {
  if (!show.schema) {
    show.schema = await (await fetch(`${API}/schema`)).json();
    build(show.schema, state);
  }
  show.genres = state.genres;
  show.keys = state.keys || {};
  show.midi = state.midi;
  $("learn-mode").hidden = !state.midi;
  for (const [name, value] of Object.entries(state.params)) setValue(name, value);
  setGenre(state.genre, state.fade);
  setTempo(state.tempo);
}

function onChanges(msg) {
  for (const [name, value] of Object.entries(msg.params || {})) setValue(name, value);
  const st = msg.state || {};
  if (st.genre) setGenre(st.genre, 0);
  if (st.error) toast(st.error);
  if (st["tempo.source"]) $("tempo-source").textContent = st["tempo.source"];
}

function onStatus(s) {
  $("fps").textContent = `${s.fps.toFixed(0)} fps · p95 ${s.render_p95_ms.toFixed(1)} ms`;
  setTempo(s.tempo);
  if (s.genre !== show.genre) setGenre(s.genre, s.fade);
  const fade = document.querySelector(".pad.lit .fade");
  if (fade) fade.style.width = `${Math.round((s.fade ?? 1) * 100)}%`;
  const rows = [["frames", s.frames], ["render p95", `${s.render_p95_ms.toFixed(1)} ms`], ["events", s.events],
                ["superseded", s.superseded], ["dropped", dropped(s)], ["outputs", (s.outputs || []).join(", ") || "—"]];
  $("status").replaceChildren(...rows.flatMap(([k, v]) => [el("dt", { textContent: k }), el("dd", { textContent: v })]));
  $("errors").replaceChildren(...(s.errors || []).slice().reverse().map((e) => el("li", { textContent: e })));
}

const dropped = (s) => s.dropped ? `${s.dropped} (` + Object.entries(s.dropped_by).map(([k, v]) => `${k} ${v}`).join(", ") + ")" : "0";

// ------------------------------------------------------------------ building the page from the schema
function build(schema, state) {
  const byName = Object.fromEntries(schema.params.map((p) => [p.name, p]));
  const used = new Set();
  const take = (prefix) => schema.params.filter((p) => p.name.startsWith(prefix) && !used.has(p.name))
    .map((p) => (used.add(p.name), p));
  const fill = (box, params) => box.append(...params.map(control));

  fill($("master-controls"), ["master.crossfade", "master.fader", "genre.fade", "autopilot.bars"]
    .filter((n) => byName[n]).map((n) => (used.add(n), byName[n])));
  fill($("tempo-controls"), take("tempo."));
  for (const layer of schema.layers) {
    const box = el("div", { className: "controls" });
    fill(box, take(`layer.${layer.name}.`));
    for (const fx of layer.effects) fill(box, take(`fx.${fx}.`));
    $("layers").append(el("details", { open: true }, el("summary", {}, layer.name, el("small", { textContent: layer.source + (layer.deck ? ` · deck ${layer.deck}` : "") })), box));
  }
  for (const fx of schema.effects) {
    const box = el("div", { className: "controls" });
    fill(box, take(`fx.${fx.id}.`));
    $("effects").append(el("details", { open: false }, el("summary", {}, fx.id, el("small", { textContent: fx.type })), box));
  }
  const rest = schema.params.filter((p) => !used.has(p.name));
  if (rest.length) {
    const box = el("div", { className: "controls" });
    fill(box, rest);
    $("effects").append(el("details", {}, el("summary", {}, "audio and more"), box));
  }
  $("genres").replaceChildren(...state.genres.map((g) => {
    const pad = el("button", { className: "pad", title: `genre ${g}` }, el("span", { textContent: g }), el("i", { className: "fade" }));
    pad.dataset.genre = g;
    pad.style.backgroundImage = `url("${API}/thumbnails/${encodeURIComponent(g)}.jpg")`;
    pad.addEventListener("click", () => command("genre", g));
    return pad;
  }));
  $("cues").replaceChildren(...state.cues.map((c) => {
    const b = el("button", { className: "pad", textContent: c });
    b.addEventListener("click", () => command("cue", c));
    return b;
  }));
  $("cues-section").hidden = !state.cues.length;
}

function control(p) {
  const row = el("div", { className: "control" + (p.readonly ? " readonly" : "") });
  row.dataset.param = p.name;
  const parts = p.name.split(".");
  const short = parts[0] === "fx" ? `${parts[1]} ${parts.slice(2).join(".")}` : parts.slice(-1)[0];
  const label = el("label", { textContent: short, title: `${p.name}: ${p.help}` });
  label.addEventListener("click", () => learnOn(p, row));
  let input, out = el("output");
  if (p.kind === "bool") {
    input = el("button", { className: "switch", title: p.help });
    input.setAttribute("role", "switch");
    input.addEventListener("click", () => { if (!p.readonly) change(p, input.classList.contains("on") ? 0 : 1); });
  } else if (p.kind === "choice") {
    input = el("select", { title: p.help, disabled: p.readonly });
    p.choices.forEach((c, i) => input.append(el("option", { value: i, textContent: c })));
    input.addEventListener("change", () => change(p, Number(input.value)));
  } else {
    const step = p.kind === "int" ? 1 : (p.max - p.min) / 1000;
    input = el("input", { type: "range", min: p.min, max: p.max, step, title: p.help, disabled: p.readonly });
    input.addEventListener("input", () => { out.textContent = fmt(p, Number(input.value)); change(p, Number(input.value)); });
  }
  input.setAttribute("aria-label", p.name);
  row.append(label, input, out);
  show.widgets[p.name] = { p, row, input, out };
  return row;
}

const fmt = (p, v) => p.kind === "int" || p.kind === "bool" ? String(Math.round(v))
  : p.kind === "choice" ? p.choices[v] : Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(2);

// a control being moved sends at most 30 changes a second; the show's answer does not fight the finger
const pending = {};
function change(p, value) {
  show.touched[p.name] = performance.now();
  if (pending[p.name] !== undefined) { pending[p.name] = value; return; }
  pending[p.name] = value;
  send({ type: "param", name: p.name, value });
  setTimeout(() => {
    const last = pending[p.name];
    delete pending[p.name];
    if (last !== value) send({ type: "param", name: p.name, value: last });
  }, 33);
}

function setValue(name, value) {
  show.params[name] = value;
  const w = show.widgets[name];
  if (!w) return;
  const touched = show.touched[name];
  if (touched !== undefined && performance.now() - touched < 400) return;  // the user's own move is in flight
  const { p, input, out } = w;
  if (p.kind === "bool") input.classList.toggle("on", value >= 0.5);
  else input.value = value;
  out.textContent = p.kind === "choice" ? "" : fmt(p, value);
}

function setGenre(genre, fade) {
  show.genre = genre;
  $("genre-now").textContent = genre || "—";
  for (const pad of document.querySelectorAll("#genres .pad")) {
    const lit = pad.dataset.genre === genre;
    pad.classList.toggle("lit", lit);
    pad.querySelector(".fade").style.width = lit ? `${Math.round((fade ?? 1) * 100)}%` : "0";
  }
}

function setTempo(t) {
  if (!t) return;
  show.tempo = { bpm: t.bpm, beat: t.beat, at: performance.now() };
  $("bpm-value").textContent = t.bpm.toFixed(1);
  $("tempo-source").textContent = t.source || "";
}

let lit = null;
function beatLoop() {  // the page is on a phone's battery: the DOM changes only when the dot does
  const t = show.tempo;
  const beat = t.beat + (performance.now() - t.at) / 1000 * t.bpm / 60;
  const hit = beat - Math.floor(beat) < 0.15;
  if (hit !== lit) { $("beat").classList.toggle("hit", hit); lit = hit; }
  requestAnimationFrame(beatLoop);
}

// ------------------------------------------------------------------ MIDI learn, keys, preview, messages
function learnOn(p, row) {
  if (!show.learn || p.readonly) return;
  command("learn", p.name);
  row.classList.add("armed");
  toast(`move a control on the MIDI device for ${p.name}`);
  setTimeout(() => row.classList.remove("armed"), 8000);
  setLearn(false);
}

function setLearn(on) {
  show.learn = on;
  $("learn-mode").classList.toggle("armed", on);
  $("learn-mode").textContent = on ? "click a control…" : "MIDI learn";
}

function preview() {
  const fps = Number($("preview-rate").value);
  const width = Math.min(640, Math.round(($("preview").clientWidth || 640) * (window.devicePixelRatio || 1) / 16) * 16);
  $("preview").src = fps ? `${API}/preview.mjpeg?fps=${fps}&width=${Math.max(160, width)}` : "";
}

let toastTimer = 0;
function toast(text) {
  $("toast").textContent = text;
  $("toast").classList.add("show");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => $("toast").classList.remove("show"), 3500);
}

window.addEventListener("keydown", (ev) => {
  if (ev.target.closest("input, select, textarea") || ev.metaKey || ev.ctrlKey || ev.altKey) return;
  const key = show.keys[ev.key] || show.keys[ev.key.toLowerCase()];
  if (key !== undefined) { send({ type: "key", key }); ev.preventDefault(); }
});
$("tap").addEventListener("pointerdown", (ev) => { ev.preventDefault(); command("tap"); });
$("learn-mode").addEventListener("click", () => setLearn(!show.learn));
$("preview-rate").addEventListener("change", preview);

connect();
preview();
requestAnimationFrame(beatLoop);
