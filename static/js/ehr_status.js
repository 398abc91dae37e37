// Keeps every "EHR status" on the page current without a reload: while a
// delivery is not final (delivered or failed), ask the server every few
// seconds, in one request for all of them, and update the text in place.
// The status region is aria-live, so a screen reader hears "Delivered to EHR".
// The JSON carries state, times and the EHR id only; the EHR's own words stay
// on the page, so a failure asks for a reload to show them.
(function () {
  "use strict";
  var script = document.currentScript;
  var url = script && script.dataset.url;
  var fast = parseInt((script && script.dataset.pollMs) || "3000", 10);
  var slow = fast * 5; // after a couple of minutes: an outage may last hours
  var polls = 0;
  var timer = null;

  function open() {
    return Array.prototype.filter.call(document.querySelectorAll("[data-ehr-status]"), function (el) {
      return el.dataset.final !== "1";
    });
  }

  function render(el, s) {
    if (s.final) el.dataset.final = "1";
    if (el.dataset.state === s.state && el.dataset.label === s.label) return; // keep the page's detail
    el.dataset.state = s.state;
    el.dataset.label = s.label;
    el.className = "ehr-status tone-" + s.tone;
    var label = el.querySelector(".ehr-status-label");
    label.textContent = "";
    var text = document.createElement(s.at ? "time" : "span");
    if (s.at) text.setAttribute("datetime", s.at);
    text.textContent = s.label;
    label.appendChild(text);
    var link = el.querySelector(".ehr-status-link");
    if (link) {
      if (s.ehr_url) { link.href = s.ehr_url; link.hidden = false; } else { link.removeAttribute("href"); link.hidden = true; }
    }
    var detail = el.querySelector(".ehr-status-detail");
    if (detail) detail.textContent = "";
    if (s.final && s.state !== "delivered") {
      if (!detail) {
        detail = document.createElement("span");
        detail.className = "ehr-status-detail";
        el.appendChild(detail);
      }
      detail.textContent = "Reload the page to see the EHR's answer.";
    }
  }

  function schedule() {
    if (timer) clearTimeout(timer);
    timer = null;
    if (!open().length) return;
    timer = setTimeout(poll, polls < 40 ? fast : slow);
  }

  function poll() {
    timer = null;
    var els = open();
    if (!els.length || !url) return;
    if (document.hidden) return; // visibilitychange polls again
    polls += 1;
    var ids = [];
    els.forEach(function (el) { if (ids.indexOf(el.dataset.noteId) < 0) ids.push(el.dataset.noteId); });
    fetch(url + "?notes=" + ids.join(","), { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (r) {
        if (r.status === 400 || r.status === 403 || r.status === 404) return null; // nothing to ask again
        if (!r.ok) throw new Error("status " + r.status);
        return r.json();
      })
      .then(function (data) {
        if (data === null) return;
        els.forEach(function (el) {
          var s = data.notes[el.dataset.noteId];
          if (s) render(el, s);
        });
        schedule();
      })
      .catch(function () { schedule(); }); // offline or a restart: try again later
  }

  document.addEventListener("visibilitychange", function () {
    if (!document.hidden && !timer) poll();
  });
  schedule();
})();
