// Admin queues: decide in place (no reload, no jump to the top) and select many (page.js
// asks before the decisions that take something away). Without this script every form
// still works: the server sends the browser back to the same page and item.
(function () {
  "use strict";

  var statusBox = document.getElementById("queue-status");

  function say(message, isError) {
    if (!statusBox) return;
    statusBox.textContent = message;
    statusBox.classList.toggle("flash", true);
    statusBox.classList.toggle("flash-error", !!isError);
    statusBox.classList.toggle("flash-success", !isError);
  }

  function selectedBoxes() {
    return Array.prototype.slice.call(document.querySelectorAll("input[data-select-item]:checked"));
  }

  function updateSelection() {
    var counter = document.querySelector("[data-selected-count]");
    if (counter) counter.textContent = selectedBoxes().length + " selected";
  }

  function updateCounts(counts) {
    Object.keys(counts || {}).forEach(function (queue) {
      var badge = document.querySelector('[data-count-for="' + queue + '"]');
      if (!badge) return;
      var number = badge.querySelector("[data-count]");
      if (number) number.textContent = String(counts[queue]);
      badge.hidden = !counts[queue];
    });
  }

  function markDecided(item) {
    var article = document.querySelector('[data-item="' + item.id + '"]');
    if (!article) return;
    var badge = article.querySelector("[data-status]");
    if (badge) {
      badge.textContent = item.status;
      badge.className = "badge badge-" + item.status;
    }
    article.querySelectorAll(".decide, .select-item").forEach(function (node) {
      node.remove();
    });
    article.setAttribute("data-decided", item.status);
    article.classList.add("decided");
  }

  async function submitInPlace(form, submitter) {
    if (form.id === "bulk" && selectedBoxes().length === 0) {
      say("Select at least one item first.", true);
      return;
    }
    var body = new FormData(form, submitter || undefined);
    var buttons = form.querySelectorAll("button");
    buttons.forEach(function (b) { b.disabled = true; });
    try {
      var response = await fetch(form.action, {
        method: "POST",
        body: body,
        credentials: "same-origin",
        headers: { "X-Requested-With": "fetch", Accept: "application/json" },
      });
      var answer = null;
      try { answer = await response.json(); } catch (e) { answer = null; }
      if (!response.ok || !answer || !answer.ok) {
        say((answer && answer.message) || "The decision was not saved (" + response.status + "). Try again.", true);
        return;
      }
      answer.items.forEach(markDecided);
      updateCounts(answer.counts);
      say(answer.message, false);
      if (form.id === "bulk") {
        var all = form.querySelector("[data-select-all]");
        if (all) all.checked = false;
        updateSelection();
      } else {
        var article = form.closest("[data-item]");
        if (article) article.focus({ preventScroll: true });
      }
    } catch (error) {
      say("The registry could not be reached; nothing was decided. Try again.", true);
    } finally {
      buttons.forEach(function (b) { b.disabled = false; });
    }
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement)) return;
    if (form.hasAttribute("data-inplace") && window.fetch) {
      event.preventDefault();
      submitInPlace(form, event.submitter);
    }
  });

  var selectAll = document.querySelector("[data-select-all]");
  if (selectAll) {
    var label = document.querySelector("[data-select-all-label]");
    if (label) label.hidden = false;
    selectAll.addEventListener("change", function () {
      document.querySelectorAll("input[data-select-item]").forEach(function (box) {
        box.checked = selectAll.checked;
      });
      updateSelection();
    });
  }
  document.addEventListener("change", function (event) {
    if (event.target.matches && event.target.matches("input[data-select-item]")) updateSelection();
  });
})();
