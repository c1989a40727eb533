// The console's only script (served from our origin; the CSP allows no other).
// - A form with data-confirm asks before it is sent (disconnect, erasure, deletion).
// - A table with data-refresh="N" reloads the page after N seconds (an export being written).
"use strict";
document.addEventListener("submit", function (event) {
  var message = event.target.getAttribute("data-confirm");
  if (message && !window.confirm(message)) {
    event.preventDefault();
  }
});
document.addEventListener("DOMContentLoaded", function () {
  var refreshing = document.querySelector("[data-refresh]");
  if (refreshing) {
    var seconds = parseInt(refreshing.getAttribute("data-refresh"), 10) || 5;
    window.setTimeout(function () { window.location.reload(); }, seconds * 1000);
  }
});
