// The "Copy key" button on the page that shows a new API key once.
(function () {
  "use strict";
  var button = document.getElementById("copy-key");
  if (!button) return;
  var status = document.getElementById("copy-status");
  button.addEventListener("click", function () {
    var input = document.getElementById(button.dataset.target);
    navigator.clipboard.writeText(input.value).then(
      function () { status.textContent = "Key copied."; },
      function () { input.select(); status.textContent = "Press Ctrl+C (⌘C) to copy the selected key."; }
    );
  });
})();
