// The request form's picker: a "+ name" button adds the name to its textarea (one per line)
// and asks the form to re-check the scope (htmx listens for "scope-changed").
"use strict";

document.addEventListener("click", function (event) {
  var button = event.target.closest("[data-scope-add]");
  if (!button) return;
  var field = document.getElementById("id_" + button.dataset.scopeAdd);
  if (!field) return;
  var lines = field.value.split("\n").map(function (line) { return line.trim(); }).filter(Boolean);
  if (lines.indexOf(button.dataset.scopeValue) === -1) lines.push(button.dataset.scopeValue);
  field.value = lines.join("\n");
  button.setAttribute("aria-pressed", "true");
  field.closest("form").dispatchEvent(new Event("scope-changed", { bubbles: true }));
});

document.addEventListener("change", function (event) {
  // A new datasource: refresh the picker's options for it.
  if (event.target.id !== "id_datasource") return;
  var search = document.getElementById("scope-search");
  if (search && window.htmx) window.htmx.trigger(search, "input");
});
