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
              stillCap: el("figcaption", {}, "latest"), clipCap: el("figcaption", {}, "learning clip"),
              info: el("div", { className: "legend" }), keys: el("div", { className: "legend keys" }),
              chart: document.createElementNS("http://www.w3.org/2000/svg", "svg"),
              badge: el("span", { className: "pill muted" }), frames: [], frame: 0 };
  c.box = el("section", { className: "run" }, el("h3", {}, genre, c.badge),
             el("div", { className: "pics" }, el("figure", {}, c.still, c.stillCap), el("figure", {}, c.clip, c.clipCap)),
             c.chart, c.keys, c.info);
  $("runs").append(c.box);
  cards[genre] = c;
  return c;
}

const SVG = (tag, attrs) => {
  const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
};

// a centred running mean over about a 30th of the run: the losses' trend, not each epoch's jitter
function smooth(points) {
  const half = Math.floor(points.length / 60);
  if (!half) return points;
  const sums = [0];
  for (const [, v] of points) sums.push(sums[sums.length - 1] + v);
  return points.map(([i], k) => {
    const a = Math.max(0, k - half), b = Math.min(points.length, k + half + 1);
    return [i, (sums[b] - sums[a]) / (b - a)];
  });
}

// the losses (smoothed over the faint raw ones) and the KID curve, each on its own scale; the KID's first and
// latest values are written at its ends. Returns the series drawn, for the legend.
function chart(svg, columns) {
  const w = 300, h = 120;
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  svg.replaceChildren();
  const epochs = columns.epoch || [];
  if (epochs.length < 2) return {};
  const x = (i) => i / (epochs.length - 1) * (w - 8) + 4;
  const drawn = {};
  for (const key of ["loss_d", "loss_g", "kid"]) {
    const ys = (columns[key] || []).map((v, i) => [i, v]).filter(([, v]) => v != null && isFinite(v));
    if (ys.length < 1 || (key !== "kid" && ys.length < 2)) continue;
    const lo = Math.min(...ys.map(([, v]) => v)), hi = Math.max(...ys.map(([, v]) => v));
    const y = (v) => h - 14 - (v - lo) / ((hi - lo) || 1) * (h - 28);
    const pts = (p) => p.map(([i, v]) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
    if (key === "kid") {
      if (ys.length > 1) svg.append(SVG("polyline", { points: pts(ys), fill: "none", stroke: COLORS.kid, "stroke-width": 2 }));
      for (const [i, v] of ys) svg.append(SVG("circle", { cx: x(i).toFixed(1), cy: y(v).toFixed(1), r: 2.5, fill: COLORS.kid }));
      const ends = ys.length > 1 ? [ys[0], ys[ys.length - 1]] : [ys[0]];
      for (const [k, [i, v]] of ends.entries()) {
        const last = k === ends.length - 1 && ends.length > 1;
        svg.append(Object.assign(SVG("text", { x: (last ? x(i) - 3 : x(i) + 3).toFixed(1), y: (y(v) + (y(v) > h / 2 ? -6 : 12)).toFixed(1),
          fill: COLORS.kid, "font-size": 10, "font-weight": 600, "text-anchor": last ? "end" : "start", class: "kid-value",
          stroke: "#111319", "stroke-width": 3, "paint-order": "stroke" }), { textContent: v.toFixed(3) }));
      }
    } else {
      svg.append(SVG("polyline", { points: pts(ys), fill: "none", stroke: COLORS[key], "stroke-width": 1, opacity: 0.3 }));
      svg.append(SVG("polyline", { points: pts(smooth(ys)), fill: "none", stroke: COLORS[key], "stroke-width": 1.6 }));
    }
    drawn[key] = ys[ys.length - 1][1];
  }
  return drawn;
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
      // a deadline run says its deadline (its ETA is the clock's); an epoch-count run its ETA
      const deadline = r.until ? ` · until ${r.until}` : r.hours ? ` · ${r.hours} h` : "";
      const left = r.active ? (r.eta_s != null && !r.until && !r.hours ? ` · ETA ${duration(r.eta_s)}` : deadline)
        : r.epochs && r.epoch >= r.epochs ? " · done" : "";
      c.info.textContent = `epoch ${r.epoch}${total} · step ${r.step} · ${r.images_per_s.toFixed(0)} img/s${left}` +
        ` · ${r.arch} ${r.size ?? ""}px`;
      if (r.latest) {
        c.still.src = `${API}/runs/${r.genre}/samples/${r.latest}`;
        c.stillCap.textContent = `latest: ${r.latest.replace(/^epoch_0*(\d)/, "epoch $1").replace(/\.png$/, "")}`;
      }
      const log = await (await fetch(`${API}/runs/${r.genre}/log`)).json();
      const drawn = chart(c.chart, log.columns);
      c.keys.replaceChildren(...Object.keys(drawn).map((k) => el("span", {}, el("i", { style: `background:${COLORS[k]}` }),
        k === "kid" ? `KID ${(r.kid ?? drawn.kid).toFixed(3)}` : k.replace("loss_", "loss "))));
      if (!("kid" in drawn)) c.keys.append(el("span", {}, r.kid_every === "off" ? "KID off" : `no KID yet (every ${r.kid_every})`));
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
