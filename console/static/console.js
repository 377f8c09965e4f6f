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
  // A limit change's date: an increase may take effect today, a reduction or a withdrawal from
  // tomorrow; a date still at one change's default moves to the other's.
  document.addEventListener("change", function (event) {
    var chosen = event.target;
    if (!chosen || chosen.name !== "change" || !chosen.form) {
      return;
    }
    var date = chosen.form.querySelector("input[data-min-increase]");
    if (!date) {
      return;
    }
    var kind = chosen.value === "increase" ? "increase" : "reduce";
    var other = kind === "increase" ? "reduce" : "increase";
    date.min = date.getAttribute("data-min-" + kind);
    if (date.value === "" || date.value === date.getAttribute("data-default-" + other)) {
      date.value = date.getAttribute("data-default-" + kind);
    }
  });
  document.addEventListener("htmx:afterSettle", function () {
    var main = document.getElementById("main");
    if (main) {
      main.focus({ preventScroll: true });
    }
  });
})();
