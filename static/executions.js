/* The run page: copy buttons and the marked step. htmx does all the loading. */
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    // Plain-http servers have no clipboard API: copy through a selected text area.
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    var done = document.execCommand("copy");
    area.remove();
    return done ? Promise.resolve() : Promise.reject(new Error("copy refused"));
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-copy]");
    if (!button) return;
    var source = document.getElementById(button.dataset.copy);
    var label = button.textContent;
    copyText(source ? source.textContent : "").then(function () {
      button.textContent = "Copied";
    }, function () {
      button.textContent = "Select and press Ctrl+C";
    }).then(function () {
      setTimeout(function () { button.textContent = label; }, 1500);
    });
  });

  // Keep the opened step marked in the trace, also after the live refresh redraws it.
  document.addEventListener("htmx:afterSettle", function () {
    var open = document.querySelector("#step-panel [data-position]");
    document.querySelectorAll(".steps li.selected").forEach(function (row) {
      row.classList.remove("selected");
    });
    var row = open && document.getElementById("step-" + open.dataset.position);
    if (row) row.classList.add("selected");
  });
})();
