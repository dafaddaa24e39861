/* The analytics dashboard's charts (Chart.js, vendored). The data and its translated labels
 * come from the page's <script type="application/json" id="analytics-data"> block; there is no
 * inline script (the site's Content-Security-Policy allows scripts from 'self' only). Colours
 * are the Okabe-Ito palette (safe for colour-blind readers), each series also has its own
 * pattern, dash or point shape, and every chart has its numbers in a table on the page.
 */
(function () {
  "use strict";
  var source = document.getElementById("analytics-data");
  if (!source || !window.Chart) return;
  var data = JSON.parse(source.textContent);
  var rtl = document.documentElement.dir === "rtl";
  var lang = data.language || document.documentElement.lang || "en";

  // Okabe & Ito (2008), "Color Universal Design".
  var PALETTE = {
    confirmed: "#009E73", assumed: "#E69F00", agent_resolved: "#0072B2",
    handed_off: "#56B4E9", unresolved: "#D55E00", open: "#999999",
    conversations: "#0072B2", messages: "#CC79A7", visitors: "#009E73"
  };
  var SHAPES = { conversations: "circle", messages: "rectRot", visitors: "triangle", confirmed: "circle", assumed: "rect" };
  var DASHES = { conversations: [], messages: [6, 4], visitors: [2, 3], confirmed: [], assumed: [8, 4] };
  var PATTERNS = { confirmed: "none", assumed: "diagonal", agent_resolved: "dots", handed_off: "cross", unresolved: "zigzag", open: "horizontal" };

  function pattern(colour, kind) {
    if (kind === "none") return colour;
    var size = 10, c = document.createElement("canvas");
    c.width = c.height = size;
    var g = c.getContext("2d");
    g.fillStyle = colour;
    g.fillRect(0, 0, size, size);
    g.strokeStyle = "rgba(0,0,0,0.55)";
    g.fillStyle = "rgba(0,0,0,0.55)";
    g.lineWidth = 1.5;
    g.beginPath();
    if (kind === "diagonal") { g.moveTo(0, size); g.lineTo(size, 0); g.moveTo(-2, 2); g.lineTo(2, -2); g.moveTo(size - 2, size + 2); g.lineTo(size + 2, size - 2); }
    else if (kind === "cross") { g.moveTo(0, 0); g.lineTo(size, size); g.moveTo(0, size); g.lineTo(size, 0); }
    else if (kind === "horizontal") { g.moveTo(0, size / 2); g.lineTo(size, size / 2); }
    else if (kind === "zigzag") { g.moveTo(0, size * 0.7); g.lineTo(size / 2, size * 0.3); g.lineTo(size, size * 0.7); }
    g.stroke();
    if (kind === "dots") { g.beginPath(); g.arc(size / 2, size / 2, 1.8, 0, 2 * Math.PI); g.fill(); }
    return g.createPattern(c, "repeat");
  }

  var dateFormat = new Intl.DateTimeFormat(lang, { month: "short", day: "numeric", timeZone: "UTC" });
  var labels = (data.labels || []).map(function (iso) { return dateFormat.format(new Date(iso + "T00:00:00Z")); });
  var percent = new Intl.NumberFormat(lang, { style: "percent", maximumFractionDigits: 1 });

  var styles = getComputedStyle(document.body);
  Chart.defaults.color = styles.getPropertyValue("--body-fg").trim() || "#333";
  Chart.defaults.borderColor = styles.getPropertyValue("--hairline-color").trim() || "rgba(0,0,0,0.1)";
  Chart.defaults.font.family = styles.fontFamily;

  function base(extra) {
    var options = {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      locale: lang,
      interaction: { mode: "index", intersect: false },
      plugins: {
        legend: { position: "bottom", rtl: rtl, textDirection: rtl ? "rtl" : "ltr", labels: { usePointStyle: true } },
        tooltip: { rtl: rtl, textDirection: rtl ? "rtl" : "ltr" }
      },
      scales: {
        // Time runs from the right in a right-to-left page; the values' axis is on its start side.
        x: { reverse: rtl, stacked: !!extra.stacked },
        y: { position: rtl ? "right" : "left", beginAtZero: true, stacked: !!extra.stacked }
      }
    };
    if (extra.percent) {
      options.scales.y.max = 1;
      options.scales.y.ticks = { callback: function (v) { return percent.format(v); } };
      options.scales.y.title = { display: true, text: (data.strings || {}).share || "" };
      options.plugins.tooltip.callbacks = {
        label: function (ctx) { return ctx.dataset.label + ": " + (ctx.parsed.y === null ? "—" : percent.format(ctx.parsed.y)); }
      };
    }
    return options;
  }

  function line(series) {
    return series.map(function (s) {
      return {
        label: s.label, data: s.data, borderColor: PALETTE[s.key], backgroundColor: PALETTE[s.key],
        borderDash: DASHES[s.key] || [], pointStyle: SHAPES[s.key] || "circle", pointRadius: 3,
        borderWidth: 2, tension: 0.2, spanGaps: true
      };
    });
  }

  var built = {};
  var makers = {
    volume: function () {
      // Messages run about six times the conversations: they get an axis of their own, on the
      // other side, so the conversations and visitors are not flattened at the bottom.
      var datasets = line(data.volume);
      datasets.forEach(function (d, i) { if (data.volume[i].key === "messages") d.yAxisID = "y2"; });
      var options = base({});
      var strings = data.strings || {};
      options.scales.y.title = { display: true, text: strings.people || "" };
      options.scales.y2 = {
        position: rtl ? "left" : "right", beginAtZero: true, grid: { drawOnChartArea: false },
        title: { display: true, text: strings.messages || "" }
      };
      return { type: "line", data: { labels: labels, datasets: datasets }, options: options };
    },
    outcomes: function () {
      return {
        type: "bar",
        data: {
          labels: labels,
          datasets: data.outcomes.map(function (s) {
            return { label: s.label, data: s.data, backgroundColor: pattern(PALETTE[s.key], PATTERNS[s.key] || "none"), borderColor: PALETTE[s.key], borderWidth: 1 };
          })
        },
        options: (function () {
          var o = base({ stacked: true });
          o.plugins.legend.labels.usePointStyle = false;  // the legend shows each pattern
          o.scales.y.title = { display: true, text: (data.strings || {}).conversations || "" };
          return o;
        })()
      };
    },
    containment: function () { return { type: "line", data: { labels: labels, datasets: line(data.containment) }, options: base({ percent: true }) }; }
  };

  Array.prototype.forEach.call(document.querySelectorAll("canvas[data-chart]"), function (canvas) {
    var name = canvas.dataset.chart;
    if (!makers[name]) return;
    built[name] = new Chart(canvas, makers[name]());
  });
  window.AutoGLMAnalytics = { charts: built, rtl: rtl };
})();
