/* Small progressive enhancement. Every page works without this file. */
(function () {
  "use strict";

  function flash(text, kind) {
    var area = document.getElementById("toasts");
    if (!area) return;
    var item = document.createElement("div");
    item.className = "flash flash--" + (kind || "info");
    item.setAttribute("role", kind === "error" ? "alert" : "status");
    var span = document.createElement("span");
    span.textContent = text;
    item.appendChild(span);
    area.appendChild(item);
    setTimeout(function () { item.remove(); }, 6000);
  }
  window.formwrightFlash = flash;

  // Copy buttons: <button data-copy="#element-id"> or data-copy-text="literal".
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy], [data-copy-text]");
    if (!button) return;
    var text = button.getAttribute("data-copy-text");
    if (text === null) {
      var source = document.querySelector(button.getAttribute("data-copy"));
      if (!source) return;
      text = source.value !== undefined ? source.value : source.textContent;
    }
    var done = function () {
      var label = button.getAttribute("data-copied-label") || "Copied!";
      var before = button.textContent;
      button.textContent = label;
      setTimeout(function () { button.textContent = before; }, 1800);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { flash("Copy failed; select the text and copy it.", "error"); });
    } else {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.style.position = "fixed";
      area.style.opacity = "0";
      document.body.appendChild(area);
      area.select();
      try { document.execCommand("copy"); done(); } catch (e) { flash("Copy failed; select the text and copy it.", "error"); }
      area.remove();
    }
  });

  // Confirmations for buttons that destroy things: <button data-confirm="Delete this?">.
  document.addEventListener("submit", function (event) {
    var submitter = event.submitter;
    var message = (submitter && submitter.getAttribute("data-confirm")) || event.target.getAttribute("data-confirm");
    if (message && !window.confirm(message)) event.preventDefault();
  }, true);

  // Dismissible flash messages.
  document.addEventListener("click", function (event) {
    var close = event.target.closest(".flash__close");
    if (close) close.closest(".flash").remove();
  });

  // Move focus to an error summary so screen readers announce it.
  document.addEventListener("DOMContentLoaded", function () {
    var summary = document.querySelector(".error-summary");
    if (summary) summary.focus();
  });

  // Server-sent toasts: the HX-Trigger header {"fw:flash": {"kind": ..., "text": ...}} (web.toast_header).
  document.addEventListener("fw:flash", function (event) {
    if (event.detail && event.detail.text) flash(event.detail.text, event.detail.kind);
  });

  // htmx: a 4xx/5xx that is not swapped (see responseHandling in base.html) still says what went wrong.
  document.addEventListener("htmx:responseError", function (event) {
    var xhr = event.detail.xhr;
    if ((xhr.getResponseHeader("HX-Trigger") || "").indexOf("fw:flash") !== -1) return;  // already toasted
    var text = "";
    try {
      var doc = new DOMParser().parseFromString(xhr.responseText, "text/html");
      var detail = doc.querySelector("[data-error-detail]");
      text = detail ? detail.textContent.trim() : "";
    } catch (e) { /* fall back below */ }
    flash(text || ("Something went wrong (" + xhr.status + "). Nothing was saved."), "error");
  });
  document.addEventListener("htmx:sendError", function () {
    flash("Could not reach the server. Check your connection and try again.", "error");
  });
})();
