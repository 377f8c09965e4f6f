// Keyboard use of the lists: j / k move between rows (Enter opens the focused one),
// and focus goes to the page's heading after htmx swaps a boosted page in.
(function () {
  "use strict";
  function rowLinks() {
    return Array.prototype.slice.call(document.querySelectorAll("[data-keyboard-list] a.row-link"));
  }
  function typing(target) {
    return target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
  }
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) {
      return;
    }
    if (event.key !== "j" && event.key !== "k") {
      return;
    }
    var links = rowLinks();
    if (links.length === 0) {
      return;
    }
    var at = links.indexOf(document.activeElement);
    var next = event.key === "j" ? Math.min(links.length - 1, at + 1) : Math.max(0, at - 1);
    if (at === -1) {
      next = 0;
    }
    links[next].focus();
    event.preventDefault();
  });
  document.addEventListener("htmx:afterSettle", function () {
    var main = document.getElementById("main");
    if (main) {
      main.focus({ preventScroll: true });
    }
  });
})();
