// The review page, progressively enhanced: autosave with a refreshed diff,
// nothing lost when the tab closes, active-time heartbeats, the ICD-10-CM
// picker and the batch keyboard shortcuts. Without it the forms still work.
(function () {
  "use strict";
  var root = document.getElementById("review");
  if (!root) return;

  var SAVE_DELAY_MS = 800;
  var BEAT_MS = Number(root.dataset.heartbeatMs) || 15000;
  var IDLE_MS = Number(root.dataset.idleMs) || 60000; // no interaction for this long: not review time
  var editable = root.dataset.editable === "1";

  function csrf() {
    var input = document.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  function post(url, body) {
    return fetch(url, {
      method: "POST",
      body: body,
      credentials: "same-origin",
      headers: { Accept: "application/json", "X-CSRFToken": csrf() },
    });
  }

  // --- autosave -------------------------------------------------------------------------------
  var sectionForms = Array.prototype.slice.call(document.querySelectorAll("form.section-form"));
  var dirty = new Set();
  var timers = new Map();
  var inflight = new Map();

  function setStatus(key, text, isError) {
    var el = document.getElementById("status-" + key);
    if (!el) return;
    el.textContent = text;
    el.classList.toggle("error", !!isError);
  }

  function schedule(form, delay) {
    clearTimeout(timers.get(form));
    timers.set(form, setTimeout(function () { save(form); }, delay));
  }

  function showDiff(key, data) {
    var diff = document.getElementById("diff-" + key);
    // diff_html is built server-side from escaped text only.
    if (diff) diff.innerHTML = data.diff_html;
    var stat = document.getElementById("diffstat-" + key);
    if (stat) stat.textContent = data.edited ? "+" + data.inserted_words + " / \u2212" + data.deleted_words + " words" : "none";
    var wrap = document.getElementById("diffwrap-" + key);
    if (wrap) wrap.classList.toggle("unchanged", !data.edited);
  }

  function save(form) {
    clearTimeout(timers.get(form));
    if (inflight.has(form)) return inflight.get(form).then(function () { return save(form); });
    if (!dirty.has(form)) return Promise.resolve(true);
    var key = form.dataset.section;
    var body = new FormData(form);
    var sent = body.get("text");
    dirty.delete(form);
    setStatus(key, "Saving\u2026");
    var p = post(form.action, body)
      .then(function (r) {
        return r.json().catch(function () { return {}; }).then(function (data) {
          if (!r.ok) {
            setStatus(key, data.detail || "Not saved.", true);
            if (r.status >= 500) { dirty.add(form); schedule(form, 5000); }
            return false;
          }
          showDiff(key, data);
          var textarea = form.querySelector("textarea");
          if (textarea.value !== sent) { dirty.add(form); schedule(form, SAVE_DELAY_MS); }
          setStatus(key, "Saved " + new Date().toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }));
          return true;
        });
      })
      .catch(function () {
        dirty.add(form);
        setStatus(key, "Offline: will retry.", true);
        schedule(form, 5000);
        return false;
      })
      .finally(function () { inflight.delete(form); });
    inflight.set(form, p);
    return p;
  }

  function saveAll() {
    return Promise.all(sectionForms.map(save));
  }

  sectionForms.forEach(function (form) {
    var textarea = form.querySelector("textarea");
    textarea.addEventListener("input", function () {
      dirty.add(form);
      setStatus(form.dataset.section, "Editing\u2026");
      schedule(form, SAVE_DELAY_MS);
    });
    textarea.addEventListener("blur", function () { save(form); });
    form.addEventListener("submit", function (e) { e.preventDefault(); save(form); });
    // Text typed before this (deferred) script ran fired no input event:
    // pick it up now so it is saved like any other edit.
    if (textarea.value !== textarea.defaultValue) {
      dirty.add(form);
      setStatus(form.dataset.section, "Editing\u2026");
      schedule(form, SAVE_DELAY_MS);
    }
  });

  // Any other form (flags, sign, discard) first waits for pending saves,
  // then submits with the button that was pressed.
  document.addEventListener("submit", function (e) {
    var form = e.target;
    if (form.classList.contains("section-form") || form.method === "dialog" || form.method === "get") return;
    if (!dirty.size && !inflight.size) return;
    e.preventDefault();
    var submitter = e.submitter;
    saveAll().then(function () { form.requestSubmit(submitter); });
  });

  // Closing the tab or switching away: hand unsaved text to the browser,
  // which delivers a beacon even after the page is gone.
  function flushWithBeacon() {
    dirty.forEach(function (form) {
      if (navigator.sendBeacon(form.action, new FormData(form))) dirty.delete(form);
    });
    sendBeat(true);
  }
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "hidden") flushWithBeacon();
  });
  window.addEventListener("pagehide", flushWithBeacon);

  function go(url) {
    if (!url) return;
    saveAll().then(function () { window.location.href = url; });
  }

  // --- active review time ---------------------------------------------------------------------
  var lastInteraction = Date.now();
  var activeSeconds = 0;
  ["keydown", "input", "pointerdown", "wheel", "scroll", "mousemove", "touchstart"].forEach(function (type) {
    window.addEventListener(type, function () { lastInteraction = Date.now(); }, { passive: true, capture: true });
  });

  function isActive() {
    return document.visibilityState === "visible" && document.hasFocus() && Date.now() - lastInteraction < IDLE_MS;
  }

  function sendBeat(useBeacon) {
    if (!editable || activeSeconds < 1) return;
    var body = new FormData();
    body.append("seconds", String(activeSeconds));
    body.append("csrfmiddlewaretoken", csrf());
    activeSeconds = 0;
    if (useBeacon) navigator.sendBeacon(root.dataset.heartbeatUrl, body);
    else post(root.dataset.heartbeatUrl, body).catch(function () {});
  }

  if (editable) {
    setInterval(function () { if (isActive()) activeSeconds += 1; }, 1000);
    setInterval(function () { sendBeat(false); }, BEAT_MS);
  }

  // --- ICD-10-CM picker -----------------------------------------------------------------------
  Array.prototype.forEach.call(document.querySelectorAll("input.icd-search"), function (input) {
    var list = document.getElementById(input.getAttribute("list"));
    var timer;
    input.addEventListener("input", function () {
      clearTimeout(timer);
      var q = input.value.trim();
      if (q.length < 2) return;
      timer = setTimeout(function () {
        fetch(root.dataset.icdUrl + "?q=" + encodeURIComponent(q), { headers: { Accept: "application/json" } })
          .then(function (r) { return r.json(); })
          .then(function (data) {
            list.textContent = "";
            (data.results || []).forEach(function (item) {
              var opt = document.createElement("option");
              opt.value = item.code;
              opt.label = item.code + " " + item.description;
              opt.textContent = item.description;
              list.appendChild(opt);
            });
          })
          .catch(function () {});
      }, 250);
    });
  });

  // --- keyboard shortcuts ---------------------------------------------------------------------
  var help = document.getElementById("shortcuts");
  function toggleHelp() {
    if (!help) return;
    if (help.open) help.close(); else help.showModal();
  }
  var helpButton = document.getElementById("help-open");
  if (helpButton) helpButton.addEventListener("click", toggleHelp);

  function signShortcut() {
    var form = document.getElementById("sign-form");
    if (!form) return;
    var otp = document.getElementById("sign-otp");
    if (otp && !otp.value.trim()) {
      otp.focus();
      return;
    }
    form.requestSubmit(document.getElementById("sign-next"));
  }

  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    var t = e.target;
    var typing = t && (t.tagName === "TEXTAREA" || t.tagName === "INPUT" || t.tagName === "SELECT" || t.isContentEditable);
    if (typing) {
      if (e.key === "Escape") t.blur();
      return;
    }
    if (help && help.open && e.key !== "?") return;
    switch (e.key) {
      case "j": go(root.dataset.nextUrl); break;
      case "k": go(root.dataset.prevUrl); break;
      case "u": go(root.dataset.queueUrl); break;
      case "e": {
        var first = document.querySelector("form.section-form textarea");
        if (first) first.focus();
        break;
      }
      case "f": {
        var flag = document.querySelector("li.flag.open select, li.flag.open input:not([type=hidden]), li.flag.open button");
        if (flag) flag.focus();
        break;
      }
      case "s": signShortcut(); break;
      case "?": toggleHelp(); break;
      default: return;
    }
    e.preventDefault();
  });
})();
