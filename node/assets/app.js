/* motcua: small progressive enhancements for the node's pages, served from the node itself.
 * Every page works without this script; it adds live procedure search on the receive form,
 * the hall board's refresh, print buttons, and the kiosk's return to a clean start screen. Written for old browsers (no modules, no fetch). */
(function () {
  'use strict';

  function ready(f) {
    if (document.readyState !== 'loading') { f(); } else { document.addEventListener('DOMContentLoaded', f); }
  }

  function get(url, done) {
    var x = new XMLHttpRequest();
    x.open('GET', url);
    x.onload = function () { done(x); };
    x.onerror = function () { done(null); };
    x.send();
  }

  ready(function () {
    var i;
    var prints = document.querySelectorAll('[data-print]');
    for (i = 0; i < prints.length; i++) {
      prints[i].addEventListener('click', function () { window.print(); });
    }

    var search = document.getElementById('procedure-search');
    if (search) {
      var target = document.getElementById(search.getAttribute('data-target'));
      var source = search.getAttribute('data-source');
      var timer = null;
      var seq = 0;
      var run = function () {
        var mine = ++seq;
        var checked = target.querySelector('input[name=procedure_code]:checked');
        var url = source + '?q=' + encodeURIComponent(search.value) +
          (checked ? '&ma=' + encodeURIComponent(checked.value) : '');
        get(url, function (x) {
          if (x && mine === seq && x.status === 200) { target.innerHTML = x.responseText; }
        });
        var hidden = document.querySelector('input[type=hidden][name=q]');
        if (hidden) { hidden.value = search.value; }
      };
      search.addEventListener('input', function () {
        clearTimeout(timer);
        timer = setTimeout(run, 250);
      });
      search.form.addEventListener('submit', function (e) {
        e.preventDefault();
        clearTimeout(timer);
        run();
      });
    }

    // The kiosk goes back to a clean start screen if a citizen walks away half-way.
    var kiosk = document.querySelector('.kiosk-form');
    if (kiosk) {
      var idle = null;
      var rearm = function () {
        clearTimeout(idle);
        idle = setTimeout(function () { window.location.replace('/danh-gia'); }, 90000);
      };
      kiosk.addEventListener('input', rearm);
      kiosk.addEventListener('click', rearm);
    }

    var board = document.querySelector('[data-refresh]');
    if (board) {
      var url = board.getAttribute('data-refresh');
      var ms = parseInt(board.getAttribute('data-interval'), 10) || 5000;
      setInterval(function () {
        get(url, function (x) {
          if (!x) { return; }
          if (x.status === 200 && (!x.responseURL || x.responseURL.indexOf(url) >= 0)) {
            board.innerHTML = x.responseText;
            board.removeAttribute('data-stale');
          } else if (x.status === 200 || x.status === 403) {
            window.location.reload();
          } else {
            board.setAttribute('data-stale', '1');
          }
        });
      }, ms);
    }
  });
})();
