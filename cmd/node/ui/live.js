// Keeps the page live: fetches the server-rendered panels every second and
// swaps them in. When the node does not answer, the page says so and keeps
// what it showed last.
(function () {
  "use strict";
  var panels = document.getElementById("panels");
  var live = document.getElementById("live");
  var updated = document.getElementById("updated");
  if (!panels) { return; }
  var stamp = function () {
    var at = document.getElementById("updated-at");
    if (updated) { updated.textContent = at ? at.textContent : new Date().toLocaleTimeString(); }
  };
  stamp();
  var refresh = function () {
    fetch(panels.dataset.src, { cache: "no-store" }).then(function (r) {
      return r.text().then(function (body) {
        if (r.status >= 500) { throw new Error("status " + r.status); }
        panels.innerHTML = body;
        live.classList.remove("stale");
        live.firstChild.textContent = "live · updated ";
        stamp();
      });
    }).catch(function () {
      live.classList.add("stale");
      live.firstChild.textContent = "the node does not answer · last update ";
    }).finally(function () { setTimeout(refresh, 1000); });
  };
  setTimeout(refresh, 1000);
})();
