// gankit run report: draws the plots (uPlot, inlined above) and drives the snapshot sliders. No network access.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var COLORS = ["#2b6cb0", "#d9480f", "#2f9e44", "#9c36b5", "#e8590c", "#0c8599", "#c2255c", "#5c940d",
                "#364fc7", "#a61e4d"];
  var EVENT_COLORS = {resume: "#2f9e44", rollback: "#e8590c", nonfinite: "#c92a2a", diverged: "#c92a2a",
                      interrupted: "#868e96", warning: "#f08c00", best: "#1971c2"};

  // Vertical lines (and a short label) at each event's kimg, drawn on the plot's canvas.
  function eventsPlugin(events) {
    return {hooks: {draw: [function (u) {
      var ctx = u.ctx, top = u.bbox.top, height = u.bbox.height;
      ctx.save();
      ctx.lineWidth = 1.5 * devicePixelRatio;
      ctx.font = (10 * devicePixelRatio) + "px sans-serif";
      events.forEach(function (e) {
        var x = u.valToPos(e.x, "x", true);
        if (!isFinite(x) || x < u.bbox.left - 1 || x > u.bbox.left + u.bbox.width + 1) return;
        ctx.strokeStyle = ctx.fillStyle = EVENT_COLORS[e.kind] || "#495057";
        ctx.setLineDash([4 * devicePixelRatio, 3 * devicePixelRatio]);
        ctx.beginPath(); ctx.moveTo(x, top); ctx.lineTo(x, top + height); ctx.stroke();
        ctx.fillText(e.kind, x + 3 * devicePixelRatio, top + 11 * devicePixelRatio);
      });
      ctx.restore();
    }]}};
  }

  function drawPlot(spec) {
    var el = document.getElementById(spec.id);
    if (!el) return;
    var title = document.createElement("div");
    title.className = "plot-title";
    title.textContent = el.getAttribute("data-title") || spec.title;
    el.appendChild(title);
    var series = [{label: spec.x_label}];
    var columns = [spec.x];
    spec.series.forEach(function (s, i) {
      series.push({label: s.label, stroke: COLORS[i % COLORS.length], width: 1.5, spanGaps: true,
                   points: {show: spec.x.length < 40}});
      columns.push(s.values);
    });
    var width = Math.max(300, Math.min(el.clientWidth - 8 || 364, 900));
    var plot = new uPlot({width: width, height: 230, series: series, plugins: [eventsPlugin(spec.events)],
                          scales: {x: {time: false}}, axes: [{label: spec.x_label}, {}], legend: {live: true},
                          cursor: {drag: {x: true, y: false}}}, columns, el);
    el.setAttribute("data-rendered", plot && el.querySelector("canvas") ? "1" : "0");
  }

  function setupSeries(fig) {
    var frames = fig.querySelectorAll(".frame");
    var input = fig.querySelector("input[type=range]");
    var label = fig.querySelector(".frame-label");
    function show(i) {
      frames.forEach(function (f, j) { f.classList.toggle("hidden", j !== i); });
      if (label && frames[i]) label.textContent = frames[i].getAttribute("data-label");
    }
    if (input) input.addEventListener("input", function () { show(parseInt(input.value, 10)); });
    show(frames.length - 1);
  }

  data.plots.forEach(drawPlot);
  document.querySelectorAll("figure.series").forEach(setupSeries);
  document.body.setAttribute("data-report-ready", "1");
})();
