// Every page: (1) on a phone, tables marked "cards" show each row as a card, so each cell
// is labelled with its column's heading (no column is silently cut off); (2) forms that
// take something away or grant a privilege ask first (data-confirm).
(function () {
  "use strict";

  document.querySelectorAll("table.cards").forEach(function (table) {
    var headings = Array.prototype.map.call(table.querySelectorAll("thead th"), function (th) {
      return th.textContent.trim();
    });
    table.querySelectorAll("tbody tr, tfoot tr").forEach(function (row) {
      Array.prototype.forEach.call(row.children, function (cell, index) {
        if (!cell.hasAttribute("data-label") && headings[index]) cell.setAttribute("data-label", headings[index]);
      });
    });
  });

  function needsConfirmation(form) {
    if (!form.dataset.confirm) return false;
    if (form.dataset.confirmRole) {
      // Only when the form would newly grant that role.
      var role = form.querySelector('select[name="role"]');
      var place = form.querySelector('select[name="institution"]');
      return !!(role && place && place.value && role.value === form.dataset.confirmRole &&
        (role.value !== form.dataset.currentRole || place.value !== form.dataset.currentPlace));
    }
    if (form.dataset.confirmAdmin === "yes") {
      var admin = form.querySelector('input[name="is_registry_admin"]');
      return !!(admin && admin.checked);
    }
    return form.dataset.confirmAdmin !== "no";
  }

  // Registered before any page script's submit handler, so a "Cancel" stops them too.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || !needsConfirmation(form)) return;
    if (!window.confirm(form.dataset.confirm)) {
      event.preventDefault();
      event.stopImmediatePropagation();
    }
  }, true);
})();
