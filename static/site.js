/* What every page does with a script: the keys, and tables too wide for the screen made
   reachable by keyboard.

   Keys: "/" finds a run, j and k move through the rows of a list, Enter opens the selected
   row, "?" lists the keys. A selected row is its link holding the focus, so Enter is the
   browser's own and the row stays selected across htmx swaps of other parts. */
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  // On a phone a wide table scrolls inside its own box (app.css); a box that scrolls must
  // take the focus, or a keyboard cannot scroll it when it holds no link.
  function markScrollers() {
    document.querySelectorAll("main table").forEach(function (table) {
      if (table.scrollWidth > table.clientWidth + 1) {
        table.setAttribute("tabindex", "0");
      } else if (table.getAttribute("tabindex") === "0") {
        table.removeAttribute("tabindex");
      }
    });
  }
  markScrollers();
  window.addEventListener("resize", markScrollers);
  document.addEventListener("htmx:afterSettle", markScrollers);

  function typing(target) {
    return target instanceof Element &&
      (target.isContentEditable || target.closest("input, textarea, select, dialog") !== null);
  }

  // The rows of the page's lists that lead somewhere, as they are shown now.
  function rows() {
    return Array.prototype.filter.call(
      document.querySelectorAll("main tbody tr"),
      function (row) { return row.offsetParent !== null && opener(row) !== null; });
  }

  // A row opens its marked link (the run, where the first one filters), else its first.
  function opener(row) {
    return row.querySelector("a[href][data-open]") || row.querySelector("a[href]");
  }

  function move(step) {
    var all = rows();
    if (!all.length) {
      return;
    }
    var current = all.findIndex(function (row) { return row.contains(document.activeElement); });
    var next = current === -1 ? (step > 0 ? 0 : all.length - 1)
      : Math.min(Math.max(current + step, 0), all.length - 1);
    opener(all[next]).focus();
    all[next].scrollIntoView({block: "nearest"});
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || event.defaultPrevented ||
        typing(event.target)) {
      return;
    }
    var search = document.getElementById("site-search");
    var help = document.getElementById("keys-help");
    if (event.key === "/" && search) {
      event.preventDefault();  // or the "/" lands in the box
      search.focus();
      search.select();
    } else if (event.key === "j" || event.key === "k") {
      event.preventDefault();
      move(event.key === "j" ? 1 : -1);
    } else if (event.key === "?" && help && !help.open) {
      event.preventDefault();
      help.showModal();
    }
  });
})();
