// Charts of the cluster page: uPlot over GET /api/v1/clusters/{name}/metrics.
(function () {
  "use strict";
  var section = document.querySelector("[data-charts]");
  if (!section || !window.uPlot) { return; }
  var cluster = section.getAttribute("data-cluster");
  var status = section.querySelector(".chart-status");
  var range = "1h";
  var plots = {};
  // Colours with at least 3:1 contrast against the white card.
  var palette = ["#1f5fbf", "#b3261e", "#1b7f3b", "#8a4baf", "#a05a00", "#0b7285", "#5c5f66", "#c2185b"];

  function fmt(unit) {
    return function (u, vals) {
      return vals.map(function (v) {
        if (v == null) { return ""; }
        if (unit === "bytes") {
          var k = ["B", "KiB", "MiB", "GiB", "TiB"], i = 0;
          while (Math.abs(v) >= 1024 && i < k.length - 1) { v /= 1024; i++; }
          return (Math.round(v * 10) / 10) + " " + k[i];
        }
        if (unit === "ratio") { return Math.round(v * 100) + "%"; }
        return String(Math.round(v * 10) / 10);
      });
    };
  }

  function width(el) { return Math.max(260, el.clientWidth - 8); }

  function draw(data) {
    section.querySelectorAll("[data-chart]").forEach(function (fig) {
      var key = fig.getAttribute("data-chart"), unit = fig.getAttribute("data-unit") || "";
      var onlyReplicas = fig.hasAttribute("data-replicas-only");
      var series = [{}], rows = [data.times];
      (data.instances || []).forEach(function (inst, i) {
        if (onlyReplicas && inst.role === "master") { return; }
        var vals = (inst.series && inst.series[key]) || [];
        series.push({ label: inst.name, stroke: palette[i % palette.length], width: 1.5, spanGaps: false,
          value: function (u, v) { return fmt(unit)(u, [v])[0]; } });
        rows.push(vals);
      });
      if (plots[key] && plots[key].series.length === series.length && rows.length > 1 && data.times.length > 0) {
        plots[key].setData(rows);
        return;
      }
      if (plots[key]) { plots[key].destroy(); delete plots[key]; }
      var empty = fig.querySelector(".chart-empty");
      if (empty) { empty.remove(); }
      if (rows.length === 1 || data.times.length === 0) {
        var p = document.createElement("p");
        p.className = "chart-empty muted";
        p.textContent = "No data yet.";
        fig.appendChild(p);
        return;
      }
      plots[key] = new uPlot({
        width: width(fig), height: 180,
        series: series,
        axes: [{}, { values: fmt(unit), size: 70 }],
        scales: unit === "ratio" ? { y: { range: [0, 1] } } : {},
        legend: { live: true }
      }, rows, fig);
    });
  }

  function load() {
    fetch("/api/v1/clusters/" + encodeURIComponent(cluster) + "/metrics?range=" + range, { credentials: "same-origin" })
      .then(function (resp) {
        if (!resp.ok) { throw new Error("status " + resp.status); }
        return resp.json();
      })
      .then(function (data) {
        status.textContent = "Range " + data.range + ", one point every " + Math.round(data.stepMs / 1000) + " s.";
        draw(data);
      })
      .catch(function (err) { status.textContent = "Charts unavailable: " + err.message + "."; });
  }

  section.querySelectorAll("[data-range]").forEach(function (b) {
    b.addEventListener("click", function () {
      range = b.getAttribute("data-range");
      section.querySelectorAll("[data-range]").forEach(function (o) { o.setAttribute("aria-pressed", String(o === b)); });
      load();
    });
  });
  var resizeTimer = null;
  window.addEventListener("resize", function () {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(function () {
      section.querySelectorAll("[data-chart]").forEach(function (fig) {
        var p = plots[fig.getAttribute("data-chart")];
        if (p) { p.setSize({ width: width(fig), height: 180 }); }
      });
    }, 150);
  });
  load();
  setInterval(function () { if (!document.hidden) { load(); } }, 10000);
})();
