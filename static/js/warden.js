// Small page helpers: charts from <canvas data-chart='{...}'> and live progress via websockets.
"use strict";

function wardenDrawCharts(root) {
  root.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
    if (canvas.dataset.drawn) return;
    canvas.dataset.drawn = "1";
    var spec = JSON.parse(canvas.dataset.chart);
    spec.options = Object.assign({ responsive: true, maintainAspectRatio: false, animation: false }, spec.options || {});
    new window.Chart(canvas, spec);
  });
}

document.addEventListener("DOMContentLoaded", function () { wardenDrawCharts(document); });
document.addEventListener("htmx:afterSwap", function (event) { wardenDrawCharts(event.target); });
