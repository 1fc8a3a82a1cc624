// Counts down every <time data-countdown> to its datetime: "in 14 min 05 s", "expired".
(function () {
  function fmt(ms) {
    if (ms <= 0) return "expired";
    var s = Math.floor(ms / 1000), m = Math.floor(s / 60), h = Math.floor(m / 60);
    if (h > 0) return "in " + h + " h " + (m % 60) + " min";
    return "in " + m + " min " + String(s % 60).padStart(2, "0") + " s";
  }
  function tick() {
    document.querySelectorAll("time[data-countdown]").forEach(function (t) {
      var at = Date.parse(t.getAttribute("datetime"));
      if (!isNaN(at)) {
        t.textContent = fmt(at - Date.now());
        t.title = t.getAttribute("datetime");
      }
    });
  }
  document.addEventListener("DOMContentLoaded", function () { tick(); setInterval(tick, 1000); });
})();
