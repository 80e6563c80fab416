// The training monitor: every genre of a runs folder, refreshed every few seconds (read-only).
"use strict";
const API = "/api/v1";
const $ = (id) => document.getElementById(id);
const el = (tag, props = {}, ...kids) => { const e = Object.assign(document.createElement(tag), props); e.append(...kids); return e; };
const cards = {};
const COLORS = { loss_d: "#35d0ff", loss_g: "#ff4f8b", kid: "#ffb020" };

function duration(s) {
  if (s == null) return "—";
  s = Math.round(s);
  return s >= 3600 ? `${Math.floor(s / 3600)}h${String(Math.floor(s % 3600 / 60)).padStart(2, "0")}m` : `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
}

function card(genre) {
  if (cards[genre]) return cards[genre];
  const c = { still: el("img", { alt: `${genre}: latest sample` }), clip: el("img", { alt: `${genre}: the learning clip so far` }),
              info: el("div", { className: "legend" }), chart: document.createElementNS("http://www.w3.org/2000/svg", "svg"),
              badge: el("span", { className: "pill muted" }), frames: [], frame: 0 };
  c.box = el("section", { className: "run" }, el("h3", {}, genre, c.badge), el("div", { className: "pics" }, c.still, c.clip),
             c.chart, el("div", { className: "legend" }, ...Object.entries(COLORS).map(([k, v]) =>
               el("span", {}, el("i", { style: `background:${v}` }), k.replace("loss_", "loss ")))), c.info);
  $("runs").append(c.box);
  cards[genre] = c;
  return c;
}

function chart(svg, columns) {
  const w = 300, h = 120;
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  svg.replaceChildren();
  const epochs = columns.epoch || [];
  if (epochs.length < 2) return;
  const x = (i) => i / (epochs.length - 1) * (w - 8) + 4;
  for (const key of ["loss_d", "loss_g", "kid"]) {
    const ys = (columns[key] || []).map((v, i) => [i, v]).filter(([, v]) => v != null && isFinite(v));
    if (ys.length < 2) continue;
    const lo = Math.min(...ys.map(([, v]) => v)), hi = Math.max(...ys.map(([, v]) => v));
    const y = (v) => h - 6 - (v - lo) / ((hi - lo) || 1) * (h - 12);
    const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
    line.setAttribute("points", ys.map(([i, v]) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" "));
    line.setAttribute("fill", "none");
    line.setAttribute("stroke", COLORS[key]);
    line.setAttribute("stroke-width", key === "kid" ? "2" : "1.2");
    svg.append(line);
  }
}

async function refresh() {
  try {
    const data = await (await fetch(`${API}/runs`)).json();
    $("link").classList.add("on");
    $("where").textContent = data.runs;
    $("empty").hidden = data.genres.length > 0;
    for (const r of data.genres) {
      const c = card(r.genre);
      c.badge.textContent = r.active ? "training" : "idle";
      c.badge.classList.toggle("muted", !r.active);
      const total = r.epochs ? `/${r.epochs}` : "";
      c.info.textContent = `epoch ${r.epoch}${total} · step ${r.step} · ${r.images_per_s.toFixed(0)} img/s · ETA ${duration(r.eta_s)}` +
        (r.kid != null ? ` · KID ${r.kid.toFixed(4)}` : "") + ` · ${r.arch} ${r.size ?? ""}px`;
      if (r.latest) c.still.src = `${API}/runs/${r.genre}/samples/${r.latest}`;
      const log = await (await fetch(`${API}/runs/${r.genre}/log`)).json();
      chart(c.chart, log.columns);
      const samples = (await (await fetch(`${API}/runs/${r.genre}/samples`)).json()).samples;
      c.frames = samples.map((n) => `${API}/runs/${r.genre}/samples/${n}`);
    }
  } catch (e) {
    $("link").classList.remove("on");
  }
}

// the learning clip so far: every recorded sample in order, 8 a second
setInterval(() => {
  for (const c of Object.values(cards)) {
    if (!c.frames.length) continue;
    c.frame = (c.frame + 1) % c.frames.length;
    c.clip.src = c.frames[c.frame];
  }
}, 125);
refresh();
setInterval(refresh, 5000);
