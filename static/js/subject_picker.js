// Rule and guardrail forms: filter the subject checkboxes by name, switch "Applies to" to the
// chosen subjects when one is ticked, and say in words whom the rule will apply to.
"use strict";

(function () {
  var picker = document.getElementById("subject-picker");
  if (!picker) return;
  var search = document.getElementById("subject-search");
  var summary = document.getElementById("subject-summary");
  var everyone = picker.querySelector('input[name="everyone"][value="True"]');
  var chosenOnly = picker.querySelector('input[name="everyone"][value="False"]');

  function ticked(name) {
    return Array.prototype.map.call(
      picker.querySelectorAll('input[name="' + name + '"]:checked'),
      function (box) { return box.parentElement.textContent.trim(); }
    );
  }

  function describe() {
    if (everyone && everyone.checked) {
      summary.textContent = "Applies to everyone: every person and service account.";
      return;
    }
    var people = ticked("users");
    var groups = ticked("groups").map(function (name) { return "group " + name; });
    var all = people.concat(groups);
    summary.textContent = all.length
      ? "Applies only to " + all.join(", ") + "."
      : "Applies to nobody yet: pick at least one person, service account or group.";
  }

  picker.addEventListener("change", function (event) {
    if (event.target.type === "checkbox" && event.target.checked && chosenOnly) chosenOnly.checked = true;
    describe();
  });
  if (search) {
    search.addEventListener("input", function () {
      var needle = search.value.trim().toLowerCase();
      picker.querySelectorAll("label.check").forEach(function (label) {
        label.hidden = needle !== "" && label.dataset.name.indexOf(needle) === -1;
      });
    });
  }
  describe();
})();
