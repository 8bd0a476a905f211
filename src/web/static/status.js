// Live refresh of the koji-adjutant dashboard. The page is complete without this script
// (a <noscript> meta refresh reloads it); with it, the server-rendered <main> is fetched
// again every few seconds and swapped in place, so scroll position is kept.
(function () {
  "use strict";
  var INTERVAL_MS = 3000;
  var live = document.getElementById("live");
  function refresh() {
    if (document.hidden) { return; }
    fetch(window.location.pathname, { headers: { "Accept": "text/html" }, cache: "no-store" })
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.text();
      })
      .then(function (html) {
        var next = new DOMParser().parseFromString(html, "text/html").getElementById("status");
        var current = document.getElementById("status");
        if (next && current) {
          current.replaceWith(next);
          live = document.getElementById("live");
          if (live) { live.textContent = "live, every " + INTERVAL_MS / 1000 + " s"; }
        }
      })
      .catch(function (error) {
        if (live) { live.textContent = "refresh failed (" + error.message + "), retrying"; }
      });
  }
  if (live) { live.textContent = "live, every " + INTERVAL_MS / 1000 + " s"; }
  window.setInterval(refresh, INTERVAL_MS);
})();
