// oidc-sidecar example SPA: no tokens in JavaScript, no MSAL. The sidecar holds the session in an HttpOnly cookie;
// this page only asks it who is signed in (/oauth2/userinfo) and calls the API on the same origin with that cookie.
(function () {
  'use strict';

  var $ = function (id) { return document.getElementById(id); };

  function pick(obj, names) {
    for (var i = 0; i < names.length; i += 1) {
      var v = obj[names[i]];
      if (v !== undefined && v !== null) return v;
    }
    return undefined;
  }

  function asList(v) {
    if (Array.isArray(v)) return v;
    if (typeof v === 'string' && v.length) return v.split(' ');
    return [];
  }

  function formatExpiry(v) {
    if (v === undefined) return 'unknown';
    var d = typeof v === 'number' ? new Date(v * 1000) : new Date(v);
    return isNaN(d.getTime()) ? String(v) : d.toISOString();
  }

  function setText(id, text) { $(id).textContent = text; }

  function showSignedOut() {
    $('signed-in').hidden = true;
    $('signed-out').hidden = false;
    var rd = window.location.pathname + window.location.search;
    $('login-link').href = '/oauth2/login?rd=' + encodeURIComponent(rd);
    document.body.dataset.state = 'signed-out';
  }

  function showUser(info) {
    var session = info.session || {};
    var roles = asList(pick(info, ['roles']));
    var groups = asList(pick(info, ['groups']));
    var scopes = asList(pick(info, ['scopes', 'scp', 'scope']));
    setText('user-name', pick(info, ['name', 'preferred_username']) || '(no name)');
    setText('user-email', pick(info, ['email', 'preferred_username']) || '(no email)');
    setText('user-sub', pick(info, ['sub', 'subject', 'oid']) || '');
    setText('user-roles', roles.join(', ') || '(none)');
    setText('user-groups-count', String(groups.length));
    setText('user-scopes', scopes.join(' ') || '(none)');
    setText('session-expiry', formatExpiry(
      pick(info, ['session_expires_at', 'expires_at', 'session_expiry', 'exp']) !== undefined
        ? pick(info, ['session_expires_at', 'expires_at', 'session_expiry', 'exp'])
        : pick(session, ['expires_at', 'exp']),
    ));
    $('signed-out').hidden = true;
    $('signed-in').hidden = false;
    document.body.dataset.state = 'signed-in';
  }

  function loadUser() {
    setText('status', 'Checking your session…');
    return fetch('/oauth2/userinfo', { credentials: 'same-origin', headers: { Accept: 'application/json' } })
      .then(function (res) {
        if (res.status === 401) { setText('status', 'Not signed in.'); showSignedOut(); return; }
        if (!res.ok) throw new Error('userinfo answered ' + res.status);
        return res.json().then(function (info) { setText('status', 'Signed in.'); showUser(info); });
      })
      .catch(function (err) {
        setText('status', 'Could not load the session: ' + err.message);
        document.body.dataset.state = 'error';
      });
  }

  function callApi() {
    var out = $('api-result');
    out.textContent = 'Calling /api/me…';
    $('api-status').textContent = '';
    return fetch('/api/me', { credentials: 'same-origin', headers: { Accept: 'application/json' } })
      .then(function (res) {
        $('api-status').textContent = String(res.status);
        return res.text().then(function (text) {
          try { out.textContent = JSON.stringify(JSON.parse(text), null, 2); } catch (e) { out.textContent = text; }
          out.dataset.status = String(res.status);
        });
      })
      .catch(function (err) {
        $('api-status').textContent = 'error';
        out.textContent = err.message;
        out.dataset.status = 'error';
      });
  }

  document.addEventListener('DOMContentLoaded', function () {
    $('call-api').addEventListener('click', callApi);
    loadUser();
  });
}());
