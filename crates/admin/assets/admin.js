// Omnihub admin: the only script. Every page works without it; with it, a page that shows
// live data (orders, stock, the inbox) refreshes its content when the event log says that
// changed, without a reload and without losing what is being typed into a form. A page whose
// live parts are marked (`data-live-part`, like the inbox's thread) refreshes only those, so
// that its forms stay as they are.
"use strict";

(function () {
  var main = document.getElementById("main");
  if (!main || !window.EventSource) return;
  var signal = main.getAttribute("data-live");
  if (!signal) return;

  var timer = null;
  var status = document.getElementById("live-status");

  // A form someone is filling in is left alone: refreshing would throw their input away.
  function busy() {
    var active = document.activeElement;
    return active && active.form && main.contains(active);
  }

  var parts = main.querySelectorAll("[data-live-part]");
  var url = main.getAttribute("data-live-url") || window.location.href;

  function swap(fresh) {
    if (!parts.length) {
      main.innerHTML = fresh.innerHTML;
      return;
    }
    parts.forEach(function (part) {
      var next = fresh.querySelector("#" + part.id);
      if (next) part.innerHTML = next.innerHTML;
    });
  }

  function refresh() {
    if (!parts.length && busy()) {
      timer = setTimeout(refresh, 2000);
      return;
    }
    fetch(url, { credentials: "same-origin", headers: { "X-Live-Refresh": "1" } })
      .then(function (response) {
        if (!response.ok) throw new Error("refresh failed: " + response.status);
        return response.text();
      })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("main");
        if (!fresh) return;
        swap(fresh);
        toLatest();
        main.classList.add("flash");
        setTimeout(function () { main.classList.remove("flash"); }, 1600);
        if (status) status.textContent = "Updated just now.";
      })
      .catch(function () { /* the next signal tries again */ });
  }

  var source = new EventSource("/admin/live");
  source.addEventListener(signal, function () {
    // Several signals in a burst make one refresh.
    clearTimeout(timer);
    timer = setTimeout(refresh, 250);
  });
  window.addEventListener("pagehide", function () { source.close(); });
})();

// Buttons that undo work ask first (cancel an order, deactivate an account).
document.addEventListener("submit", function (event) {
  var question = event.target.getAttribute("data-confirm");
  if (question && !window.confirm(question)) event.preventDefault();
});

// A conversation's thread opens at its latest message, and stays there when it grows.
function toLatest() {
  document.querySelectorAll(".thread").forEach(function (list) { list.scrollTop = list.scrollHeight; });
}
document.addEventListener("DOMContentLoaded", toLatest);

// The pick-up desk's camera: where the browser reads QR codes itself (BarcodeDetector), the
// order's pick-up code fills in the number and looks the order up. Hand scanners need none
// of this: they type what they read into the focused number field.
(function () {
  var scan = document.querySelector("[data-scan]");
  if (!scan || !("BarcodeDetector" in window) || !navigator.mediaDevices) return;
  scan.hidden = false;
  var button = scan.querySelector("button");
  var video = scan.querySelector("video");
  button.addEventListener("click", function () {
    var detector = new BarcodeDetector({ formats: ["qr_code"] });
    navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" } }).then(function (stream) {
      video.srcObject = stream;
      video.hidden = false;
      video.play();
      var look = function () {
        detector.detect(video).then(function (codes) {
          if (!codes.length) return requestAnimationFrame(look);
          stream.getTracks().forEach(function (track) { track.stop(); });
          var field = document.getElementById("desk-number");
          field.value = codes[0].rawValue;
          field.form.submit();
        }).catch(function () { requestAnimationFrame(look); });
      };
      look();
    }).catch(function () {
      button.textContent = "No camera can be used here: type the number";
      button.disabled = true;
    });
  });
})();
