// The queue's keyboard shortcuts: j/k move through the list, Enter or o
// opens the selected draft, n reviews the next one, ? shows the help.
(function () {
  "use strict";
  var rows = Array.prototype.slice.call(document.querySelectorAll("#queue-table tbody tr"));
  var help = document.getElementById("shortcuts");
  var table = document.getElementById("queue-table");
  // Single-key shortcuts are a per-account choice (WCAG 2.1.4).
  var singleKeys = !table || table.dataset.singleKeys !== "0";
  var current = -1;
  var helpButton = document.getElementById("help-open");
  if (helpButton && help) helpButton.addEventListener("click", function () { help.showModal(); });

  function select(i) {
    if (!rows.length) return;
    current = Math.max(0, Math.min(rows.length - 1, i));
    rows.forEach(function (row, n) { row.classList.toggle("selected", n === current); });
    var link = rows[current].querySelector("a");
    if (link) link.focus();
  }

  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    var t = e.target;
    if (t && ((t.tagName === "INPUT" && !/^(checkbox|radio|button|submit)$/.test(t.type)) || t.tagName === "SELECT" || t.tagName === "TEXTAREA")) return;
    if (!singleKeys) return;
    switch (e.key) {
      case "j": select(current + 1); break;
      case "k": select(current - 1); break;
      case "o": if (current >= 0) window.location.href = rows[current].dataset.href; break;
      case "n": {
        var next = document.getElementById("review-next");
        if (next) window.location.href = next.href;
        break;
      }
      case "?": if (help) { if (help.open) help.close(); else help.showModal(); } break;
      default: return;
    }
    e.preventDefault();
  });
})();
