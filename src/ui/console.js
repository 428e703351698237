// leakwatch console: keyboard shortcuts for the review queue. Served from the binary as a file
// (the Content-Security-Policy forbids inline script). Everything works without it; it only
// presses the buttons the page already has.
//   a approve · r reject · e escalate (each needs the reason typed first) · n claim next
(function () {
  'use strict';

  function typing(target) {
    if (!target || !target.tagName) return false;
    var tag = target.tagName.toUpperCase();
    return tag === 'INPUT' || tag === 'TEXTAREA' || tag === 'SELECT' || target.isContentEditable;
  }

  var decisions = { a: 'approve', r: 'reject', e: 'escalate' };

  document.addEventListener('keydown', function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
    // Letters typed into the reason field are text, not shortcuts.
    if (typing(event.target)) return;
    var key = (event.key || '').toLowerCase();

    if (decisions[key]) {
      var button = document.querySelector('button[data-decision="' + decisions[key] + '"]');
      if (!button) return;
      event.preventDefault();
      var reason = document.getElementById('reason');
      if (reason && !reason.value.trim()) {
        var hint = document.getElementById('reason-hint');
        if (hint) hint.hidden = false;
        reason.focus();
        return;
      }
      // requestSubmit keeps the browser's own validation and sends the button's value.
      if (button.form && button.form.requestSubmit) {
        button.form.requestSubmit(button);
      } else {
        button.click();
      }
    } else if (key === 'n') {
      var next = document.getElementById('claim-next');
      if (!next) return;
      event.preventDefault();
      next.click();
    }
  });

  // One submission per form: a double press must not send a decision twice.
  document.addEventListener('submit', function (event) {
    var form = event.target;
    if (form.dataset.sent === '1') {
      event.preventDefault();
      return;
    }
    form.dataset.sent = '1';
  });
  // A page restored from the back/forward cache may submit again.
  window.addEventListener('pageshow', function () {
    Array.prototype.forEach.call(document.forms, function (form) {
      delete form.dataset.sent;
    });
  });
})();
