// seeknal ui: one page over the read-only JSON API. Plain ES module, no build step, no network but this server.

const params = new URLSearchParams(location.search);
const TOKEN = params.get("token");
const state = { graph: null, entities: null, runs: null, newestRun: undefined, selected: null };

async function api(path) {
  const headers = TOKEN ? { Authorization: `Bearer ${TOKEN}` } : {};
  const res = await fetch(path, { headers, cache: "no-store" });
  const body = await res.json();
  if (!res.ok) throw new Error(body.error || `${res.status} ${res.statusText}`);
  return body;
}

const esc = (v) => String(v ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
const $ = (sel) => document.querySelector(sel);
const fmtNum = (v) => (v === null || v === undefined ? "" : typeof v === "number" ? (Number.isInteger(v) ? v.toLocaleString("en") : v.toPrecision(4)) : String(v));
const fmtSecs = (s) => (s === null || s === undefined ? "" : s < 1 ? `${Math.round(s * 1000)} ms` : `${s.toFixed(2)} s`);
const shortTime = (t) => (t ? t.replace("T", " ").replace(/\.\d+/, "").replace("+00:00", " UTC") : "");

function showError(err) {
  const box = $("#error");
  if (err) { box.textContent = `error: ${err.message || err}`; box.hidden = false; } else box.hidden = true;
}

// ---------------------------------------------------------------- graph: layers by longest path from sources
export function layers(nodes, edges) {
  const ups = new Map(nodes.map((n) => [n.id, []]));
  for (const [from, to] of edges) ups.get(to)?.push(from);
  const depth = new Map();
  const visit = (id) => {
    if (depth.has(id)) return depth.get(id);
    depth.set(id, 0); // the DAG has no cycle (the server checked); this only guards the recursion
    const d = Math.max(-1, ...ups.get(id).map(visit)) + 1;
    depth.set(id, d);
    return d;
  };
  nodes.forEach((n) => visit(n.id));
  return depth;
}

const BOX_W = 200, BOX_H = 46, GAP_X = 48, GAP_Y = 18, PAD = 12;

function renderGraph() {
  const { nodes, edges } = state.graph;
  const depth = layers(nodes, edges);
  const columns = [];
  for (const n of nodes) (columns[depth.get(n.id)] ||= []).push(n);
  // Order each layer by the mean row of its inputs (one barycentre sweep): fewer crossing edges.
  const row = new Map(), ups = new Map(nodes.map((n) => [n.id, []]));
  for (const [from, to] of edges) ups.get(to).push(from);
  columns.forEach((col) => {
    const key = (n) => (ups.get(n.id).length ? ups.get(n.id).reduce((a, u) => a + row.get(u), 0) / ups.get(n.id).length : 0);
    col.sort((a, b) => key(a) - key(b));
    col.forEach((n, i) => row.set(n.id, i));
  });
  const pos = new Map();
  columns.forEach((col, x) => col.forEach((n, y) => pos.set(n.id, { x: PAD + x * (BOX_W + GAP_X), y: PAD + y * (BOX_H + GAP_Y) })));
  const width = PAD * 2 + columns.length * (BOX_W + GAP_X) - GAP_X;
  const height = PAD * 2 + Math.max(1, ...columns.map((c) => c.length)) * (BOX_H + GAP_Y) - GAP_Y;
  const svg = $("#graph");
  // Scale down to the available width (never up), so a wide DAG stays whole at 1400 px.
  svg.style.width = "100%";
  svg.style.maxWidth = `${width}px`;
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const paths = edges.map(([from, to]) => {
    const a = pos.get(from), b = pos.get(to);
    const x1 = a.x + BOX_W, y1 = a.y + BOX_H / 2, x2 = b.x, y2 = b.y + BOX_H / 2, mid = (x1 + x2) / 2;
    return `<path class="edge" d="M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2 - 4},${y2}" marker-end="url(#arrow)"/>`;
  });
  const boxes = nodes.map((n) => {
    const p = pos.get(n.id);
    const name = n.id.slice(n.id.indexOf(".") + 1);
    const label = name.length > 27 ? name.slice(0, 26) + "…" : name;
    const kindShort = { second_order_aggregation: "SOA", feature_group: "feature group" }[n.kind] ?? n.kind;
    const sub = `${kindShort} · ${n.status.replace("_", " ")}${n.rows !== null ? ` · ${fmtNum(n.rows)} rows` : ""}`;
    return `<g class="node status-${esc(n.status)}${state.selected === n.id ? " selected" : ""}" data-id="${esc(n.id)}" transform="translate(${p.x},${p.y})">
      <title>${esc(n.id)}</title><rect width="${BOX_W}" height="${BOX_H}"></rect>
      <text x="10" y="19">${esc(label)}</text><text class="kind" x="10" y="36">${esc(sub)}</text></g>`;
  });
  svg.innerHTML = `<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto">
    <path d="M0,0 L10,5 L0,10 z" fill="#98a2b3"/></marker></defs>${paths.join("")}${boxes.join("")}`;
  svg.querySelectorAll(".node").forEach((g) => g.addEventListener("click", () => openNode(g.dataset.id)));
  $("#legend").innerHTML = ["ok", "stale", "failed", "never_run"]
    .map((s) => `<span><span class="dot" style="background:var(--${s})"></span>${s.replace("_", " ")} (${nodes.filter((n) => n.status === s).length})</span>`).join("");
  $("#project").textContent = state.graph.project;
}

// ---------------------------------------------------------------- node panel
function histogram(h) {
  if (!h) return "";
  const w = 110, ht = 28, max = Math.max(...h.counts, 1), bw = w / h.counts.length;
  const bars = h.counts.map((c, i) => {
    const bh = c ? Math.max(1, (c / max) * ht) : 0;
    return `<rect x="${(i * bw).toFixed(1)}" y="${(ht - bh).toFixed(1)}" width="${Math.max(1, bw - 1).toFixed(1)}" height="${bh.toFixed(1)}"><title>${c}</title></rect>`;
  }).join("");
  return `<svg class="hist" width="${w}" height="${ht}" viewBox="0 0 ${w} ${ht}">${bars}</svg>`;
}

function sparkline(history) {
  const pts = history.slice().reverse().filter((h) => h.duration_s !== null);
  if (pts.length < 1) return "<p class=meta>no recorded runs of this node</p>";
  const w = 220, ht = 36, max = Math.max(...pts.map((p) => p.duration_s), 1e-6);
  const xy = pts.map((p, i) => [pts.length === 1 ? w / 2 : 4 + (i * (w - 8)) / (pts.length - 1), ht - 4 - (p.duration_s / max) * (ht - 8)]);
  const dots = xy.map(([x, y], i) => `<circle class="${esc(pts[i].status)}" cx="${x.toFixed(1)}" cy="${y.toFixed(1)}" r="2.2"><title>${esc(pts[i].run_id)}: ${fmtSecs(pts[i].duration_s)}, ${fmtNum(pts[i].rows)} rows</title></circle>`).join("");
  return `<svg class="spark" width="${w}" height="${ht}"><polyline points="${xy.map((p) => p.map((v) => v.toFixed(1)).join(",")).join(" ")}"/>${dots}</svg>
    <span class="meta"> last ${pts.length} runs · max ${fmtSecs(max)}</span>`;
}

const KEYWORDS = new Set(("def return import from as class if elif else for while in not and or is None True False with lambda yield try except raise pass "
  + "select from where group by order having join left right inner outer on as and or not null case when then else end limit with union all distinct over partition cast sum count avg min max kind name sql")
  .split(" "));

export function highlight(code) {
  const re = /(#[^\n]*|--[^\n]*)|("""[\s\S]*?"""|'''[\s\S]*?'''|"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*')|\b(\d+(?:\.\d+)?)\b|\b([A-Za-z_]\w*)\b/g;
  let out = "", last = 0;
  for (const m of code.matchAll(re)) {
    out += esc(code.slice(last, m.index));
    if (m[1]) out += `<span class="com">${esc(m[1])}</span>`;
    else if (m[2]) out += `<span class="str">${esc(m[2])}</span>`;
    else if (m[3]) out += `<span class="num">${esc(m[3])}</span>`;
    else out += KEYWORDS.has(m[4].toLowerCase()) ? `<span class="kw">${esc(m[4])}</span>` : esc(m[4]);
    last = m.index + m[0].length;
  }
  return out + esc(code.slice(last));
}

function table(columns, rows, numeric = () => false) {
  return `<table><thead><tr>${columns.map((c) => `<th>${esc(c)}</th>`).join("")}</tr></thead><tbody>${rows
    .map((r) => `<tr>${r.map((v, i) => `<td class="${numeric(i, v) ? "num" : ""}">${esc(v === null ? "∅" : typeof v === "object" ? JSON.stringify(v) : fmtNum(v))}</td>`).join("")}</tr>`)
    .join("")}</tbody></table>`;
}

const num = (v) => (v === null || v === undefined ? "" : Number.isNaN(Number(v)) || v === "" ? String(v) : fmtNum(Number(v)));

function statsTable(columns) {
  if (!columns.length) return "<p class=meta>no output yet: run <code>seeknal run</code></p>";
  const rows = columns.map((c) => {
    const quartiles = [c.q25, c.q50, c.q75].every((q) => q === null) ? "" : `q ${[c.q25, c.q50, c.q75].map(num).join(" · ")}`;
    const dist = c.histogram ? histogram(c.histogram)
      : c.top_values ? `<div class="top">${c.top_values.slice(0, 3).map((t) => `${esc(t.value)} <b>${t.count}</b>`).join("<br>")}</div>` : "";
    const mean = c.mean === null ? "" : `mean ${esc(num(c.mean))}${c.std === null ? "" : ` ± ${esc(num(c.std))}`}`;
    return `<tr><td><b>${esc(c.name)}</b><div class="meta">${esc(c.type)}</div></td>
    <td><div>nulls ${fmtNum(c.null_count)} <span class="meta">(${c.null_pct.toFixed(1)}%)</span> · distinct≈ ${fmtNum(c.approx_distinct)}</div>
      <div class="meta">min ${esc(num(c.min))} · max ${esc(num(c.max))}</div>
      <div class="meta">${mean}${mean && quartiles ? " · " : ""}${esc(quartiles)}</div></td>
    <td>${dist}</td></tr>`;
  }).join("");
  return `<div class="scroll"><table class="stats"><thead><tr><th>column</th><th>summary</th><th>distribution</th></tr></thead><tbody>${rows}</tbody></table></div>`;
}

async function openNode(id) {
  state.selected = id;
  if (location.hash !== `#node=${encodeURIComponent(id)}`) history.replaceState(null, "", `${location.pathname}${location.search}#node=${encodeURIComponent(id)}`);
  document.querySelectorAll("#graph .node").forEach((g) => g.classList.toggle("selected", g.dataset.id === id));
  const panel = $("#panel");
  panel.hidden = false;
  panel.innerHTML = `<p class="meta">loading ${esc(id)}…</p>`;
  try {
    const d = await api(`/api/nodes/${encodeURIComponent(id)}`);
    const graphNode = state.graph?.nodes.find((n) => n.id === id);
    const links = (ids) => ids.map((u) => `<a data-node="${esc(u)}">${esc(u)}</a>`).join(", ") || "—";
    panel.innerHTML = `<button class="close" title="close">×</button>
      <h2 id="node-title">${esc(d.id)}</h2>
      <div class="meta">${esc(d.kind)} · <span class="badge ${esc(graphNode?.status)}">${esc(graphNode?.status ?? "")}</span>
        · ${esc(d.file)}:${d.line}${d.rows !== null ? ` · ${fmtNum(d.rows)} rows` : ""}${d.partitions.length ? ` · ${d.partitions.length} partitions` : ""}</div>
      ${d.description ? `<p>${esc(d.description)}</p>` : ""}
      ${d.error ? `<p class="error-text">${esc(d.error)}</p>` : ""}
      <div class="meta">upstream: ${links(d.upstream)}<br>downstream: ${links(d.downstream)}</div>
      <h3>Schema</h3>${d.schema.length ? table(["column", "type"], d.schema.map((c) => [c.name, c.type])) : "<p class=meta>no output yet</p>"}
      <h3>Statistics</h3>${statsTable(d.columns)}
      <h3>Run history</h3>${sparkline(d.history)}
      ${d.partitions.length ? `<h3>Partitions</h3><p class="meta">${d.partitions.map(esc).join(", ")}</p>` : ""}
      <h3>Code</h3><pre class="code">${highlight(d.code)}</pre>
      <h3>Preview</h3><div id="preview" class="scroll"><p class="meta">loading…</p></div>`;
    panel.querySelector(".close").addEventListener("click", closeNode);
    panel.querySelectorAll("a[data-node]").forEach((a) => a.addEventListener("click", () => openNode(a.dataset.node)));
    if (d.schema.length) {
      const p = await api(`/api/nodes/${encodeURIComponent(id)}/preview?limit=50`);
      $("#preview").innerHTML = table(p.columns, p.rows, (i, v) => typeof v === "number");
    } else $("#preview").innerHTML = "<p class=meta>no output yet</p>";
  } catch (err) {
    panel.innerHTML = `<button class="close">×</button><p class="error-text">${esc(err.message)}</p>`;
    panel.querySelector(".close").addEventListener("click", closeNode);
  }
}

function closeNode() {
  state.selected = null;
  $("#panel").hidden = true;
  history.replaceState(null, "", location.pathname + location.search);
  document.querySelectorAll("#graph .node.selected").forEach((g) => g.classList.remove("selected"));
}

// ---------------------------------------------------------------- entities
function renderEntities() {
  const q = $("#search").value.trim().toLowerCase();
  const match = (...texts) => !q || texts.some((t) => String(t ?? "").toLowerCase().includes(q));
  const cards = state.entities.entities.map((e) => {
    const groups = e.groups.map((g) => {
      const feats = g.features.filter((f) => match(e.name, g.name, f.name, f.dtype, f.description));
      if (!feats.length) return "";
      return `<div class="group"><h4>${esc(g.name)} <span class="meta">${fmtNum(g.rows)} rows · event time ${esc(g.event_time_col)}${g.ttl ? ` · ttl ${esc(g.ttl)}` : ""} · updated ${esc(shortTime(g.last_updated))}</span></h4>
        ${table(["feature", "dtype", "description"], feats.map((f) => [f.name, f.dtype, f.description]))}</div>`;
    }).join("");
    if (!groups) return "";
    return `<div class="card entity" data-entity="${esc(e.name)}"><h2>${esc(e.name)} <span class="badge ${esc(e.status)}">${esc(e.status)}</span></h2>
      <div class="meta">join keys: <b>${e.join_keys.map(esc).join(", ")}</b> · ${fmtNum(e.rows)} rows · consolidated ${esc(shortTime(e.consolidated_at))}</div>${groups}</div>`;
  }).join("");
  $("#entities").innerHTML = cards || `<p class="meta">${state.entities.entities.length ? "nothing matches the search" : "no consolidated entities yet: run <code>seeknal run</code>"}</p>`;
}

// ---------------------------------------------------------------- runs
function renderRuns() {
  const runs = state.runs.runs;
  $("#runs").innerHTML = runs.length ? runs.map((r, i) => {
    const counts = ["ran", "skipped", "failed", "cancelled"].map((s) => [s, r.nodes.filter((n) => n.status === s).length]).filter(([, c]) => c);
    return `<details class="run"${i === 0 ? " open" : ""}><summary><b>${esc(r.run_id)}</b> <span class="badge ${esc(r.status)}">${esc(r.status)}</span>
      <span class="meta">${esc(shortTime(r.started_at))} · ${fmtSecs(r.elapsed_s)} · ${esc(r.engine ?? "")} · ${counts.map(([s, c]) => `${c} ${s}`).join(", ")}</span></summary>
      ${r.error ? `<p class="error-text">${esc(r.error)}</p>` : ""}
      ${table(["node", "status", "reason", "rows", "duration", "error"], r.nodes.map((n) => [n.id, n.status, n.reason ?? "", n.rows_out ?? "", fmtSecs(n.duration_s), n.error ?? ""]))}</details>`;
  }).join("") : `<p class="meta">no runs recorded yet: run <code>seeknal run</code></p>`;
  $("#last-run").textContent = runs.length ? `last run ${runs[0].run_id} · ${runs[0].status}` : "no runs yet";
}

// ---------------------------------------------------------------- loading, views, polling
async function loadAll() {
  try {
    const [graph, entities, runs] = await Promise.all([api("/api/graph"), api("/api/entities"), api("/api/runs")]);
    Object.assign(state, { graph, entities, runs, newestRun: runs.runs[0]?.run_id ?? null });
    renderGraph(); renderEntities(); renderRuns();
    showError(graph.plan_error ? `the plan failed, so changed nodes are not marked stale: ${graph.plan_error}` : null);
    const m = location.hash.match(/^#node=(.+)$/);
    const target = state.selected ?? (m ? decodeURIComponent(m[1]) : null);
    if (target) await openNode(target);
  } catch (err) { showError(err); }
}

function showView(name) {
  if (location.hash.startsWith("#view=") || name !== "graph") history.replaceState(null, "", `${location.pathname}${location.search}${name === "graph" ? "" : `#view=${name}`}`);
  document.querySelectorAll("nav button").forEach((b) => b.classList.toggle("active", b.dataset.view === name));
  document.querySelectorAll(".view").forEach((v) => { v.hidden = v.id !== `view-${name}`; });
}

async function poll() {
  try {
    const runs = await api("/api/runs");
    const newest = runs.runs[0]?.run_id ?? null;
    if (state.newestRun !== undefined && newest !== state.newestRun) await loadAll();
  } catch (err) { showError(err); }
}

document.querySelectorAll("nav button").forEach((b) => b.addEventListener("click", () => showView(b.dataset.view)));
$("#search").addEventListener("input", renderEntities);
const startView = location.hash.match(/^#view=(graph|entities|runs)$/);
if (startView) showView(startView[1]);
await loadAll();
setInterval(poll, 2000);
