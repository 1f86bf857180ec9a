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

// Copy buttons: <button data-copy="text"> or data-copy-target="#id" copies to the clipboard.
document.addEventListener("click", function (event) {
  var button = event.target.closest("[data-copy], [data-copy-target]");
  if (!button) return;
  var text = button.dataset.copy;
  if (text === undefined) {
    var source = document.querySelector(button.dataset.copyTarget);
    text = source ? (source.value || source.textContent).trim() : "";
  }
  var done = function () {
    var label = button.textContent;
    button.textContent = "Copied";
    setTimeout(function () { button.textContent = label; }, 1500);
  };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(done);
  } else {
    var area = document.createElement("textarea");
    area.value = text;
    document.body.appendChild(area);
    area.select();
    document.execCommand("copy");
    area.remove();
    done();
  }
});

// The phone-width menu: the toggle opens and closes the grouped navigation.
document.addEventListener("click", function (event) {
  var toggle = event.target.closest(".menu-toggle");
  if (!toggle) return;
  var open = toggle.getAttribute("aria-expanded") !== "true";
  toggle.setAttribute("aria-expanded", open ? "true" : "false");
  document.body.classList.toggle("nav-open", open);
});
