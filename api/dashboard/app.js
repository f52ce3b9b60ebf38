/* Millrace dashboard: plain JS over the API's JSON routes (no build step).
   The credential is typed once, kept in sessionStorage (this tab only) and sent as the header
   the routes expect; it never goes into a URL and is never logged. */
"use strict";

const STORE_KEY = "millrace.credential";
const POLL_MS = 3000;
/* a consumer with records left whose positions did not move for this long is shown as stalled */
const STALL_SECONDS = 30;
let pollTimer = null;
let renderId = 0;

/* ---------- small DOM helpers (text only: data never goes through innerHTML) ---------- */
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}
const $ = (id) => document.getElementById(id);
function card(title, ...body) { return el("div", { class: "card" }, el("h3", {}, title), ...body); }
function wide(title, ...body) {
  return el("div", { class: "card wide" }, el("h3", {}, title), ...body);
}
function table(headers, rows, numeric = []) {
  if (!rows.length) return el("p", { class: "muted small" }, "None.");
  return el("table", {},
    el("thead", {}, el("tr", {}, headers.map((h, i) =>
      el("th", { class: numeric.includes(i) ? "num" : null }, h)))),
    el("tbody", {}, rows.map((r) => el("tr", {}, r.map((c, i) =>
      el("td", { class: numeric.includes(i) ? "num" : null }, c))))));
}
function pill(text, kind) { return el("span", { class: `pill ${kind || ""}` }, text); }
function fmt(v, digits = 3) {
  if (v === null || v === undefined) return "–";
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : v.toPrecision(digits);
  return String(v);
}
function when(iso) { return iso ? iso.replace("T", " ").replace(/\.\d+/, "").replace("Z", " UTC") : "–"; }
function ago(iso) {
  if (!iso) return "never";
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (s < 90) return `${Math.round(s)} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  if (s < 172800) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} days ago`;
}
const secs = (iso) => Date.parse(iso) / 1000;
/* a version's domain metric: mae for demand, rmse for the others */
function metricOf(v) { return v.domain === "demand" ? "mae" : "rmse"; }
function scoreOf(v) { const m = metricOf(v); return `${m} ${fmt(v.metrics && v.metrics[m])}`; }
function chartBox() { return el("div", { class: "chart" }); }

/* ---------- credential and requests ---------- */
function credential() {
  try { return JSON.parse(sessionStorage.getItem(STORE_KEY) || "null"); } catch { return null; }
}
function headersFor(cred) {
  if (!cred) return {};
  return cred.kind === "token" ? { Authorization: `Bearer ${cred.value}` }
                               : { "X-Internal-Service-Key": cred.value };
}

class ApiError extends Error {
  constructor(status, detail) { super(detail); this.status = status; }
}

async function api(path, options = {}) {
  const init = { method: options.method || "GET",
                 headers: { Accept: "application/json", ...headersFor(options.cred || credential()) } };
  if (options.body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(options.body);
  }
  const response = await fetch(path, init);
  let body = null;
  try { body = await response.json(); } catch { body = null; }
  if (!response.ok) {
    const detail = body && typeof body.detail === "string" ? body.detail
      : `${response.status} ${response.statusText}`;
    throw new ApiError(response.status, detail);
  }
  return body;
}

function explain(err) {
  if (err.status === 401) return "The key or token was refused (401: " + err.message + "). Enter a valid one.";
  if (err.status === 403) return "Signed in, but not allowed: " + err.message + ".";
  if (err.status === 429) return "Too many failed sign-ins from this address: " + err.message + ".";
  return err.message || String(err);
}

function showBanner(message) {
  const b = $("banner");
  b.textContent = message || "";
  b.hidden = !message;
}

/* ---------- sign in / out ---------- */
function showLogin(message) {
  stopPolling();
  sessionStorage.removeItem(STORE_KEY);
  $("nav").hidden = true; $("logout").hidden = true; $("who").textContent = "";
  $("page").replaceChildren();
  showBanner("");
  $("login").hidden = false;
  const e = $("login-error");
  e.textContent = message || ""; e.hidden = !message;
  $("login-value").value = "";
  $("login-value").focus();
}

async function signIn(event) {
  event.preventDefault();
  const cred = { kind: $("login-kind").value, value: $("login-value").value.trim() };
  $("login-error").hidden = true;
  try {
    await api("/v1/ml/observations/stats", { cred });
  } catch (err) {
    $("login-error").textContent = explain(err);
    $("login-error").hidden = false;
    $("login-value").value = "";
    return;
  }
  sessionStorage.setItem(STORE_KEY, JSON.stringify(cred));
  $("login").hidden = true;
  route();
}

/* ---------- pages ---------- */
const PAGES = { overview, demand, versions, drift, network };

function stopPolling() { if (pollTimer) { clearTimeout(pollTimer); pollTimer = null; } }

/* Show the page of the address; ``refresh``: the same page again (its content stays until the
   new one is ready, so a refresh never blanks it). */
async function route(refresh = false) {
  stopPolling();
  const cred = credential();
  if (!cred) return showLogin("");
  $("login").hidden = true; $("nav").hidden = false; $("logout").hidden = false;
  $("who").textContent = cred.kind === "token" ? "signed in with a token" : "signed in with the service key";
  const name = (location.hash || "#overview").slice(1).split("/")[0];
  const page = PAGES[name] ? name : "overview";
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.page === page);
  const id = ++renderId;
  const root = $("page");
  if (!refresh || root.dataset.page !== page) {
    root.replaceChildren(el("p", { class: "muted" }, "Loading…"));
    root.dataset.page = page;
    root.dataset.ready = "false";
  }
  showBanner("");
  try {
    await PAGES[page](root, () => id === renderId);
    if (id === renderId) root.dataset.ready = "true";
  } catch (err) {
    if (id !== renderId) return;
    if (err.status === 401) return showLogin(explain(err));
    showBanner(explain(err));
    root.dataset.ready = "error";
  }
}

/* Overview: processes, events/s per topic, lag per partition, dead letters, live versions. */
const rates = { samples: [] };

async function overview(root, current) {
  const [health, streams, jobs, active, dead, stats] = await Promise.all([
    fetch("/health").then((r) => r.json()),
    api("/v1/ml/dashboard/streams"),
    api("/v1/ml/training/jobs?limit=50"),
    api("/v1/ml/models?status=active&limit=100"),
    api("/v1/ml/dead-letters?limit=10"),
    api("/v1/ml/observations/stats"),
  ]);
  if (!current()) return;
  const rateBox = chartBox(), lagBox = chartBox(), deadBox = chartBox();
  const procRows = [];
  const status = health.status === "ok" ? "ok" : health.status === "degraded" ? "warn" : "bad";
  procRows.push(["api", pill(health.status, status),
    Object.entries(health.checks).map(([k, v]) => `${k}: ${v}`).join(" · ")]);
  const consumers = {};
  for (const p of streams.partitions) {
    const c = (consumers[p.consumer] ||= { partitions: 0, last: null, lag: 0, lagKnown: true });
    c.partitions += 1;
    if (!c.last || p.updated_at > c.last) c.last = p.updated_at;
    if (p.lag === null) c.lagKnown = false; else c.lag += p.lag;
  }
  for (const [name, c] of Object.entries(consumers)) {
    const faults = streams.faults.filter((f) => f.consumer === name);
    // judged from its stored positions (the worker's own /readyz is not read here)
    const idle = (Date.now() - Date.parse(c.last)) / 1000;
    const state = faults.length ? pill(`${faults.length} partition(s) refused`, "bad")
      : c.lagKnown && c.lag === 0 ? pill("caught up", "ok")
      : idle > STALL_SECONDS ? pill("behind, not moving", "warn")
      : pill("consuming", "ok");
    procRows.push([`streams (${name})`, state,
      `${c.partitions} partitions · last commit ${ago(c.last)} · lag ${c.lagKnown ? c.lag : "unknown"}`]);
  }
  if (!Object.keys(consumers).length) procRows.push(["streams", pill("no positions", "warn"), "no stream worker has stored a batch yet"]);
  const open = jobs.items.filter((j) => j.status === "queued" || j.status === "running");
  const lastDone = jobs.items.find((j) => j.finished_at);
  procRows.push(["trainer", pill(open.length ? `${open.length} open job(s)` : "idle", open.length ? "warn" : "ok"),
    lastDone ? `last job ${lastDone.status} ${ago(lastDone.finished_at)} (${lastDone.domain}/${lastDone.scope})` : "no job finished yet"]);

  // events/s per topic: the stored positions' movement between two polls (consumed) and
  // the broker's end offsets' (produced)
  const now = Date.now() / 1000;
  const totals = {};
  for (const p of streams.partitions) {
    const t = (totals[p.topic] ||= { consumed: 0, end: 0, lag: 0, endKnown: true });
    t.consumed += p.offset + 1;
    if (p.end_offset === null) t.endKnown = false; else { t.end += p.end_offset; t.lag += p.lag; }
  }
  rates.samples.push({ t: now, totals });
  if (rates.samples.length > 200) rates.samples.shift();
  const topics = Object.keys(totals).sort();
  const xs = [], lines = topics.map((topic) => ({ label: `${topic} consumed/s`, values: [] }));
  for (let i = 1; i < rates.samples.length; i++) {
    const a = rates.samples[i - 1], b = rates.samples[i], dt = b.t - a.t;
    xs.push(b.t);
    topics.forEach((topic, k) => {
      const before = a.totals[topic], after = b.totals[topic];
      lines[k].values.push(before && after && dt > 0 ? Math.max(0, (after.consumed - before.consumed) / dt) : null);
    });
  }
  const topicRows = topics.map((topic) => {
    const t = totals[topic];
    const last = lines[topics.indexOf(topic)].values.at(-1);
    return [topic, t.consumed, t.endKnown ? t.end : "–", t.endKnown ? t.lag : "–",
            last === undefined ? "measuring…" : fmt(last)];
  });

  const domains = {};
  for (const v of active.items) (domains[v.domain] ||= []).push(v);
  const liveRows = active.items.map((v) => [v.domain, v.scope, v.version, v.algorithm,
    scoreOf(v), when(v.trained_at)]);

  root.replaceChildren(
    el("h2", {}, "Overview"),
    el("div", { class: "grid" },
      wide("Processes", table(["process", "state", "detail"], procRows),
        el("p", { class: "muted small" }, `broker end offsets: ${streams.broker}`)),
      card("Events/s per topic (stored by the stream workers, measured between refreshes)", rateBox,
        table(["topic", "stored", "on broker", "lag", "events/s"], topicRows, [1, 2, 3, 4])),
      card("Consumer lag per partition", lagBox),
      card(`Dead letters by type (${dead.total} stored)`, deadBox,
        table(["refused", "type", "topic/partition@offset", "reason"],
          dead.items.map((d) => [ago(d.occurred_at), d.error_type, `${d.topic}/${d.partition}@${d.offset}`, d.reason]))),
      wide("Live version per domain", table(["domain", "scope", "version", "algorithm", "test score", "trained"], liveRows)),
      card("Stored observations", table(["domain", "events", "series", "latest period"],
        stats.map((s) => [s.domain, s.events, s.series, when(s.latest_period)]), [1, 2])),
    ),
  );
  if (xs.length) {
    // the last five minutes of this tab's refreshes
    Charts.timeSeries(rateBox, xs, lines, { height: 200, yLabel: "events/s", decimals: 1,
                                            xRange: [now - 300, now + 5] });
  } else {
    rateBox.append(el("p", { class: "muted small" }, "Measuring: the rate appears after the next refresh."));
  }
  Charts.bars(lagBox, streams.partitions.map((p) => ({
    label: `${p.topic} [${p.partition}]`, value: p.lag ?? 0,
    color: p.lag ? "#c98a00" : "#1f9d55" })), { title: "lag per partition", emptyText: "No stored positions yet." });
  Charts.bars(deadBox, Object.entries(dead.by_error_type).sort((a, b) => b[1] - a[1])
    .map(([label, value]) => ({ label, value, color: "#d64545" })), { title: "dead letters by type", emptyText: "No dead letters." });
  pollTimer = setTimeout(() => { if (current()) route(true); }, POLL_MS);
}

/* Demand: one segment's monthly history, the live version's forecast and band, the online
   forecast, the fallback level. */
async function demand(root, current) {
  const segments = await api("/v1/ml/segments?limit=1000");
  if (!current()) return;
  const chosen = decodeURIComponent((location.hash.split("/")[1] || ""));
  const input = el("input", { id: "segment-search", list: "segment-list", type: "search",
                              placeholder: "search a segment: type, brand, model, line", value: chosen });
  const list = el("datalist", { id: "segment-list" }, segments.items.map((s) => el("option", { value: s.segment })));
  const go = () => { const v = input.value.trim(); if (v) location.hash = `demand/${encodeURIComponent(v)}`; };
  input.addEventListener("change", go);
  const body = el("div", { class: "grid" });
  root.replaceChildren(el("h2", {}, "Demand"),
    el("div", { class: "toolbar" }, input, list, el("button", { type: "button", onclick: go }, "Show"),
       el("span", { class: "muted small" }, `${segments.total} segments stored`)),
    body);
  const segment = segments.items.find((s) => s.segment === chosen) || (chosen ? null : segments.items[0]);
  if (!segment) {
    body.append(wide("Segment", el("p", {}, chosen ? `No stored segment "${chosen}".` : "No segment stored yet.")));
    return;
  }
  input.value = segment.segment;
  const [vehicle_type, brand, model, line] = segment.segment.split("|");
  const [forecast, online] = await Promise.all([
    api("/v1/ml/predict-with-history", { method: "POST",
      body: { vehicle_type, brand, model, line, horizon_months: 6, confidence: 0.95 } })
      .catch((err) => { if (err.status === 404 || err.status === 403) return { error: err.message }; throw err; }),
    api(`/v1/ml/dashboard/forecasts?domain=demand&series=${encodeURIComponent(segment.segment)}`),
  ]);
  if (!current()) return;
  const box = chartBox();
  const months = new Set();
  const hist = {}, pred = {}, lo = {}, hi = {}, onl = {};
  for (const h of forecast.history || []) { months.add(h.month); hist[h.month] = h.sales_count; }
  for (const p of forecast.predictions || []) {
    months.add(p.month); pred[p.month] = p.demand; lo[p.month] = p.lower_ci; hi[p.month] = p.upper_ci;
  }
  for (const o of online) { const m = o.month.slice(0, 10); months.add(m); onl[m] = o.value; }
  const xsM = [...months].sort();
  const pick = (obj) => xsM.map((m) => (m in obj ? obj[m] : null));
  const lastHist = forecast.history && forecast.history.at(-1);
  if (lastHist && forecast.predictions) {  // join the forecast to the last month of history
    pred[lastHist.month] = lo[lastHist.month] = hi[lastHist.month] = lastHist.sales_count;
  }
  body.append(
    wide(`${segment.segment}: monthly sales and forecasts`, box,
      el("p", { class: "legend" }, forecast.error
        ? `Live version's forecast unavailable: ${forecast.error}`
        : `live version ${forecast.model_version} · fallback level: ${forecast.fallback_level ?? "none (own history)"} · band: 95 % interval`)),
    card("Segment", table(["", ""], [
      ["first month", when(segment.first_month)], ["last observation", when(segment.last_observation)],
      ["months", segment.months], ["events", segment.events], ["online MAE", fmt(segment.online_mae)],
      ["in the live version", segment.in_model ? "yes" : "no"],
      ["fallback level", forecast.fallback_level ?? (forecast.error ? "–" : "none")]])),
    card("Online forecast (stream)", table(["month", "forecast", "model", "fallback"],
      online.map((o) => [o.month.slice(0, 7), fmt(o.value), o.model_version, o.fallback_level ?? "none"]), [1])),
  );
  Charts.timeSeries(box, xsM.map(secs), [
    { label: "sales", values: pick(hist), color: "#1d2430" },
    { label: "live forecast", values: pick(pred), color: "#2f6fdf", dash: [6, 4] },
    { label: "upper 95 %", values: pick(hi), color: "rgba(47,111,223,0.35)", width: 1, points: false },
    { label: "lower 95 %", values: pick(lo), color: "rgba(47,111,223,0.35)", width: 1, points: false },
    { label: "online forecast", values: pick(onl), color: "#d64545" },
  ], { band: [2, 3], height: 300, yLabel: "sales / month", decimals: 1 });
}

/* Versions: activations over time, candidates and scores, who activated what. */
async function versions(root, current) {
  const page = await api("/v1/ml/models?limit=100");
  if (!current()) return;
  const scopes = [...new Set(page.items.map((v) => `${v.domain}|${v.scope}`))].sort();
  const histories = await Promise.all(scopes.map((s) => {
    const [domain, scope] = [s.slice(0, s.indexOf("|")), s.slice(s.indexOf("|") + 1)];
    return api(`/v1/ml/activations?domain=${encodeURIComponent(domain)}&scope=${encodeURIComponent(scope)}`);
  }));
  if (!current()) return;
  const timelineBox = chartBox();
  const acts = histories.flatMap((h) => h.items.map((a) => ({ ...a, domain: h.domain, scope: h.scope })))
    .sort((a, b) => b.activated_at.localeCompare(a.activated_at));
  const candidateRows = page.items.map((v) => {
    const metric = metricOf(v);
    const cands = Object.entries(v.candidates || {}).map(([name, s]) => `${name} ${fmt(s[metric])}`).join(" · ");
    return [`${v.domain}/${v.scope}`, v.version, pill(v.status, v.status === "active" ? "ok" : v.status === "rejected" ? "bad" : ""),
            v.algorithm, scoreOf(v), cands, when(v.trained_at)];
  });
  root.replaceChildren(el("h2", {}, "Versions"),
    el("div", { class: "grid" },
      wide("Activations over time (one row per domain/scope; hover a dot)", timelineBox,
        el("p", { class: "legend" }, "blue: the trainer's promotion · amber: an activation or roll-back by a person or command")),
      wide("Who activated what", table(["when", "domain/scope", "version", "previous", "actor", "reason"],
        acts.map((a) => [when(a.activated_at), `${a.domain}/${a.scope}`, a.version, a.previous_version ?? "–", a.actor, a.reason]))),
      wide(`Versions and their candidates (${page.total ?? page.items.length})`,
        table(["domain/scope", "version", "status", "algorithm", "score", "candidates (same metric)", "trained"], candidateRows)),
    ));
  Charts.timeline(timelineBox, histories.map((h) => ({
    label: `${h.domain}/${h.scope}`,
    points: h.items.map((a) => ({ at: new Date(a.activated_at),
      title: `${when(a.activated_at)}: ${a.version} by ${a.actor} (${a.reason})`,
      color: a.actor === "trainer" ? "#2f6fdf" : "#c98a00" })),
  })), { title: "activations", emptyText: "No activation yet." });
}

/* Drift: detections over time per scope, current statistics, linked retrain jobs. */
async function drift(root, current) {
  const [dem, net, jobs] = await Promise.all([
    api("/v1/ml/drift?domain=demand&limit=200"),
    api("/v1/ml/drift?domain=network&limit=200"),
    api("/v1/ml/training/jobs?limit=100"),
  ]);
  if (!current()) return;
  const events = [...dem.events.map((e) => ({ ...e, domain: "demand" })), ...net.events.map((e) => ({ ...e, domain: "network" }))];
  const byScope = {};
  for (const e of events) (byScope[`${e.domain}/${e.scope}`] ||= []).push(e);
  const timelineBox = chartBox();
  const statRows = [];
  for (const [domain, report] of [["demand", dem], ["network", net]]) {
    for (const [scope, stats] of Object.entries(report.statistics)) {
      statRows.push([domain, scope, el("pre", {}, JSON.stringify(stats))]);
    }
  }
  const triggered = jobs.items.filter((j) => j.trigger !== "manual");
  const jobRows = triggered.map((j) => {
    const before = events.filter((e) => e.domain === j.domain && e.occurred_at <= j.created_at
      && Date.parse(j.created_at) - Date.parse(e.occurred_at) < 86400e3);
    return [when(j.created_at), `${j.domain}/${j.scope}`, j.trigger, pill(j.status, j.status === "failed" ? "bad" : j.status === "completed" ? "ok" : "warn"),
            j.request_ids.join(", ") || "–", before.map((e) => `${e.scope}: ${e.detector}`).join(" · ") || "–",
            j.outcome || j.error || j.reason || "–"];
  });
  root.replaceChildren(el("h2", {}, "Drift"),
    el("div", { class: "grid" },
      wide(`Detections over time per scope (${events.length})`, timelineBox),
      wide("Detections", table(["when", "domain/scope", "detector", "statistic", "value", "threshold", "version"],
        events.sort((a, b) => b.occurred_at.localeCompare(a.occurred_at))
          .map((e) => [when(e.occurred_at), `${e.domain}/${e.scope}`, e.detector, e.statistic, fmt(e.value), fmt(e.threshold), e.model_version ?? "–"]), [4, 5])),
      wide("Retrain requests and their jobs (not manual)", table(
        ["created", "domain/scope", "reason", "status", "requests", "detections in the 24 h before", "result"], jobRows)),
      wide(`Current statistics (demand: ${dem.partitions} partitions, network: ${net.partitions})`,
        table(["domain", "scope", "statistics"], statRows)),
    ));
  Charts.timeline(timelineBox, Object.entries(byScope).sort().map(([label, list]) => ({
    label, points: list.map((e) => ({ at: new Date(e.occurred_at),
      title: `${when(e.occurred_at)} ${e.detector}: ${e.statistic} ${fmt(e.value)} (threshold ${fmt(e.threshold)})` })),
  })), { title: "drift detections", emptyText: "No drift detected yet." });
}

/* Network: per field the state machine, best model, baseline and threshold, score history,
   per-cell drift. */
async function network(root, current) {
  const listed = await api("/v1/ml/fields?include_model_status=true");
  if (!current()) return;
  // every measurement field is listed; only those a model forecasts have a state machine
  const fields = listed.filter((f) => f.has_models !== false);
  const unmodelled = listed.filter((f) => f.has_models === false).map((f) => f.field);
  const details = await Promise.all(fields.map((f) => Promise.all([
    api(`/v1/ml/performance/${encodeURIComponent(f.field)}/status`),
    api(`/v1/ml/performance/${encodeURIComponent(f.field)}/history?include_online=true`),
    api(`/v1/ml/drift?domain=network&field=${encodeURIComponent(f.field)}&limit=200`),
  ])));
  if (!current()) return;
  const cards = [], draws = [];
  fields.forEach((f, i) => {
    const [status, history, fdrift] = details[i];
    const threshold = status.baseline != null ? status.baseline * status.factor : null;
    const states = ["MONITORING", "RETRAINING", "EVALUATING"];
    const machine = el("div", { class: "states" }, states.flatMap((s, k) => [
      pill(s, s === status.state ? "now" : ""), k < states.length - 1 ? el("span", { class: "muted" }, "→") : null]));
    const box = chartBox();
    const cells = {};
    for (const e of fdrift.events) {
      const cell = e.scope.split("|")[0];
      const c = (cells[cell] ||= { n: 0, last: null, detectors: new Set() });
      c.n += 1; c.detectors.add(e.detector);
      if (!c.last || e.occurred_at > c.last) c.last = e.occurred_at;
    }
    const modelRows = (f.model_status || []).map((m) => [m.model_id, m.architecture,
      m.model_id === f.best_model_id ? pill("best", "ok") : "", m.live_version ?? (m.online ? "online" : "–"),
      Object.entries(m.online_scores || {}).map(([k, v]) => `${k} ${fmt(v)}`).join(" ") || "–"]);
    cards.push(wide(`Field ${f.field}`, machine,
      table(["best model", "metric", "baseline", "threshold (× " + status.factor + ")", "next check", "reason"],
        [[f.best_model_id ?? "not elected", status.metric ?? "–", fmt(status.baseline), fmt(threshold),
          when(status.next_check_at), status.reason || "–"]]),
      el("div", { class: "grid" },
        card("Score history", box),
        card("Models", table(["model", "architecture", "", "live", "online scores"], modelRows)),
        card("Per-cell drift", table(["cell", "detections", "detectors", "last"],
          Object.entries(cells).sort().map(([cell, c]) => [cell, c.n, [...c.detectors].join(", "), when(c.last)]), [1])))));
    draws.push(() => {
      const models = [...new Set(history.map((h) => h.model_id))].sort();
      const times = [...new Set(history.map((h) => h.recorded_at))].sort();
      const colors = ["#2f6fdf", "#7a4fd0", "#0f8b8d", "#c98a00", "#e2725b"];
      // no line across another model's moments: each score is a point of its own model
      const lines = models.map((m, k) => ({ label: m, color: colors[k % colors.length],
        spanGaps: false, points: true, values: times.map((t) => {
        const h = history.find((r) => r.model_id === m && r.recorded_at === t);
        return h ? h.score : null; }) }));
      if (status.baseline != null) {
        lines.push({ label: "baseline", values: times.map(() => status.baseline), color: "#5b6b7f", width: 1, points: false });
        lines.push({ label: "threshold", values: times.map(() => threshold), color: "#d64545", width: 1, dash: [4, 4], points: false });
      }
      Charts.timeSeries(box, times.map(secs), lines, { height: 220, yLabel: status.metric || "score",
        emptyText: "No score recorded yet (no evaluation)." });
    });
  });
  if (unmodelled.length) {
    cards.push(wide("Fields no model forecasts", el("p", { class: "muted" }, unmodelled.join(", "))));
  }
  root.replaceChildren(el("h2", {}, "Network"), el("div", { class: "grid" }, cards.length ? cards : wide("Fields", el("p", {}, "No model config yet."))));
  draws.forEach((d) => d());
}

/* ---------- start ---------- */
$("login-form").addEventListener("submit", signIn);
$("logout").addEventListener("click", () => showLogin(""));
window.addEventListener("hashchange", () => route());
route();
