//! The pages' two static files, served by onshi itself (no external assets): the favicon and
//! `pages.js`, the one script. Every page works without the script; it adds the show button of
//! a key field and the dashboard's live update, which the operator can switch off. The Content
//! Security Policy allows scripts from onshi's own origin only (`crate::headers`).

use axum::http::header;
use axum::response::{IntoResponse, Response};

/// `GET /favicon.ico`: a 16×16 icon (a download arrow on the header's blue).
pub async fn favicon() -> Response {
    (
        [
            (header::CONTENT_TYPE, "image/x-icon"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        FAVICON,
    )
        .into_response()
}

/// `GET /assets/pages.js`.
pub async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        SCRIPT,
    )
        .into_response()
}

/// Where the script is served; every page loads it with `defer`.
pub const SCRIPT_PATH: &str = "/assets/pages.js";

const FAVICON: &[u8] = include_bytes!("favicon.ico");

/// The script. The dashboard's live update re-reads the page every `data-every` seconds and
/// swaps the blocks marked `data-live`, by id (the scroll position stays; the forms are outside
/// them), unless the operator switched it off (remembered in this browser); a session that
/// ended stops it with a note.
const SCRIPT: &str = r#"(function () {
  'use strict';
  document.querySelectorAll('button[data-show-key]').forEach(function (button) {
    var input = document.getElementById(button.getAttribute('data-show-key'));
    if (!input) { return; }
    button.hidden = false;
    button.addEventListener('click', function () {
      var show = input.type === 'password';
      input.type = show ? 'text' : 'password';
      button.setAttribute('aria-pressed', show ? 'true' : 'false');
      button.textContent = button.getAttribute(show ? 'data-label-hide' : 'data-label-show');
    });
  });

  var live = document.getElementById('live');
  if (!live || !document.querySelector('[data-live]')) { return; }
  var toggle = document.getElementById('live-toggle');
  var status = document.getElementById('live-status');
  var every = Math.max(5, parseInt(live.getAttribute('data-every'), 10) || 30) * 1000;
  var key = 'onshi-live-update';
  var timer = null;
  // Storage may be refused (a private window, a policy): then the switch lasts for the page.
  function remembered() { try { return window.localStorage.getItem(key); } catch (e) { return null; } }
  function remember(v) { try { window.localStorage.setItem(key, v); } catch (e) { /* kept for this page */ } }
  live.hidden = false;
  toggle.checked = remembered() !== 'off';
  function say(attr) { status.textContent = live.getAttribute(attr) || ''; }
  function refresh() {
    fetch(window.location.href, { credentials: 'same-origin', cache: 'no-store' })
      .then(function (r) { return r.text(); })
      .then(function (text) {
        var doc = new DOMParser().parseFromString(text, 'text/html');
        var fresh = doc.querySelectorAll('[data-live]');
        if (fresh.length === 0) { stop(); say('data-ended'); return; }
        fresh.forEach(function (block) {
          var here = document.getElementById(block.id);
          if (here) { here.innerHTML = block.innerHTML; }
        });
        var at = doc.getElementById('now');
        status.textContent = (live.getAttribute('data-updated') || '') + (at ? at.textContent : '');
      })
      .catch(function () { say('data-failed'); });
  }
  function start() { if (!timer) { timer = window.setInterval(refresh, every); } say('data-on'); }
  function stop() { if (timer) { window.clearInterval(timer); timer = null; } }
  toggle.addEventListener('change', function () {
    remember(toggle.checked ? 'on' : 'off');
    if (toggle.checked) { refresh(); start(); } else { stop(); say('data-off'); }
  });
  if (toggle.checked) { start(); } else { say('data-off'); }
})();
"#;
