/* Millrace dashboard charts: time series on uPlot (vendored, canvas), bars and timelines as
   small server-free SVG. Every function takes the element to draw into and plain arrays. */
"use strict";

const Charts = (() => {
  const PALETTE = ["#2f6fdf", "#d64545", "#1f9d55", "#c98a00", "#7a4fd0", "#0f8b8d",
                   "#e2725b", "#5b6b7f"];
  const SVG = "http://www.w3.org/2000/svg";

  function width(el) {
    return Math.max(280, Math.floor(el.clientWidth || el.parentElement.clientWidth || 600));
  }

  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function empty(el, message) {
    el.replaceChildren();
    const p = document.createElement("p");
    p.className = "muted small";
    p.textContent = message;
    el.append(p);
  }

  /* Lines over time. x: seconds since the epoch; lines: [{label, values, color?, dash?,
     points?, spanGaps?}]; opts.band: [upperIndex, lowerIndex] into lines (filled between);
     opts.xRange: [from, to] seconds (else the data's). */
  function timeSeries(el, x, lines, opts = {}) {
    el.replaceChildren();
    if (!x.length) return empty(el, opts.emptyText || "No data yet.");
    const series = [{}];
    lines.forEach((line, i) => {
      const color = line.color || PALETTE[i % PALETTE.length];
      series.push({
        label: line.label,
        stroke: color,
        width: line.width || 2,
        dash: line.dash,
        spanGaps: line.spanGaps !== false,
        points: { show: line.points ?? x.length < 40, size: 7, fill: color },
        value: (u, v) => (v == null ? "–" : (+v).toFixed(opts.decimals ?? 2)),
      });
    });
    const config = {
      width: width(el),
      height: opts.height || 240,
      series,
      scales: { x: opts.xRange ? { time: opts.time !== false, range: () => opts.xRange }
                               : { time: opts.time !== false } },
      axes: [{}, { label: opts.yLabel || "", size: 60 }],
      legend: { show: true },
      cursor: { drag: { x: false, y: false } },
    };
    if (opts.band) {
      config.bands = [{ series: opts.band.map((i) => i + 1), fill: "rgba(47,111,223,0.14)" }];
    }
    return new uPlot(config, [x, ...lines.map((l) => l.values)], el);
  }

  /* Horizontal bars: items [{label, value, color?}]. */
  function bars(el, items, opts = {}) {
    el.replaceChildren();
    if (!items.length) return empty(el, opts.emptyText || "Nothing to show.");
    const w = width(el), row = 24, labelW = Math.min(220, Math.floor(w * 0.4));
    const h = items.length * row + 8;
    const max = Math.max(1, ...items.map((i) => i.value));
    const root = svg("svg", { width: w, height: h, role: "img",
                              "aria-label": opts.title || "bar chart" });
    items.forEach((item, i) => {
      const y = 4 + i * row;
      const len = Math.max(2, ((w - labelW - 70) * item.value) / max);
      root.append(svg("text", { x: labelW - 6, y: y + 15, "text-anchor": "end" }, item.label));
      const rect = svg("rect", { x: labelW, y: y + 3, width: len, height: row - 8, rx: 3,
                                 fill: item.color || PALETTE[i % PALETTE.length] });
      rect.append(svg("title", {}, `${item.label}: ${item.value}`));
      root.append(rect);
      root.append(svg("text", { x: labelW + len + 6, y: y + 15 }, String(item.value)));
    });
    el.append(root);
    return root;
  }

  /* One row per label, a dot per moment: rows [{label, points: [{at: Date, title, color?}]}]. */
  function timeline(el, rows, opts = {}) {
    el.replaceChildren();
    const all = rows.flatMap((r) => r.points.map((p) => p.at.getTime()));
    if (!all.length) return empty(el, opts.emptyText || "Nothing happened yet.");
    const w = width(el), row = 26, labelW = Math.min(240, Math.floor(w * 0.35)), right = 16;
    const h = rows.length * row + 34;
    let lo = Math.min(...all), hi = Math.max(...all);
    if (hi - lo < 60e3) { lo -= 30e3; hi += 30e3; }
    const pad = (hi - lo) * 0.04;
    lo -= pad; hi += pad;
    const xOf = (t) => labelW + ((w - labelW - right) * (t - lo)) / (hi - lo);
    const root = svg("svg", { width: w, height: h, role: "img",
                              "aria-label": opts.title || "timeline" });
    rows.forEach((r, i) => {
      const y = 8 + i * row + row / 2;
      root.append(svg("text", { x: labelW - 8, y: y + 4, "text-anchor": "end" }, r.label));
      root.append(svg("line", { x1: labelW, x2: w - right, y1: y, y2: y, stroke: "#e4e7ec" }));
      for (const p of r.points) {
        const dot = svg("circle", { cx: xOf(p.at.getTime()), cy: y, r: 5,
                                    fill: p.color || PALETTE[i % PALETTE.length],
                                    "fill-opacity": 0.85 });
        dot.append(svg("title", {}, p.title));
        root.append(dot);
      }
    });
    const axisY = 8 + rows.length * row + 16;
    const short = hi - lo < 3600e3;  // within an hour: the seconds tell the moments apart
    for (let k = 0; k <= 4; k++) {
      const t = lo + ((hi - lo) * k) / 4;
      const anchor = k === 0 ? "start" : k === 4 ? "end" : "middle";
      root.append(svg("text", { x: xOf(t), y: axisY, "text-anchor": anchor },
                      new Date(t).toISOString().slice(0, short ? 19 : 16).replace("T", " ")));
    }
    el.append(root);
    return root;
  }

  return { timeSeries, bars, timeline, PALETTE };
})();
