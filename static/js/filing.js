// The filing page's copy buttons: one section, or the whole note under its
// headings. navigator.clipboard needs a secure context (HTTPS or localhost);
// elsewhere a hidden textarea and execCommand("copy") do it.
(function () {
  "use strict";
  var status = document.getElementById("copy-status");

  function say(text) {
    if (status) status.textContent = text;
  }

  function fallbackCopy(text) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.left = "-9999px";
    document.body.appendChild(area);
    area.select();
    var ok = false;
    try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
    document.body.removeChild(area);
    return ok;
  }

  function copy(text, what) {
    var done = function () { say(what + " copied."); };
    var failed = function () {
      if (fallbackCopy(text)) done();
      else say("Could not copy " + what + ": select the text and copy it by hand.");
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, failed);
    } else {
      failed();
    }
  }

  document.querySelectorAll("button[data-copy-target]").forEach(function (button) {
    button.addEventListener("click", function () {
      var block = document.getElementById(button.dataset.copyTarget);
      if (block) copy(block.textContent, block.dataset.copyTitle || "Section");
    });
  });

  document.querySelectorAll("button[data-copy-all]").forEach(function (button) {
    button.addEventListener("click", function () {
      var parts = Array.prototype.map.call(document.querySelectorAll("pre[data-copy-title]"), function (block) {
        return block.dataset.copyTitle + "\n" + block.textContent;
      });
      copy(parts.join("\n\n") + "\n", "The whole note");
    });
  });
})();
