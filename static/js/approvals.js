// The live approvals inbox: one websocket (/ws/approvals/) carrying JSON messages
// {kind, event, id, state, audience, html, ...}; rows are swapped in by id, a count badge
// and the tab title follow the pending rows, and a browser notification is shown when allowed.
"use strict";

(function () {
  var root = null;
  var userId = "";
  var retryMs = 500;

  function fragment(html) {
    var template = document.createElement("template");
    template.innerHTML = html.trim();
    return template.content.firstElementChild;
  }

  function place(elementId, html, listSelector) {
    var element = fragment(html);
    if (!element) return null;
    var existing = document.getElementById(elementId);
    if (existing) {
      existing.replaceWith(element);
    } else {
      var list = document.querySelector(listSelector);
      if (!list) return null;
      list.prepend(element);
    }
    if (window.htmx) window.htmx.process(element);
    return element;
  }

  function updateBadge() {
    var pending = document.querySelectorAll('#review-list [data-state="pending"]').length;
    var badge = document.getElementById("approvals-badge");
    if (badge) {
      badge.textContent = String(pending);
      badge.dataset.count = String(pending);
    }
    var empty = document.getElementById("review-empty");
    if (empty) empty.hidden = pending > 0;
    document.title = document.title.replace(/^\(\d+\) /, "");
    if (pending > 0 && badge) document.title = "(" + pending + ") " + document.title;
  }

  function notify(title, body, url) {
    if (!("Notification" in window) || Notification.permission !== "granted") return;
    try {
      var note = new Notification(title, { body: body, tag: url || title });
      note.onclick = function () { window.focus(); if (url) window.location.href = url; };
    } catch (error) { /* some browsers only allow notifications from a service worker */ }
  }

  function onRequest(message) {
    var url = "/approvals/" + message.id + "/";
    if (message.audience === "review") {
      if (String(message.requester_id) === userId) return;  // nobody reviews their own
      place("review-" + message.id, message.html, "#review-list");
      if (message.event === "created" && message.state === "pending") {
        notify("Access request #" + message.id, message.summary, url);
      }
    } else {
      place("mine-" + message.id, message.html, "#mine-list");
      if (message.state !== "pending" && message.event !== "reviewed") {
        notify("Your request #" + message.id + ": " + message.state_label, message.summary, url);
      }
    }
    document.querySelectorAll('[data-request-state="' + message.id + '"]').forEach(function (el) {
      el.textContent = message.state_label;
      el.className = el.className.replace(/state-\w+/, "state-" + message.state);
    });
    document.body.dispatchEvent(new CustomEvent("approvals-changed-" + message.id));
  }

  function onAlert(message) {
    var alerts = document.getElementById("approvals-alerts");
    var id = (message.kind === "break_glass" ? "break-glass-" : "grant-warning-") + message.id;
    if (alerts && !document.getElementById(id)) {
      var element = fragment(message.html);
      if (element) alerts.prepend(element);
    }
    notify(message.kind === "break_glass" ? "Break-glass used" : "Grant expiring", message.summary);
  }

  function handle(message) {
    if (message.kind === "request") onRequest(message);
    else if (message.kind === "break_glass" || message.kind === "grant_warning") onAlert(message);
    updateBadge();
    document.dispatchEvent(new CustomEvent("approvals:message", { detail: message }));
  }

  function connect() {
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    var socket = new WebSocket(scheme + window.location.host + root.dataset.approvalsWs);
    socket.onopen = function () { retryMs = 500; root.dataset.live = "connected"; };
    socket.onmessage = function (event) { handle(JSON.parse(event.data)); };
    socket.onclose = function () {
      root.dataset.live = "disconnected";
      setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, 15000);
    };
  }

  function offerNotifications() {
    var button = document.getElementById("approvals-enable-notifications");
    if (!button || !("Notification" in window) || Notification.permission !== "default") return;
    button.hidden = false;
    button.addEventListener("click", function () {
      Notification.requestPermission().then(function () { button.hidden = true; });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    root = document.querySelector("[data-approvals-ws]");
    if (!root) return;
    userId = root.dataset.userId || "";
    offerNotifications();
    updateBadge();
    connect();
  });
})();
