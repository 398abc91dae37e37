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

  function post(url, body, keepalive) {
    return fetch(url, {
      method: "POST",
      body: body,
      credentials: "same-origin",
      keepalive: !!keepalive,
      headers: { Accept: "application/json", "X-CSRFToken": csrf() },
    });
  }

  // --- autosave -------------------------------------------------------------------------------
  var sectionForms = Array.prototype.slice.call(document.querySelectorAll("form.section-form"));
  var dirty = new Set();
  var timers = new Map();
  var inflight = new Map();
  // Sections whose save was refused because another tab or device saved them
  // meanwhile (409): form -> the saved section. Nothing autosaves there until
  // the clinician chooses a text, and nothing is signed over it.
  var conflicts = new Map();
  var KEEPALIVE_MAX_CHARS = 60000; // browsers cap keepalive bodies at 64 KiB

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

  function versionInput(form) {
    return form.querySelector("input[name=version]");
  }

  function showConflict(form, conflict) {
    var key = form.dataset.section;
    conflicts.set(form, conflict);
    document.getElementById("conflict-mine-" + key).textContent = form.querySelector("textarea").value;
    document.getElementById("conflict-theirs-" + key).textContent = conflict.text;
    document.getElementById("conflict-" + key).hidden = false;
    setStatus(key, "Not saved: saved elsewhere meanwhile. Choose a text below.", true);
  }

  function resolveConflict(form, choice) {
    var conflict = conflicts.get(form);
    if (!conflict) return;
    var key = form.dataset.section;
    var textarea = form.querySelector("textarea");
    conflicts.delete(form);
    document.getElementById("conflict-" + key).hidden = true;
    versionInput(form).value = String(conflict.version);
    if (choice === "theirs") {
      textarea.value = conflict.text;
      textarea.defaultValue = conflict.text;
      dirty.delete(form);
      showDiff(key, conflict);
      setStatus(key, "Loaded the text saved elsewhere.");
      return;
    }
    // Keep mine: the text in the box, saved against the version now stored.
    dirty.add(form);
    save(form);
  }

  function save(form, keepalive) {
    clearTimeout(timers.get(form));
    if (inflight.has(form)) return inflight.get(form).then(function () { return save(form, keepalive); });
    if (conflicts.has(form)) return Promise.resolve(false);
    if (!dirty.has(form)) return Promise.resolve(true);
    var key = form.dataset.section;
    var body = new FormData(form);
    var sent = body.get("text");
    dirty.delete(form);
    setStatus(key, "Saving\u2026");
    var p = post(form.action, body, keepalive && sent.length < KEEPALIVE_MAX_CHARS)
      .then(function (r) {
        return r.json().catch(function () { return {}; }).then(function (data) {
          if (r.status === 409 && data.conflict) {
            // Keep the unsaved text marked dirty so leaving the page warns of it.
            dirty.add(form);
            showConflict(form, data.conflict);
            return false;
          }
          if (!r.ok) {
            setStatus(key, data.detail || "Not saved.", true);
            if (r.status >= 500) { dirty.add(form); schedule(form, 5000); }
            return false;
          }
          showDiff(key, data);
          if (data.version) versionInput(form).value = String(data.version);
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
      if (conflicts.has(form)) {
        document.getElementById("conflict-mine-" + form.dataset.section).textContent = textarea.value;
        return;
      }
      setStatus(form.dataset.section, "Editing\u2026");
      schedule(form, SAVE_DELAY_MS);
    });
    Array.prototype.forEach.call(form.querySelectorAll("[data-choose]"), function (button) {
      button.addEventListener("click", function () { resolveConflict(form, button.dataset.choose); });
    });
    // The page came back from a refused no-script save: show it as a conflict.
    var box = document.getElementById("conflict-" + form.dataset.section);
    if (box && !box.hidden) {
      conflicts.set(form, {
        version: Number(versionInput(form).value),
        text: document.getElementById("conflict-theirs-" + form.dataset.section).textContent,
      });
      dirty.add(form);
    }
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
    if (conflicts.size) {
      // Signing (or anything else) now would drop the text the clinician has not chosen yet.
      e.preventDefault();
      var first = conflicts.keys().next().value;
      setStatus(first.dataset.section, "Choose a text for this section first.", true);
      document.getElementById("conflict-" + first.dataset.section).scrollIntoView();
      return;
    }
    if (!dirty.size && !inflight.size) return;
    e.preventDefault();
    var submitter = e.submitter;
    saveAll().then(function (results) {
      if (results.every(Boolean)) form.requestSubmit(submitter);
    });
  });

  // Closing the tab or switching away: hand unsaved text to the browser,
  // which delivers a beacon even after the page is gone.
  // A beacon's answer is never read, so a section in conflict is not sent:
  // its version is stale and the server would refuse it anyway.
  function flushWithBeacon() {
    dirty.forEach(function (form) {
      if (conflicts.has(form)) return;
      if (navigator.sendBeacon(form.action, new FormData(form))) dirty.delete(form);
    });
    sendBeat(true);
  }
  // Switching away (the tab may still come back): save with a read answer,
  // so a conflict is on screen when the clinician returns.
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState !== "hidden") return;
    dirty.forEach(function (form) { save(form, true); });
    sendBeat(true);
  });
  window.addEventListener("pagehide", flushWithBeacon);

  function go(url) {
    if (!url || conflicts.size) return;
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

  // --- intervention term search ---------------------------------------------------------------
  Array.prototype.forEach.call(document.querySelectorAll("input.vocabulary-search"), function (input) {
    var list = document.getElementById(input.getAttribute("list"));
    var timer;
    input.addEventListener("input", function () {
      clearTimeout(timer);
      var q = input.value.trim();
      if (!q) return;
      timer = setTimeout(function () {
        fetch(root.dataset.vocabularyUrl + "?q=" + encodeURIComponent(q), { headers: { Accept: "application/json" } })
          .then(function (r) { return r.json(); })
          .then(function (data) {
            list.textContent = "";
            (data.results || []).forEach(function (term) {
              var opt = document.createElement("option");
              opt.value = term;
              list.appendChild(opt);
            });
          })
          .catch(function () {});
      }, 200);
    });
  });

  // --- collapse unchanged sections ------------------------------------------------------------
  var collapse = document.getElementById("collapse-unchanged");
  if (collapse) {
    var label = collapse.textContent;
    collapse.hidden = false;
    collapse.addEventListener("click", function () {
      var on = collapse.getAttribute("aria-pressed") !== "true";
      collapse.setAttribute("aria-pressed", on ? "true" : "false");
      root.classList.toggle("collapse-unchanged", on);
      collapse.textContent = on ? "Show unchanged sections" : label;
    });
  }

  // --- keyboard shortcuts ---------------------------------------------------------------------
  // Signing needs a modifier (Ctrl/Cmd+Enter), never a single character
  // (WCAG 2.1.4); single-key shortcuts are a per-account choice.
  var singleKeys = root.dataset.singleKeys === "1";
  var mac = /Mac|iPhone|iPad/.test(navigator.platform || navigator.userAgent);
  if (mac) {
    Array.prototype.forEach.call(document.querySelectorAll("kbd.sign-key"), function (k) { k.textContent = "\u2318+Enter"; });
  }
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
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey) && !e.altKey && !e.shiftKey) {
      if (help && help.open) return;
      e.preventDefault();
      signShortcut();
      return;
    }
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    var t = e.target;
    // A checkbox (the shortcuts preference) takes no text: keys still work there.
    var typing = t && (t.tagName === "TEXTAREA" || (t.tagName === "INPUT" && !/^(checkbox|radio|button|submit)$/.test(t.type)) || t.tagName === "SELECT" || t.isContentEditable);
    if (typing) {
      if (e.key === "Escape") t.blur();
      return;
    }
    if (!singleKeys) return;
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
        // The first open flag's main action: the first suggestion when there
        // is one (one click or Enter fixes the flag), else its input.
        var flag = document.querySelector("li.flag.open");
        var target = flag && (flag.querySelector("[data-flag-primary]") || flag.querySelector("input:not([type=hidden]), select, button"));
        if (target) {
          target.scrollIntoView({ block: "center" });
          target.focus();
        }
        break;
      }
      case "?": toggleHelp(); break;
      default: return;
    }
    e.preventDefault();
  });
})();
