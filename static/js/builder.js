/* Builder: reorder questions by drag and drop. The Move up / Move down buttons do the same
   with the keyboard (and without JavaScript); this only adds the mouse and touchpad way. */
(function () {
  "use strict";

  var dragged = null;
  var before = null;

  function list() { return document.getElementById("question-list"); }
  function order() {
    var l = list();
    return l ? Array.prototype.map.call(l.querySelectorAll(":scope > .qlist__item"), function (li) {
      return li.getAttribute("data-question-id");
    }) : [];
  }

  // Only the handle starts a drag, so selecting text in the inputs keeps working.
  document.addEventListener("pointerdown", function (event) {
    var handle = event.target.closest(".qcard__handle");
    var item = handle && handle.closest(".qlist__item");
    if (item) item.setAttribute("draggable", "true");
  });

  document.addEventListener("dragstart", function (event) {
    var item = event.target.closest && event.target.closest(".qlist__item");
    if (!item || item.getAttribute("draggable") !== "true") return;
    dragged = item;
    before = order().join(",");
    item.classList.add("is-dragging");
    event.dataTransfer.effectAllowed = "move";
    event.dataTransfer.setData("text/plain", item.getAttribute("data-question-id"));
  });

  document.addEventListener("dragover", function (event) {
    if (!dragged) return;
    var over = event.target.closest && event.target.closest(".qlist__item");
    if (!over || over === dragged || over.parentNode !== dragged.parentNode) return;
    event.preventDefault();
    var box = over.getBoundingClientRect();
    var after = event.clientY > box.top + box.height / 2;
    over.parentNode.insertBefore(dragged, after ? over.nextSibling : over);
  });

  document.addEventListener("drop", function (event) {
    if (dragged) event.preventDefault();
  });

  document.addEventListener("dragend", function () {
    if (!dragged) return;
    dragged.classList.remove("is-dragging");
    dragged.removeAttribute("draggable");
    dragged = null;
    var now = order();
    if (now.join(",") === before) return;
    save(now);
  });

  function save(ids) {
    var form = document.getElementById("reorder-form");
    if (!form) return;
    Array.prototype.forEach.call(form.querySelectorAll("input[name=order]"), function (input) { input.remove(); });
    ids.forEach(function (id) {
      var input = document.createElement("input");
      input.type = "hidden";
      input.name = "order";
      input.value = id;
      form.appendChild(input);
    });
    if (window.htmx) window.htmx.trigger(form, "submit");
    else form.submit();
  }

  // Exposed for tests and for other enhancements (e.g. a touch sort) to reuse.
  window.formwrightReorder = save;
})();
