/* Margo fleet manager web front end (docs/web.md).
 *
 * A single page with hash routes, served by margo-manager itself. Every API call carries
 * the bearer token the user typed on the sign-in page (kept in sessionStorage, so it is
 * gone when the tab closes). Live updates come from GET /api/v1/events read with fetch()
 * streaming, which can send the Authorization header (EventSource cannot), so the token
 * never appears in a URL.
 *
 * Text from the API is only ever inserted as text nodes (h() below), never as HTML. */
'use strict';

(function () {
  const TOKEN_KEY = 'margo-token';
  const main = document.getElementById('main');
  const nav = document.getElementById('nav');
  const session = document.getElementById('session');
  const live = document.getElementById('live');
  const announcer = document.getElementById('announce');

  /* Test hook (docs/web.md): when true the deploy form skips its own checks and sends the
   * answers as typed, so the API's field errors can be seen. */
  window.margoWeb = { skipBrowserChecks: false };

  /* ---- small DOM helpers ---------------------------------------------------------------- */

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k === 'text') el.textContent = v;
      else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  function announce(text) {
    announcer.textContent = '';
    window.setTimeout(() => { announcer.textContent = text; }, 50);
  }

  function fmtTime(iso) {
    if (!iso) return 'never';
    const d = new Date(iso);
    if (Number.isNaN(d.getTime()) || d.getTime() <= 0) return 'never';
    return d.toLocaleString();
  }

  function ago(iso) {
    if (!iso) return '';
    const t = new Date(iso).getTime();
    if (!(t > 0)) return '';
    const s = Math.max(0, Math.round((Date.now() - t) / 1000));
    if (s < 60) return s + ' s ago';
    if (s < 3600) return Math.round(s / 60) + ' min ago';
    if (s < 86400) return Math.round(s / 3600) + ' h ago';
    return Math.round(s / 86400) + ' d ago';
  }

  function timeEl(iso) {
    if (!iso || !(new Date(iso).getTime() > 0)) return h('span', {}, 'never');
    const rel = ago(iso);
    return h('time', { datetime: iso, title: iso }, fmtTime(iso) + (rel ? ' (' + rel + ')' : ''));
  }

  function fmtValue(v) {
    if (v === null || v === undefined) return '—';
    if (typeof v === 'string') return v === '' ? '""' : v;
    return JSON.stringify(v);
  }

  const STATE_CLASS = {
    installed: 'ok', running: 'ok', pending: 'info', installing: 'info', updating: 'info',
    removing: 'warn', removed: 'muted', failed: 'bad',
  };

  function stateBadge(state, extra) {
    if (!state) return h('span', { class: 'badge muted', 'data-state': 'none' }, 'awaiting report');
    return h('span', { class: 'badge ' + (STATE_CLASS[state] || 'muted'), 'data-state': state },
      state, extra || '');
  }

  function presenceBadge(dev) {
    if (dev.online === true) return h('span', { class: 'badge ok', 'data-presence': 'online' }, 'online');
    if (dev.online === false) return h('span', { class: 'badge bad', 'data-presence': 'offline' }, 'offline');
    return h('span', { class: 'badge muted', 'data-presence': 'unknown' }, 'presence unknown');
  }

  /* A monogram icon coloured from the app id (icons inside app packages are not served
   * by the manager; a data: image in metadata.catalog.application.icon is shown). */
  function appIcon(app, doc, large) {
    const name = app.name || app.id;
    let hash = 0;
    for (const ch of app.id) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
    const hue = hash % 360;
    const icon = doc && doc.metadata && doc.metadata.catalog && doc.metadata.catalog.application &&
      doc.metadata.catalog.application.icon;
    const box = h('span', {
      class: 'icon' + (large ? ' large' : ''), 'aria-hidden': 'true',
      style: null,
    });
    box.style.background = 'hsl(' + hue + ' 55% 38%)';
    if (typeof icon === 'string' && /^data:image\/(png|jpeg|gif|webp);base64,/.test(icon)) {
      box.append(h('img', { src: icon, alt: '' }));
    } else {
      const words = name.split(/[\s_-]+/).filter(Boolean);
      box.textContent = (words.length > 1 ? words[0][0] + words[1][0] : name.slice(0, 2)).toUpperCase();
    }
    return box;
  }

  /* ---- API ----------------------------------------------------------------------------- */

  class ApiError extends Error {
    constructor(status, problem) {
      super((problem && (problem.detail || problem.title)) || ('HTTP ' + status));
      this.status = status;
      this.problem = problem || {};
    }
  }

  function token() { return sessionStorage.getItem(TOKEN_KEY) || ''; }

  async function api(method, path, body) {
    const opts = { method, headers: { Authorization: 'Bearer ' + token() }, cache: 'no-store' };
    if (body !== undefined) {
      opts.headers['Content-Type'] = 'application/json';
      opts.body = JSON.stringify(body);
    }
    let resp;
    try {
      resp = await fetch('/api/v1' + path, opts);
    } catch (e) {
      throw new ApiError(0, { title: 'The manager cannot be reached', detail: String(e.message || e) });
    }
    const text = await resp.text();
    let data = null;
    if (text) {
      try { data = JSON.parse(text); } catch (e) { data = { title: 'Unreadable reply', detail: text.slice(0, 200) }; }
    }
    if (resp.status === 401) {
      signOut('The manager refused the token. Sign in again.');
      throw new ApiError(401, data);
    }
    if (!resp.ok) throw new ApiError(resp.status, data);
    return data;
  }

  function problemBox(err, heading) {
    const p = err.problem || {};
    return h('div', { class: 'problem', role: 'alert' },
      h('h2', {}, heading || 'Something went wrong'),
      h('p', {}, (p.title || 'Error') + (err.status ? ' (' + err.status + ')' : '') +
        (p.detail ? ': ' + p.detail : '')),
      Array.isArray(p.errors) && p.errors.length
        ? h('ul', {}, p.errors.map((e) => h('li', {}, h('code', {}, e.field), ' ', e.message)))
        : null);
  }

  /* ---- live event stream (fetch streaming with the Authorization header) -------------- */

  const stream = { ctrl: null, retryMs: 1000, timer: 0, connectedOnce: false };
  let pageHandler = null; /* the current page's event handler */

  function setLive(stateName, text) {
    live.dataset.state = stateName;
    live.textContent = text;
  }

  function stopEvents() {
    if (stream.ctrl) stream.ctrl.abort();
    stream.ctrl = null;
    window.clearTimeout(stream.timer);
  }

  function dispatch(block) {
    let event = 'message';
    const data = [];
    for (const line of block.split('\n')) {
      if (line === '' || line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'event') event = value;
      else if (field === 'data') data.push(value);
    }
    if (!data.length) return;
    let payload;
    try { payload = JSON.parse(data.join('\n')); } catch (e) { return; }
    if (event === 'hello') {
      setLive('live', 'live');
      stream.retryMs = 1000;
      if (stream.connectedOnce && pageHandler) pageHandler('resync', {});
      stream.connectedOnce = true;
      return;
    }
    if (pageHandler) pageHandler(event, payload);
  }

  async function startEvents() {
    stopEvents();
    if (!token()) return;
    const ctrl = new AbortController();
    stream.ctrl = ctrl;
    setLive('connecting', 'connecting');
    try {
      const resp = await fetch('/api/v1/events', {
        headers: { Authorization: 'Bearer ' + token(), Accept: 'text/event-stream' },
        signal: ctrl.signal, cache: 'no-store',
      });
      if (resp.status === 401) { signOut('The manager refused the token. Sign in again.'); return; }
      if (!resp.ok || !resp.body) throw new Error('HTTP ' + resp.status);
      const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value.replace(/\r\n?/g, '\n');
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          dispatch(block);
        }
      }
    } catch (e) {
      if (ctrl.signal.aborted) return;
    }
    if (ctrl.signal.aborted || stream.ctrl !== ctrl) return;
    /* the stream ended (manager restarted, network): try again, a little later each time */
    setLive('down', 'reconnecting');
    stream.timer = window.setTimeout(startEvents, stream.retryMs);
    stream.retryMs = Math.min(stream.retryMs * 2, 15000);
  }

  /* ---- sign in / out ------------------------------------------------------------------ */

  let signOutMessage = '';

  function signOut(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    stopEvents();
    signOutMessage = message || '';
    if (location.hash !== '#/login') location.hash = '#/login';
    else route();
  }

  function pageLogin() {
    nav.hidden = true;
    session.hidden = true;
    const err = h('p', { class: 'field-error', id: 'token-error', 'aria-live': 'assertive' });
    const input = h('input', {
      type: 'password', id: 'token', name: 'token', autocomplete: 'current-password',
      required: true, 'aria-describedby': 'token-hint token-error', spellcheck: 'false',
    });
    const form = h('form', { class: 'card', novalidate: true },
      h('div', { class: 'field' },
        h('label', { for: 'token' }, 'API token'),
        h('p', { class: 'hint', id: 'token-hint' },
          'The bearer token of this manager: the file named by api-token-file, by default ',
          h('code', {}, 'STATE-DIR/api-token'), ' (for example /var/lib/margo-manager/api-token). ',
          'It is kept in this tab only.'),
        input, err),
      h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Sign in')));
    if (signOutMessage) err.textContent = signOutMessage;
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const t = input.value.trim();
      if (!t) {
        err.textContent = 'Enter the token.';
        input.setAttribute('aria-invalid', 'true');
        input.focus();
        return;
      }
      const resp = await fetch('/api/v1/apps', { headers: { Authorization: 'Bearer ' + t }, cache: 'no-store' })
        .catch(() => null);
      if (!resp) { err.textContent = 'The manager cannot be reached.'; return; }
      if (resp.status === 401) {
        err.textContent = 'The manager refused this token.';
        input.setAttribute('aria-invalid', 'true');
        input.focus();
        return;
      }
      sessionStorage.setItem(TOKEN_KEY, t);
      signOutMessage = '';
      startEvents();
      const next = sessionStorage.getItem('margo-next') || '#/catalog';
      sessionStorage.removeItem('margo-next');
      location.hash = next;
    });
    return [h('div', { class: 'login' },
      h('h1', { tabindex: '-1' }, 'Sign in'),
      h('p', { class: 'lede' }, 'Browse the application catalog, deploy apps to your devices and follow their status.'),
      form)];
  }

  document.getElementById('logout').addEventListener('click', () => signOut('Signed out.'));
  document.getElementById('skip').addEventListener('click', (ev) => {
    ev.preventDefault();
    const h1 = main.querySelector('h1');
    (h1 || main).focus();
  });

  /* ---- catalog ------------------------------------------------------------------------- */

  function profileBadges(profiles) {
    return (profiles || []).map((p) => h('li', {}, h('span', { class: 'badge info', title: 'profile ' + p.id }, p.type)));
  }

  async function pageCatalog() {
    const { apps } = await api('GET', '/apps');
    const byId = new Map();
    for (const a of apps) {
      if (!byId.has(a.id)) byId.set(a.id, []);
      byId.get(a.id).push(a);
    }
    const cards = [];
    for (const [id, versions] of byId) {
      const app = versions[versions.length - 1]; /* newest added */
      const others = versions.slice(0, -1).map((v) => v.version);
      const titleId = 'app-' + id + '-title';
      cards.push(h('li', { class: 'card app-card', 'data-app': id, 'aria-labelledby': titleId },
        h('div', { class: 'app-head' }, appIcon(app, null, false),
          h('div', {}, h('h2', { id: titleId, class: 'h3', style: null }, app.name || id),
            h('p', { class: 'tagline' }, app.tagline || ''))),
        h('ul', { class: 'meta', 'aria-label': 'Version and profiles' },
          h('li', {}, h('span', { class: 'badge' }, 'v' + app.version)),
          profileBadges(app.profiles),
          others.length ? h('li', { class: 'small' }, 'also ' + others.join(', ')) : null),
        h('div', { class: 'actions' },
          h('a', { class: 'button', href: '#/deploy/' + encodeURIComponent(id), 'aria-label': 'Deploy ' + (app.name || id) }, 'Deploy'),
          h('a', { class: 'button secondary', href: '#/apps/' + encodeURIComponent(id), 'aria-label': 'Details of ' + (app.name || id) }, 'Details'))));
    }
    return [
      h('h1', { tabindex: '-1' }, 'Application catalog'),
      h('p', { class: 'lede' }, byId.size === 1 ? '1 application.' : byId.size + ' applications.',
        ' Read the details of an app or deploy it to your devices.'),
      cards.length ? h('ul', { class: 'grid' }, cards)
        : h('p', { class: 'empty' }, 'The catalog is empty. Add an app with ', h('code', {}, 'margoctl app add margo.yaml'), '.'),
    ];
  }

  /* ---- app details --------------------------------------------------------------------- */

  /* The rules of a configuration schema as short phrases. */
  function rulesText(s) {
    if (!s) return [];
    const r = [];
    if (s.dataType) r.push(s.dataType + (s.multiselect ? ' (multiselect)' : ''));
    if (s.allowEmpty === false) r.push('required');
    else if (s.allowEmpty === true) r.push('may be empty');
    if (s.minLength !== undefined && s.maxLength !== undefined) r.push(s.minLength + '–' + s.maxLength + ' characters');
    else if (s.minLength !== undefined) r.push('at least ' + s.minLength + ' characters');
    else if (s.maxLength !== undefined) r.push('at most ' + s.maxLength + ' characters');
    if (s.minValue !== undefined && s.maxValue !== undefined) r.push('from ' + s.minValue + ' to ' + s.maxValue);
    else if (s.minValue !== undefined) r.push('at least ' + s.minValue);
    else if (s.maxValue !== undefined) r.push('at most ' + s.maxValue);
    if (s.minPrecision !== undefined) r.push('at least ' + s.minPrecision + ' decimal places');
    if (s.maxPrecision !== undefined) r.push('at most ' + s.maxPrecision + ' decimal places');
    if (s.regexMatch) r.push('matches ' + s.regexMatch);
    if (Array.isArray(s.options)) r.push('one of ' + s.options.map(fmtValue).join(', '));
    return r;
  }

  function resourcesText(req) {
    if (!req || typeof req !== 'object') return '—';
    const parts = [];
    for (const [k, v] of Object.entries(req)) {
      if (v && typeof v === 'object' && !Array.isArray(v)) {
        parts.push(k + ': ' + Object.entries(v).map(([a, b]) => a + ' ' + fmtValue(b)).join(', '));
      } else if (Array.isArray(v)) {
        parts.push(k + ': ' + v.map((x) => (typeof x === 'object' ? (x.type || JSON.stringify(x)) : x)).join(', '));
      } else {
        parts.push(k + ': ' + fmtValue(v));
      }
    }
    return parts.length ? parts.join('; ') : '—';
  }

  function versionPicker(app, base) {
    if (!app.versions || app.versions.length < 2) return null;
    const sel = h('select', { id: 'version' }, app.versions.map((v) =>
      h('option', { value: v, selected: v === app.version }, v)));
    sel.addEventListener('change', () => {
      location.hash = base + encodeURIComponent(app.id) + '?version=' + encodeURIComponent(sel.value);
    });
    return h('div', { class: 'field' }, h('label', { for: 'version' }, 'Version'), sel);
  }

  function questionsBySection(questions) {
    const sections = new Map();
    for (const q of questions || []) {
      if (!sections.has(q.section)) sections.set(q.section, []);
      sections.get(q.section).push(q);
    }
    return sections;
  }

  async function pageApp(id, params) {
    const v = params.get('version');
    const app = await api('GET', '/apps/' + encodeURIComponent(id) + (v ? '?version=' + encodeURIComponent(v) : ''));
    const doc = app.document || {};
    const meta = doc.metadata || {};
    const catalog = meta.catalog || {};
    const orgs = (catalog.organization || []).map((o) => o.name).filter(Boolean);
    const configurable = new Set((app.questions || []).map((q) => q.parameter));
    const profiles = doc.deploymentProfiles || [];
    const parameters = Object.entries(doc.parameters || {});
    const deployHref = '#/deploy/' + encodeURIComponent(app.id) + '?version=' + encodeURIComponent(app.version);
    const out = [
      h('p', { class: 'crumbs' }, h('a', { href: '#/catalog' }, 'Catalog'), ' › ', app.name || app.id),
      h('div', { class: 'app-head' }, appIcon(app, doc, true),
        h('div', {}, h('h1', { tabindex: '-1' }, app.name || app.id),
          h('p', { class: 'tagline' }, app.tagline || ''))),
      h('ul', { class: 'meta', 'aria-label': 'Version and profiles' },
        h('li', {}, h('span', { class: 'badge' }, 'v' + app.version)), profileBadges(app.profiles),
        h('li', { class: 'small' }, 'id ', h('code', {}, app.id)),
        orgs.length ? h('li', { class: 'small' }, 'by ' + orgs.join(', ')) : null),
      h('p', {}, app.description || ''),
      versionPicker(app, '#/apps/'),
      h('div', { class: 'actions' }, h('a', { class: 'button', href: deployHref }, 'Deploy version ' + app.version)),
      h('h2', {}, 'Deployment profiles'),
      h('div', { class: 'table-wrap' }, h('table', { class: 'stack' },
        h('thead', {}, h('tr', {}, h('th', {}, 'Profile'), h('th', {}, 'Type'), h('th', {}, 'Components'), h('th', {}, 'Required resources'))),
        h('tbody', {}, profiles.map((p) => h('tr', {},
          h('td', { 'data-label': 'Profile' }, h('code', {}, p.id || '—')),
          h('td', { 'data-label': 'Type' }, p.type),
          h('td', { 'data-label': 'Components' }, (p.components || []).map((c) => c.name).join(', ')),
          h('td', { 'data-label': 'Required resources' }, resourcesText(p.requiredResources))))))),
      h('h2', {}, 'Parameters'),
      parameters.length ? h('div', { class: 'table-wrap' }, h('table', { class: 'stack' },
        h('thead', {}, h('tr', {}, h('th', {}, 'Parameter'), h('th', {}, 'Default'), h('th', {}, 'Applied to'), h('th', {}, 'Asked'))),
        h('tbody', {}, parameters.map(([name, p]) => h('tr', {},
          h('td', { 'data-label': 'Parameter' }, h('code', {}, name)),
          h('td', { 'data-label': 'Default' }, fmtValue(p.value)),
          h('td', { 'data-label': 'Applied to' }, (p.targets || []).map((t) =>
            t.pointer + ' → ' + (t.components || []).join(', ')).join('; ')),
          h('td', { 'data-label': 'Asked' }, configurable.has(name) ? 'yes' : 'no (fixed)'))))))
        : h('p', { class: 'empty' }, 'This app has no parameters.'),
      h('h2', {}, 'Configuration questions'),
    ];
    const sections = questionsBySection(app.questions);
    if (!sections.size) out.push(h('p', { class: 'empty' }, 'Nothing to configure: the defaults are used.'));
    for (const [section, qs] of sections) {
      out.push(h('h3', {}, section || 'Settings'));
      out.push(h('div', { class: 'table-wrap' }, h('table', { class: 'stack' },
        h('thead', {}, h('tr', {}, h('th', {}, 'Setting'), h('th', {}, 'Parameter'), h('th', {}, 'Rules'), h('th', {}, 'Default'))),
        h('tbody', {}, qs.map((q) => h('tr', {},
          h('td', { 'data-label': 'Setting' }, h('strong', {}, q.name || q.parameter),
            q.immutable ? [' ', h('span', { class: 'badge warn' }, 'set once')] : null,
            q.description ? h('div', { class: 'small' }, q.description) : null),
          h('td', { 'data-label': 'Parameter' }, h('code', {}, q.parameter)),
          h('td', { 'data-label': 'Rules' }, rulesText(q.schema).join(' · ')),
          h('td', { 'data-label': 'Default' }, fmtValue(q.default))))))));
    }
    return out;
  }

  /* ---- deploy -------------------------------------------------------------------------- */

  function isEmptySchema(s) { return !s || typeof s !== 'object'; }

  function utf8Chars(text) { return Array.from(text).length; }

  function decimals(text) {
    if (/[eE]/.test(text)) return 0;
    const dot = text.indexOf('.');
    return dot < 0 ? 0 : text.length - dot - 1;
  }

  /* Converts and checks one answer like the manager does (mgo_schema_check); the messages
   * are the manager's. Returns {value, omit, errors[]}. */
  function checkOne(s, raw) {
    const errors = [];
    const type = (s.dataType || 'string').replace(/^array\[(.*)\]$/, '$1');
    let value = raw;
    if (type === 'string') {
      const n = utf8Chars(raw);
      if (s.minLength !== undefined && n < s.minLength) errors.push('must be at least ' + s.minLength + ' characters (minLength)');
      if (s.maxLength !== undefined && n > s.maxLength) errors.push('must be at most ' + s.maxLength + ' characters (maxLength)');
      if (s.regexMatch) {
        let re = null;
        try { re = new RegExp(s.regexMatch); } catch (e) { re = null; }
        if (re && !re.test(raw)) errors.push('must match the pattern ' + s.regexMatch + ' (regexMatch)');
      }
    } else if (type === 'integer') {
      if (!/^[+-]?\d+$/.test(raw)) return { value: raw, errors: ['must be an integer'] };
      value = Number(raw);
    } else if (type === 'double') {
      if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(raw)) return { value: raw, errors: ['must be a number'] };
      value = Number(raw);
      const places = decimals(raw.replace(/^[+-]/, ''));
      if (s.minPrecision !== undefined && places < s.minPrecision) errors.push('needs at least ' + s.minPrecision + ' decimal places (minPrecision)');
      if (s.maxPrecision !== undefined && places > s.maxPrecision) errors.push('allows at most ' + s.maxPrecision + ' decimal places (maxPrecision)');
    } else if (type === 'boolean') {
      if (raw !== 'true' && raw !== 'false') return { value: raw, errors: ['must be true or false'] };
      value = raw === 'true';
    }
    if (type === 'integer' || type === 'double') {
      if (s.minValue !== undefined && value < s.minValue) errors.push('must be at least ' + s.minValue + ' (minValue)');
      if (s.maxValue !== undefined && value > s.maxValue) errors.push('must be at most ' + s.maxValue + ' (maxValue)');
    }
    if (Array.isArray(s.options) && !s.options.some((o) => o === value || (typeof o === 'number' && Number(o) === Number(value)))) {
      errors.push('is not one of the allowed options');
    }
    return { value, errors };
  }

  /* One answer of the form: {omit} (use the default), or {value, errors}. */
  function checkAnswer(q, raw) {
    const s = isEmptySchema(q.schema) ? {} : q.schema;
    const wantsArray = /^array\[/.test(s.dataType || '') || s.multiselect;
    const empty = Array.isArray(raw) ? raw.length === 0 : raw === '';
    if (empty) {
      /* a sensitive field is never prefilled: left empty, it keeps the app's default */
      if (q.sensitive && q.default !== null && q.default !== undefined) return { omit: true, errors: [] };
      if (s.allowEmpty === false) return { value: raw, errors: ['a value is required (allowEmpty: false)'] };
      if ((s.dataType || 'string') === 'string' && !wantsArray) return { value: '', errors: [] };
      return { omit: true, errors: [] };
    }
    if (wantsArray) {
      const items = Array.isArray(raw) ? raw : raw.split(',').map((x) => x.trim());
      const value = [];
      const errors = [];
      items.forEach((item) => {
        const r = checkOne(s, item);
        value.push(r.value);
        errors.push(...r.errors);
      });
      return { value, errors };
    }
    return checkOne(s, raw);
  }

  function fieldId(parameter) { return 'q-' + parameter.replace(/[^A-Za-z0-9_-]/g, '_'); }

  function questionField(q) {
    const s = isEmptySchema(q.schema) ? {} : q.schema;
    const id = fieldId(q.parameter);
    const def = q.default;
    const described = [id + '-hint', id + '-rules', id + '-error'].join(' ');
    const type = s.dataType || 'string';
    let control;
    let read;
    if (s.multiselect && Array.isArray(s.options)) {
      const boxes = s.options.map((o, i) => h('label', { class: 'check' },
        h('input', { type: 'checkbox', name: id, value: String(o), id: id + '-' + i,
          checked: Array.isArray(def) && def.includes(o) }), fmtValue(o)));
      control = h('div', { id, role: 'group', 'aria-labelledby': id + '-label', 'aria-describedby': described }, boxes);
      read = () => Array.from(control.querySelectorAll('input:checked')).map((x) => x.value);
    } else if (Array.isArray(s.options) || type === 'boolean') {
      const options = Array.isArray(s.options) ? s.options : [true, false];
      const select = h('select', { id, name: q.parameter, 'aria-describedby': described },
        (def === null || def === undefined) || s.allowEmpty !== false
          ? h('option', { value: '', selected: def === null || def === undefined }, s.allowEmpty === false ? 'Choose…' : '(not set)')
          : null,
        options.map((o) => h('option', { value: String(o), selected: def !== null && def !== undefined && String(def) === String(o) }, fmtValue(o))));
      control = select;
      read = () => select.value;
    } else {
      const hidden = q.sensitive === true;
      const input = h('input', {
        type: hidden ? 'password' : 'text', id, name: q.parameter, 'aria-describedby': described,
        autocomplete: hidden ? 'new-password' : 'off',
        placeholder: hidden && def !== null && def !== undefined ? '(hidden; empty keeps the default)' : null,
        inputmode: type === 'integer' ? 'numeric' : type === 'double' ? 'decimal' : null,
        spellcheck: 'false',
        'aria-required': s.allowEmpty === false ? 'true' : null,
      });
      if (!hidden && def !== null && def !== undefined) input.value = Array.isArray(def) ? def.join(', ') : String(def);
      control = input;
      read = () => input.value.trim() === '' && type !== 'string' ? '' : (type === 'string' ? input.value : input.value.trim());
    }
    const wrap = h('div', { class: 'field', 'data-parameter': q.parameter },
      h('label', { for: control.tagName === 'DIV' ? null : id, id: id + '-label' }, q.name || q.parameter,
        s.allowEmpty === false ? h('span', { 'aria-hidden': 'true' }, ' *') : null,
        q.immutable ? [' ', h('span', { class: 'badge warn' }, 'set once')] : null),
      h('p', { class: 'hint', id: id + '-hint' }, q.description || '', ' ', h('code', { class: 'small' }, q.parameter)),
      control,
      h('p', { class: 'rules', id: id + '-rules' }, rulesText(s).join(' · ')),
      h('p', { class: 'field-error', id: id + '-error' }));
    return { q, id, wrap, control, read };
  }

  function setFieldError(f, messages, source) {
    const el = document.getElementById(f.id + '-error');
    el.textContent = messages.join('; ');
    el.dataset.source = messages.length ? source : '';
    const ctl = f.control.tagName === 'DIV' ? f.control : f.control;
    if (messages.length) ctl.setAttribute('aria-invalid', 'true');
    else ctl.removeAttribute('aria-invalid');
  }

  async function pageDeploy(id, params) {
    const v = params.get('version');
    const q = v ? '&version=' + encodeURIComponent(v) : '';
    const [app, devs] = await Promise.all([
      api('GET', '/apps/' + encodeURIComponent(id) + (v ? '?version=' + encodeURIComponent(v) : '')),
      api('GET', '/devices?compatible=' + encodeURIComponent(id) + q),
    ]);
    const compatible = devs.devices.filter((d) => d.compatible);
    const others = devs.devices.filter((d) => !d.compatible);
    const summary = h('div', { id: 'form-problems', tabindex: '-1' });
    const devError = h('p', { class: 'field-error', id: 'devices-error' });
    const deviceBoxes = compatible.map((d) => h('li', { class: 'device-option' },
      h('label', { class: 'check' },
        h('input', { type: 'checkbox', name: 'device', value: d.id, id: 'dev-' + d.id, 'aria-describedby': 'devices-error' }),
        h('span', {}, h('strong', {}, d.id), ' ', presenceBadge(d),
          h('span', { class: 'small', style: null }, h('br'),
            [d.vendor, d.modelNumber].filter(Boolean).join(' '), ' · profile ', d.profile,
            ' · ', d.deployments === 1 ? '1 deployment' : d.deployments + ' deployments')))));
    const devicesFs = h('fieldset', { id: 'devices' },
      h('legend', {}, 'Target devices'),
      compatible.length ? h('ul', { class: 'device-list' }, deviceBoxes)
        : h('p', { class: 'empty' }, 'No device matches this app yet.'),
      devError);
    const notMatching = h('section', { 'aria-labelledby': 'incompatible-title' },
      h('h2', { id: 'incompatible-title' }, 'Devices that do not match'),
      others.length ? h('ul', { class: 'device-list' }, others.map((d) => h('li', { class: 'device-option incompatible', 'data-device': d.id },
        h('strong', {}, d.id), ' ', presenceBadge(d),
        h('p', { class: 'reason' }, d.reason || 'not compatible'))))
        : h('p', { class: 'empty' }, 'Every known device matches.'));

    const fields = (app.questions || []).map(questionField);
    const sections = questionsBySection(app.questions);
    const fsList = [];
    for (const [section, qs] of sections) {
      fsList.push(h('fieldset', {}, h('legend', {}, section || 'Settings'),
        qs.map((qq) => fields.find((f) => f.q === qq).wrap)));
    }
    const submit = h('button', { type: 'submit', id: 'deploy' }, 'Deploy');
    const form = h('form', { novalidate: true, 'aria-labelledby': 'deploy-title' },
      summary,
      h('div', { class: 'deploy-layout' },
        h('div', {}, devicesFs, notMatching),
        h('div', {},
          fsList.length ? fsList : h('p', { class: 'notice' }, 'This app has no configuration questions.'),
          h('div', { class: 'actions' }, submit,
            h('a', { href: '#/apps/' + encodeURIComponent(app.id) + '?version=' + encodeURIComponent(app.version) }, 'App details')))));

    function showProblems(heading, intro, items, source) {
      summary.replaceChildren(h('div', { class: 'problem', role: 'alert', 'data-source': source },
        h('h2', {}, heading),
        intro ? h('p', {}, intro) : null,
        h('ul', {}, items.map((it) => h('li', {}, it.href ? h('a', { href: '#', 'data-focus': it.href }, it.label) : it.label, ': ', it.message)))));
      for (const a of summary.querySelectorAll('a[data-focus]')) {
        a.addEventListener('click', (ev) => {
          ev.preventDefault();
          const target = document.getElementById(a.dataset.focus);
          if (target) target.focus();
        });
      }
      summary.focus();
    }

    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      summary.replaceChildren();
      devError.textContent = '';
      const chosen = Array.from(devicesFs.querySelectorAll('input[name=device]:checked')).map((x) => x.value);
      const answers = {};
      const problems = [];
      for (const f of fields) {
        const r = checkAnswer(f.q, f.read());
        setFieldError(f, window.margoWeb.skipBrowserChecks ? [] : r.errors, 'browser');
        if (r.errors.length) {
          problems.push({ label: f.q.name || f.q.parameter, href: f.control.querySelector ? (f.control.tagName === 'DIV' ? f.id + '-0' : f.id) : f.id, message: r.errors.join('; ') });
        }
        if (!r.omit) answers[f.q.parameter] = r.value;
      }
      if (!chosen.length) {
        devError.textContent = 'Choose at least one device.';
        devError.dataset.source = 'browser';
        problems.push({ label: 'Target devices', href: compatible.length ? 'dev-' + compatible[0].id : null, message: 'choose at least one device' });
      }
      if (problems.length && (!window.margoWeb.skipBrowserChecks || !chosen.length)) {
        showProblems(problems.length === 1 ? 'Please fix 1 answer' : 'Please fix ' + problems.length + ' answers',
          'Nothing was sent to the manager yet.', problems, 'browser');
        return;
      }
      submit.disabled = true;
      submit.textContent = 'Deploying…';
      try {
        const res = await api('POST', '/deployments', { app: app.id, version: app.version, devices: chosen, parameters: answers });
        const ids = res.deployments.map((d) => d.id);
        announce('Deployed ' + (app.name || app.id) + ' to ' + chosen.join(', '));
        location.hash = '#/deployments?fresh=' + ids.map(encodeURIComponent).join(',');
      } catch (err) {
        submit.disabled = false;
        submit.textContent = 'Deploy';
        if (err.status === 401) return;
        const p = err.problem || {};
        const items = [];
        for (const e of Array.isArray(p.errors) ? p.errors : []) {
          const m = /^parameters\.([^[\]]+)/.exec(e.field || '');
          const f = m && fields.find((x) => x.q.parameter === m[1]);
          if (f) {
            const el = document.getElementById(f.id + '-error');
            const prev = el.textContent ? [el.textContent] : [];
            setFieldError(f, prev.concat(e.message), 'api');
            items.push({ label: f.q.name || f.q.parameter, href: f.control.tagName === 'DIV' ? f.id + '-0' : f.id, message: e.message });
          } else if (/^devices/.test(e.field || '')) {
            devError.textContent = (devError.textContent ? devError.textContent + '; ' : '') + e.message;
            devError.dataset.source = 'api';
            items.push({ label: e.field, href: null, message: e.message });
          } else {
            items.push({ label: e.field || 'request', href: null, message: e.message });
          }
        }
        showProblems('The manager refused the deployment',
          (p.title || 'Error') + (err.status ? ' (' + err.status + ')' : '') + (p.detail ? ': ' + p.detail : '') + '.',
          items.length ? items : [{ label: 'request', message: err.message }], 'api');
      }
    });

    return [
      h('p', { class: 'crumbs' }, h('a', { href: '#/catalog' }, 'Catalog'), ' › ',
        h('a', { href: '#/apps/' + encodeURIComponent(app.id) }, app.name || app.id), ' › Deploy'),
      h('div', { class: 'app-head' }, appIcon(app, app.document, false),
        h('div', {}, h('h1', { tabindex: '-1', id: 'deploy-title' }, 'Deploy ' + (app.name || app.id) + ' ' + app.version),
          h('p', { class: 'tagline' }, app.tagline || ''))),
      versionPicker(app, '#/deploy/'),
      h('p', { class: 'lede' }, compatible.length + ' of ' + devs.devices.length + ' devices match. Choose where to deploy and answer the questions; the manager checks the answers again.'),
      form,
    ];
  }

  /* ---- deployments (live) -------------------------------------------------------------- */

  function errorText(e) {
    if (!e) return null;
    return h('span', { class: 'error' }, h('strong', {}, 'Error ', e.code || '?'), ': ', e.message || '',
      e.source ? h('span', { class: 'small' }, ' (' + e.source + ')') : null);
  }

  function deploymentCard(d, st, appNames, fresh) {
    const doc = st && st.status;
    const comps = doc && Array.isArray(doc.components) ? doc.components : [];
    const overallErr = doc && doc.status && doc.status.error;
    const stale = doc && doc.adoptedManifestVersion !== undefined && doc.adoptedManifestVersion < d.manifestVersion;
    return h('article', {
      class: 'card deployment' + (fresh ? ' fresh' : ''), id: 'dep-' + d.id, 'data-deployment': d.id,
      'data-state': d.state || '', 'aria-labelledby': 'dep-' + d.id + '-title',
    },
    h('header', {},
      h('h3', { id: 'dep-' + d.id + '-title' }, (appNames.get(d.app) || d.app) + ' ' + d.version),
      stateBadge(d.state),
      d.desired !== 'present' ? h('span', { class: 'badge warn' }, d.desired) : null,
      fresh ? h('span', { class: 'badge info' }, 'new') : null),
    h('p', { class: 'small' }, 'Deployment ', h('code', {}, d.id), ' · ', d.profileType, ' · manifest ', String(d.manifestVersion),
      ' · reported ', st ? timeEl(st.receivedAt) : 'not yet',
      stale ? ' · this report is about an older revision' : ''),
    overallErr ? h('p', {}, errorText(overallErr)) : null,
    comps.length ? h('div', { class: 'table-wrap' }, h('table', { class: 'stack' },
      h('caption', { class: 'visually-hidden' }, 'Components of ' + (appNames.get(d.app) || d.app) + ' on ' + d.device),
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Component'), h('th', { scope: 'col' }, 'State'), h('th', { scope: 'col' }, 'Error'))),
      h('tbody', {}, comps.map((c) => h('tr', { 'data-component': c.name },
        h('td', { 'data-label': 'Component' }, h('code', {}, c.name)),
        h('td', { 'data-label': 'State', class: 'component-state' }, stateBadge(c.state)),
        h('td', { 'data-label': 'Error' }, c.error ? errorText(c.error) : '—'))))))
      : h('p', { class: 'empty' }, 'Waiting for the device to report on its components.'));
  }

  /* ---- paged lists (docs/web.md "Deployments", "Devices") ------------------------------- */

  /* Rows per page: the pages ask the API for one page at a time (keyset pagination, ?limit=
   * and ?after=) and never render more. */
  const PAGE_ROWS = 50;
  const DEP_STATES = ['pending', 'installing', 'installed', 'failed', 'removing', 'removed', 'unreported'];

  /* GET for the paged pages' many small requests: one whose connection failed (status 0, e.g.
   * a kept-alive connection the manager closed as the request went out) is sent once more. */
  async function pageGet(path) {
    try {
      return await api('GET', path);
    } catch (err) {
      if (err.status !== 0) throw err;
      await new Promise((r) => window.setTimeout(r, 200));
      return api('GET', path);
    }
  }

  /* fn(item) for every item, at most 4 at a time (a page asks about each of its rows'
   * devices: the manager answers them one after the other anyway); results in item order. */
  async function mapFew(items, fn) {
    const out = new Array(items.length);
    let next = 0;
    async function worker() {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]);
      }
    }
    await Promise.all([0, 1, 2, 3].map(worker));
    return out;
  }

  /* Previous/next navigation over a keyset-paged list: cursors[i] is the "after" of page i
   * (the "next" the API answered on page i - 1). onMove() loads and renders the page. */
  function makePager(what) {
    const p = { cursors: [''], index: 0, next: null, onMove: null };
    const prev = h('button', { type: 'button', class: 'secondary', 'data-page': 'previous' }, 'Previous page');
    const next = h('button', { type: 'button', class: 'secondary', 'data-page': 'next' }, 'Next page');
    const info = h('span', { class: 'small', 'data-page': 'info' });
    p.el = h('nav', { class: 'actions pager', 'aria-label': what + ' pages' }, prev, info, next);
    p.after = () => p.cursors[p.index];
    p.reset = () => { p.cursors = ['']; p.index = 0; };
    p.show = (reply, rows) => {
      p.next = reply.next || null;
      prev.disabled = p.index === 0;
      next.disabled = !p.next;
      info.textContent = 'Page ' + (p.index + 1) + ' · ' + rows + ' ' + what.toLowerCase();
      p.el.hidden = p.index === 0 && !p.next;
    };
    async function move(delta) {
      if (delta > 0) {
        if (!p.next) return;
        p.cursors.length = p.index + 1;
        p.cursors.push(p.next);
      } else if (p.index === 0) return;
      p.index += delta;
      await p.onMove();
      announce('Page ' + (p.index + 1));
    }
    prev.addEventListener('click', () => move(-1));
    next.addEventListener('click', () => move(1));
    return p;
  }

  /* The filter form of a paged list: fields [{name, label, hint, options}] (options: a
   * select, else a text input); onApply() is called with the values on submit. An API
   * problem about a field is shown at the form (showProblem). */
  function filterForm(what, fields, values, onApply) {
    const error = h('p', { class: 'field-error', id: 'filter-error', 'aria-live': 'assertive' });
    const inputs = new Map();
    const boxes = fields.map((f) => {
      const id = 'filter-' + f.name;
      const input = f.options
        ? h('select', { id, name: f.name }, f.options.map(([v, text]) => h('option', { value: v, selected: values[f.name] === v }, text)))
        : h('input', { type: 'text', id, name: f.name, spellcheck: 'false', autocomplete: 'off', value: values[f.name] || '',
          'aria-describedby': (f.hint ? id + '-hint ' : '') + 'filter-error' });
      inputs.set(f.name, input);
      return h('div', { class: 'field' }, h('label', { for: id }, f.label),
        f.hint ? h('p', { class: 'hint', id: id + '-hint' }, f.hint) : null, input);
    });
    const form = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter ' + what.toLowerCase(), novalidate: true },
      h('div', { class: 'actions' }, boxes, h('button', { type: 'submit' }, 'Filter')), error);
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const v = {};
      for (const [name, input] of inputs) v[name] = input.value.trim();
      await onApply(v);
    });
    form.showProblem = (err) => {
      const errs = (err && err.problem && Array.isArray(err.problem.errors)) ? err.problem.errors : [];
      for (const input of inputs.values()) input.removeAttribute('aria-invalid');
      if (!err) { error.textContent = ''; return; }
      for (const e of errs) if (inputs.has(e.field)) inputs.get(e.field).setAttribute('aria-invalid', 'true');
      error.textContent = errs.length ? errs.map((e) => e.field + ': ' + e.message).join('; ')
        : (err.problem.detail || err.message);
    };
    return form;
  }

  async function pageDeployments(params) {
    const fresh = (params.get('fresh') || '').split(',').filter(Boolean);
    const freshSet = new Set(fresh);
    const root = h('div', { id: 'deployments' });
    const pager = makePager('Deployments');
    const filter = { state: params.get('state') || '', app: params.get('app') || '', selector: params.get('selector') || '' };
    const model = { deps: new Map(), status: new Map(), devices: new Map(), appNames: new Map() };
    const apps = (await pageGet('/apps')).apps;
    model.appNames = new Map(apps.map((a) => [a.id, a.name]));

    async function loadDevices(devIds) {
      const both = await mapFew(devIds, (id) => Promise.all([
        pageGet('/devices/' + encodeURIComponent(id)).catch(() => ({ id, online: null })),
        pageGet('/status?device=' + encodeURIComponent(id))]));
      const devs = both.map(([d]) => d);
      const stats = both.map(([, st]) => st);
      model.devices = new Map(devs.map((d) => [d.id, d]));
      model.status = new Map(stats.flatMap((s) => s.status).map((s) => [s.deploymentId, s]));
    }

    /* One page of the list (or, after a deploy, the deployments just created: at most one
     * page of them), the devices they run on and their newest reports. */
    async function load() {
      let rows;
      if (fresh.length) {
        rows = await mapFew(fresh.slice(0, PAGE_ROWS), (id) => pageGet('/deployments/' + encodeURIComponent(id)));
      } else {
        const q = new URLSearchParams({ limit: String(PAGE_ROWS) });
        for (const k of ['state', 'app', 'selector']) if (filter[k]) q.set(k, filter[k]);
        if (pager.after()) q.set('after', pager.after());
        const reply = await pageGet('/deployments?' + q);
        rows = reply.deployments;
        pager.show(reply, rows.length);
      }
      model.deps = new Map(rows.map((d) => [d.id, d]));
      await loadDevices([...new Set(rows.map((d) => d.device))]);
    }

    function deviceHeader(devId) {
      const dev = model.devices.get(devId) || { id: devId, online: null };
      return h('header', { id: 'group-' + devId + '-head' },
        h('h2', {}, devId), presenceBadge(dev),
        h('span', { class: 'small' }, 'last seen ', timeEl(dev.lastSeen)));
    }

    function render() {
      const groups = new Map();
      for (const d of model.deps.values()) {
        if (!groups.has(d.device)) groups.set(d.device, []);
        groups.get(d.device).push(d);
      }
      root.dataset.rows = String(model.deps.size);
      if (!groups.size) {
        const filtered = filter.state || filter.app || filter.selector;
        /* a selector's page may be empty with a next: the API examined a bounded number of rows */
        root.replaceChildren(pager.next && !fresh.length ? h('p', { class: 'empty' }, 'No deployment on this page matches; Next page looks further.')
          : filtered ? h('p', { class: 'empty' }, 'No deployment matches these filters.')
          : h('p', { class: 'empty' }, 'Nothing is deployed. ', h('a', { href: '#/catalog' }, 'Pick an app in the catalog'), '.'));
        return;
      }
      root.replaceChildren(...[...groups.keys()].map((devId) => h('section', {
        class: 'device-group', id: 'group-' + devId, 'data-device': devId, 'aria-labelledby': 'group-' + devId + '-title',
      }, (() => { const hd = deviceHeader(devId); hd.querySelector('h2').id = 'group-' + devId + '-title'; return hd; })(),
      groups.get(devId).map((d) => deploymentCard(d, model.status.get(d.id), model.appNames, freshSet.has(d.id))))));
    }

    const form = filterForm('Deployments', [
      { name: 'state', label: 'State', options: [['', 'any state'], ...DEP_STATES.map((s) => [s, s])] },
      { name: 'app', label: 'App', options: [['', 'any app'], ...apps.map((a) => [a.id, a.name || a.id])] },
      { name: 'selector', label: 'Device labels', hint: 'A selector, e.g. site=plant-7,tier!=canary' },
    ], filter, async (v) => {
      const before = { ...filter };
      Object.assign(filter, v);
      pager.reset();
      try {
        await load();
        form.showProblem(null);
        render();
        announce(model.deps.size + ' deployments on this page');
      } catch (err) {
        Object.assign(filter, before);
        form.showProblem(err);
      }
    });
    pager.onMove = async () => { await load(); render(); };

    await load();
    render();

    /* A report about a deployment not on this page may move it onto the page (a new one,
     * a filter by state): the page (one page) is asked again, at most once a second. */
    let reloadTimer = 0;
    function reloadSoon(handler) {
      if (reloadTimer) return;
      reloadTimer = window.setTimeout(async () => {
        reloadTimer = 0;
        if (pageHandler !== handler) return;
        try { await load(); render(); } catch (err) { /* asked again with the next event */ }
      }, 1000);
    }

    const handler = async (event, data) => {
      if (event === 'resync') { await load(); render(); return; }
      if (event === 'status' && !model.deps.has(data.deploymentId)) {
        if (!fresh.length) reloadSoon(handler);
        return;
      }
      if (event === 'status') {
        const d = model.deps.get(data.deploymentId);
        d.state = data.state;
        if (data.desired) d.desired = data.desired;
        if (data.manifestVersion) d.manifestVersion = data.manifestVersion;
        model.status.set(d.id, { deploymentId: d.id, deviceId: d.device, state: data.state, receivedAt: data.receivedAt, status: data.status });
        const old = document.getElementById('dep-' + d.id);
        const card = deploymentCard(d, model.status.get(d.id), model.appNames, freshSet.has(d.id));
        card.classList.add('changed');
        if (old) old.replaceWith(card);
        else render();
        announce((model.appNames.get(d.app) || d.app) + ' on ' + d.device + ': ' + data.state);
      } else if (event === 'presence' || event === 'capabilities') {
        const dev = model.devices.get(data.deviceId);
        if (!dev) return; /* not on this page */
        if (event === 'presence') {
          dev.online = data.online;
          dev.boot = data.boot;
          dev.lastSeen = new Date().toISOString();
        }
        const head = document.getElementById('group-' + data.deviceId + '-head');
        if (head) {
          const fresher = deviceHeader(data.deviceId);
          fresher.querySelector('h2').id = 'group-' + data.deviceId + '-title';
          head.replaceWith(fresher);
        }
        if (event === 'presence') announce(data.deviceId + ' is ' + (data.online ? 'online' : 'offline'));
      }
    };
    pageHandler = handler;

    return [
      h('h1', { tabindex: '-1' }, 'Deployments'),
      fresh.length ? null : h('p', { class: 'lede' }, 'Per device and per component, as reported by the devices, ' + PAGE_ROWS + ' deployments a page. This page updates by itself.'),
      fresh.length ? h('p', { class: 'success', role: 'status' }, fresh.length === 1 ? 'Deployment created; the device has been told.' : fresh.length + ' deployments created; the devices have been told.' +
        (fresh.length > PAGE_ROWS ? ' The first ' + PAGE_ROWS + ' are shown.' : '')) : null,
      fresh.length ? h('p', {}, h('a', { href: '#/deployments' }, 'Show all deployments')) : form,
      fresh.length ? null : pager.el,
      root,
    ];
  }

  /* ---- devices (live) ------------------------------------------------------------------ */

  function capsList(caps) {
    const p = (caps && caps.properties) || {};
    const cpus = Array.isArray(p.cpus) ? p.cpus.map((c) => (c.cores ? c.cores + ' cores' : '') + (c.architecture ? ' ' + c.architecture : '')).join(', ') : null;
    const rows = [
      ['Vendor / model', [p.vendor, p.modelNumber].filter(Boolean).join(' ') || '—'],
      ['Serial number', p.serialNumber],
      ['CPU', cpus],
      ['Memory', p.memory],
      ['Storage', p.storage],
      ['Deployment types', (p.supportedDeploymentTypes || []).join(', ')],
      ['Runtimes', (p.supportedRuntimes || []).join(', ')],
      ['Interfaces', Array.isArray(p.interfaces) ? p.interfaces.map((i) => i.type || JSON.stringify(i)).join(', ') : null],
      ['Peripherals', Array.isArray(p.peripherals) ? p.peripherals.map((i) => i.type || JSON.stringify(i)).join(', ') : null],
      ['OTel collector', p.otelCollector === undefined ? null : (p.otelCollector ? 'yes' : 'no')],
    ].filter(([, v]) => v !== null && v !== undefined && v !== '');
    if (!caps) return h('p', { class: 'empty' }, 'No capabilities received yet.');
    return h('dl', { class: 'kv caps' }, rows.map(([k, v]) => [h('dt', {}, k), h('dd', {}, String(v))]));
  }

  function labelsText(labels) {
    const kv = Object.entries(labels || {});
    return kv.length ? kv.map(([k, v]) => h('code', { class: 'label' }, k + '=' + v)).flatMap((c, i) => (i ? [' ', c] : [c])) : '—';
  }

  function deviceCard(dev, deps, appNames, labels) {
    return h('article', { class: 'card', id: 'device-' + dev.id, 'data-device': dev.id, 'aria-labelledby': 'device-' + dev.id + '-title' },
      h('header', { class: 'app-head' },
        h('h2', { id: 'device-' + dev.id + '-title', style: null }, dev.id), presenceBadge(dev)),
      h('p', { class: 'small' }, dev.online === false ? 'offline, last seen ' : 'last seen ', timeEl(dev.lastSeen),
        dev.boot ? ' · boot ' + dev.boot : ''),
      labels ? h('p', { class: 'small labels' }, 'Labels: ', labelsText(labels)) : null,
      capsList(dev.capabilities),
      h('h3', {}, 'Runs'),
      deps.length ? h('ul', { class: 'runs' }, deps.map((d) => h('li', { 'data-deployment': d.id },
        h('a', { href: '#/deployments?app=' + encodeURIComponent(d.app) }, (appNames.get(d.app) || d.app) + ' ' + d.version), ' ', stateBadge(d.state),
        d.desired !== 'present' ? [' ', h('span', { class: 'badge warn' }, d.desired)] : null)))
        : h('p', { class: 'empty' }, 'Nothing deployed.'));
  }

  async function pageDevices(params) {
    const root = h('div', { class: 'grid', id: 'devices' });
    const pager = makePager('Devices');
    const filter = { selector: params.get('selector') || '' };
    /* the devices on this page, in id order: their page row (labels), their full record
     * (capabilities) and their deployments */
    const model = { ids: [], rows: new Map(), devices: new Map(), deps: new Map(), appNames: new Map() };
    model.appNames = new Map((await pageGet('/apps')).apps.map((a) => [a.id, a.name]));

    async function loadDevice(id) {
      model.devices.set(id, await pageGet('/devices/' + encodeURIComponent(id)));
    }
    async function loadDeps(id) {
      model.deps.set(id, (await pageGet('/deployments?device=' + encodeURIComponent(id))).deployments);
    }
    async function load() {
      const q = new URLSearchParams({ limit: String(PAGE_ROWS) });
      if (filter.selector) q.set('selector', filter.selector);
      if (pager.after()) q.set('after', pager.after());
      const reply = await pageGet('/devices?' + q);
      const devices = new Map();
      const deps = new Map();
      await mapFew(reply.devices, async (d) => {
        const [full, list] = await Promise.all([pageGet('/devices/' + encodeURIComponent(d.id)),
          pageGet('/deployments?device=' + encodeURIComponent(d.id))]);
        devices.set(d.id, full);
        deps.set(d.id, list.deployments);
      });
      model.ids = reply.devices.map((d) => d.id);
      model.rows = new Map(reply.devices.map((d) => [d.id, d]));
      model.devices = devices;
      model.deps = deps;
      pager.show(reply, model.ids.length);
    }
    function card(id) {
      return deviceCard(model.devices.get(id), model.deps.get(id) || [], model.appNames, model.rows.get(id).labels);
    }
    function render() {
      root.dataset.rows = String(model.ids.length);
      if (!model.ids.length) {
        root.replaceChildren(h('p', { class: 'empty' }, pager.next ? 'No device on this page matches; Next page looks further.'
          : filter.selector ? 'No device matches this selector.'
          : 'No device has reported yet. Devices appear when their agent publishes its capabilities.'));
        return;
      }
      root.replaceChildren(...model.ids.map(card));
    }
    const form = filterForm('Devices', [
      { name: 'selector', label: 'Labels', hint: 'A selector, e.g. site=plant-7,tier!=canary (empty: every device)' },
    ], filter, async (v) => {
      const before = { ...filter };
      Object.assign(filter, v);
      pager.reset();
      try {
        await load();
        form.showProblem(null);
        render();
        announce(model.ids.length + ' devices on this page');
      } catch (err) {
        Object.assign(filter, before);
        form.showProblem(err);
      }
    });
    pager.onMove = async () => { await load(); render(); };
    await load();
    render();
    /* events about devices on this page update their card; others are not on screen */
    pageHandler = async (event, data) => {
      if (event === 'resync') { await load(); render(); return; }
      if (!model.rows.has(data.deviceId)) return;
      if (event === 'presence' || event === 'capabilities') {
        await loadDevice(data.deviceId);
        if (event === 'presence') announce(data.deviceId + ' is ' + (data.online ? 'online' : 'offline'));
      } else if (event === 'status') {
        await loadDeps(data.deviceId);
      } else return;
      const old = document.getElementById('device-' + data.deviceId);
      if (old) old.replaceWith(card(data.deviceId));
    };
    return [
      h('h1', { tabindex: '-1' }, 'Devices'),
      h('p', { class: 'lede' }, PAGE_ROWS + ' devices a page, by id. Presence and what runs update by themselves.'),
      form,
      pager.el,
      root,
    ];
  }

  /* ---- fleet overview (live) ------------------------------------------------------------ */

  /* Chart.js (Debian's libjs-chart.js, embedded by the manager at /vendor/chart.min.js). */
  const COLORS = {
    online: '#17663a', offline: '#a1221b', installed: '#17663a', running: '#2e8b57',
    pending: '#6b8fc7', installing: '#1f4f8b', updating: '#3a6fb0', removing: '#c08a00',
    removed: '#8a96a3', failed: '#a1221b', unreported: '#c3cad3',
  };
  const WINDOWS = ['1h', '6h', '24h', '7d'];
  const OVERVIEW_REFRESH_MS = 30000; /* the samples grow without an event: refetch now and then */
  const overview = { timer: 0, charts: [] };

  function stopOverview() {
    window.clearInterval(overview.timer);
    overview.timer = 0;
    for (const c of overview.charts) c.destroy();
    overview.charts = [];
  }

  function stateColor(state) { return COLORS[state] || '#5a6675'; }

  /* x-axis labels: seconds when the samples span less than 10 minutes, the day past a day */
  function timeTick(v) {
    const d = new Date(v);
    const span = this.max - this.min; /* this: the Chart.js scale */
    const time = d.toLocaleTimeString([], span < 600000 ? { hour: '2-digit', minute: '2-digit', second: '2-digit' }
      : { hour: '2-digit', minute: '2-digit' });
    return span > 86400000 ? d.toLocaleDateString([], { month: 'short', day: 'numeric' }) + ' ' + time : time;
  }

  function onlineChartData(ov) {
    const pts = ov.online.map((p) => ({ t: new Date(p.t).getTime(), online: p.online, offline: p.offline }));
    return {
      datasets: [
        { label: 'online', data: pts.map((p) => ({ x: p.t, y: p.online })), borderColor: COLORS.online,
          backgroundColor: COLORS.online, pointRadius: pts.length > 60 ? 0 : 2, stepped: true },
        { label: 'offline', data: pts.map((p) => ({ x: p.t, y: p.offline })), borderColor: COLORS.offline,
          backgroundColor: COLORS.offline, pointRadius: pts.length > 60 ? 0 : 2, stepped: true, borderDash: [6, 3] },
      ],
    };
  }

  function stateChartData(ov) {
    const states = Object.keys(ov.deploymentsByState);
    return {
      labels: states,
      datasets: [{ label: 'deployments', data: states.map((s) => ov.deploymentsByState[s]),
        backgroundColor: states.map(stateColor), borderWidth: 1 }],
    };
  }

  function appChartData(ov, appNames) {
    const states = Object.keys(ov.deploymentsByState);
    return {
      labels: ov.byApp.map((a) => appNames.get(a.app) || a.app),
      datasets: states.map((s) => ({ label: s, data: ov.byApp.map((a) => a.states[s] || 0),
        backgroundColor: stateColor(s) })),
    };
  }

  function failureRows(ov, appNames) {
    return ov.recentFailures.map((f) => h('tr', { 'data-failure': f.deploymentId, 'data-code': f.code || '' },
      h('td', { 'data-label': 'Time' }, timeEl(f.time)),
      h('td', { 'data-label': 'Device' }, h('code', {}, f.deviceId)),
      h('td', { 'data-label': 'Deployment' }, h('a', { href: '#/deployments' }, h('code', {}, f.deploymentId.slice(0, 8)))),
      h('td', { 'data-label': 'App' }, f.app ? (appNames.get(f.app) || f.app) + ' ' + (f.version || '') : '—'),
      h('td', { 'data-label': 'Component' }, f.component ? h('code', {}, f.component) : '(overall)'),
      h('td', { 'data-label': 'Code' }, f.code ? h('code', {}, f.code) : '—'),
      h('td', { 'data-label': 'Class' }, h('span', {
        class: 'badge ' + (f.class === 'device' ? 'warn' : f.class === 'app' ? 'bad' : 'muted'), 'data-class': f.class,
        title: f.class === 'device' ? 'the device could not do its part (runtime, disk, network)' : f.class === 'app' ? "the app's package, parameters or workload failed" : 'no error code',
      }, f.class)),
      h('td', { 'data-label': 'Message' }, f.message || '')));
  }

  async function pageOverview(params) {
    const win = WINDOWS.includes(params.get('window')) ? params.get('window') : '24h';
    const [first, apps] = await Promise.all([api('GET', '/overview?window=' + win), api('GET', '/apps')]);
    const appNames = new Map(apps.apps.map((a) => [a.id, a.name]));
    let ov = first;
    const summary = h('p', { class: 'lede', id: 'overview-summary' });
    const onlineCanvas = h('canvas', { id: 'chart-online', role: 'img', 'aria-label': '' });
    const stateCanvas = h('canvas', { id: 'chart-states', role: 'img', 'aria-label': '' });
    const appCanvas = h('canvas', { id: 'chart-apps', role: 'img', 'aria-label': '' });
    const onlineEmpty = h('p', { class: 'empty', hidden: true }, 'No samples in this window yet: the manager records the devices online every fleet-sample-interval (60 s by default).');
    const stateEmpty = h('p', { class: 'empty', hidden: true }, 'Nothing is deployed.');
    const failBody = h('tbody', { id: 'failures-body' });
    const failEmpty = h('p', { class: 'empty', hidden: true }, 'No failure reported in this window.');
    const failTable = h('div', { class: 'table-wrap' }, h('table', { class: 'stack', id: 'failures' },
      h('caption', { class: 'visually-hidden' }, 'The newest failures reported by the devices'),
      h('thead', {}, h('tr', {}, ['Time', 'Device', 'Deployment', 'App', 'Component', 'Code', 'Class', 'Message']
        .map((t) => h('th', { scope: 'col' }, t)))), failBody));

    stopOverview();
    const noChart = typeof window.Chart !== 'function';
    const common = { responsive: true, maintainAspectRatio: false, animation: false };
    let online = null, states = null, byApp = null;
    if (!noChart) {
      online = new window.Chart(onlineCanvas, {
        type: 'line', data: onlineChartData(ov),
        options: { ...common, parsing: true, interaction: { mode: 'nearest', axis: 'x', intersect: false },
          scales: { x: { type: 'linear', ticks: { callback: timeTick, maxTicksLimit: 8 } },
            y: { beginAtZero: true, ticks: { precision: 0 } } },
          plugins: { tooltip: { callbacks: { title: (items) => items.length ? new Date(items[0].parsed.x).toLocaleString() : '' } } } },
      });
      states = new window.Chart(stateCanvas, { type: 'doughnut', data: stateChartData(ov),
        options: { ...common, plugins: { legend: { position: 'right' } } } });
      byApp = new window.Chart(appCanvas, { type: 'bar', data: appChartData(ov, appNames),
        options: { ...common, indexAxis: 'y', scales: { x: { stacked: true, beginAtZero: true, ticks: { precision: 0 } }, y: { stacked: true } } } });
      overview.charts = [online, states, byApp];
    }

    function render() {
      const total = ov.devices.online + ov.devices.offline;
      const deps = Object.values(ov.deploymentsByState).reduce((a, b) => a + b, 0);
      summary.textContent = total + ' devices: ' + ov.devices.online + ' online, ' + ov.devices.offline +
        ' offline. ' + deps + ' deployments. Updates by itself.';
      onlineEmpty.hidden = ov.online.length > 0;
      stateEmpty.hidden = deps > 0;
      const last = ov.online[ov.online.length - 1];
      onlineCanvas.setAttribute('aria-label', 'Devices online over the last ' + win + ': ' + ov.online.length +
        ' samples' + (last ? ', the last ' + last.online + ' online and ' + last.offline + ' offline' : ''));
      stateCanvas.setAttribute('aria-label', 'Deployments by state: ' +
        (Object.entries(ov.deploymentsByState).map(([k, v]) => v + ' ' + k).join(', ') || 'none'));
      appCanvas.setAttribute('aria-label', 'Deployments by app and state: ' +
        (ov.byApp.map((a) => (appNames.get(a.app) || a.app) + ' ' + a.total).join(', ') || 'none'));
      failBody.replaceChildren(...failureRows(ov, appNames));
      failEmpty.hidden = ov.recentFailures.length > 0;
      failTable.hidden = ov.recentFailures.length === 0;
      if (online) {
        online.data = onlineChartData(ov);
        online.update();
        states.data = stateChartData(ov);
        states.update();
        byApp.data = appChartData(ov, appNames);
        byApp.update();
      }
      main.dataset.overviewAt = ov.to; /* when the data on screen was made (the tests wait for it) */
    }

    let pending = 0;
    async function refresh() {
      pending = 0;
      try {
        ov = await api('GET', '/overview?window=' + win);
        render();
      } catch (e) { /* the next event or tick tries again */ }
    }
    /* status and presence change what the page shows: refetch once things settle a little */
    pageHandler = (event) => {
      if (event === 'status' || event === 'presence' || event === 'capabilities' || event === 'resync') {
        if (!pending) pending = window.setTimeout(refresh, 1000);
      }
    };
    overview.timer = window.setInterval(refresh, OVERVIEW_REFRESH_MS);
    window.setTimeout(render, 0); /* after the page is in the document (charts need a size) */

    return [
      h('h1', { tabindex: '-1' }, 'Fleet overview'),
      summary,
      h('nav', { class: 'window-picker', 'aria-label': 'Time window' }, h('ul', {}, WINDOWS.map((w) => h('li', {},
        h('a', { href: '#/overview?window=' + w, 'aria-current': w === win ? 'true' : null, class: 'button secondary' }, 'last ' + w))))),
      noChart ? h('p', { class: 'problem' }, 'The chart library (/vendor/chart.min.js) did not load; the numbers are below.') : null,
      h('section', { class: 'card chart-card', 'aria-labelledby': 'online-title' },
        h('h2', { id: 'online-title' }, 'Devices online'),
        h('div', { class: 'chart-box' }, onlineCanvas), onlineEmpty),
      h('div', { class: 'chart-row' },
        h('section', { class: 'card chart-card', 'aria-labelledby': 'states-title' },
          h('h2', { id: 'states-title' }, 'Deployments by state'),
          h('div', { class: 'chart-box' }, stateCanvas), stateEmpty),
        h('section', { class: 'card chart-card', 'aria-labelledby': 'apps-title' },
          h('h2', { id: 'apps-title' }, 'Deployments by app'),
          h('div', { class: 'chart-box' }, appCanvas),
          ov.appsOmitted ? h('p', { class: 'small' }, ov.appsOmitted + ' more apps not shown') : null)),
      h('section', { 'aria-labelledby': 'failures-title' },
        h('h2', { id: 'failures-title' }, 'Recent failures'),
        h('p', { class: 'small' }, 'The newest failed components reported in the last ' + win +
          ', with their error code and its class: "device" when the device could not do its part, "app" when the app failed.'),
        failTable, failEmpty),
    ];
  }

  /* ---- rollouts (docs/rollouts.md) ------------------------------------------------------ */

  const ROLLOUT_CLASS = {
    running: 'info', paused: 'warn', succeeded: 'ok', aborted: 'bad', cancelled: 'muted',
    'rolling-back': 'warn', 'rolled-back': 'bad',
  };
  function rolloutBadge(state) {
    return h('span', { class: 'badge ' + (ROLLOUT_CLASS[state] || 'muted'), 'data-state': state }, state);
  }
  function countsText(counts) {
    return Object.entries(counts || {}).filter(([, n]) => n > 0).map(([k, n]) => k + ' ' + n).join(', ') || 'none';
  }
  /* Re-renders while the route stays on screen: rollouts move on without a status event
   * (batch timers, soak), so the page asks again every 2 s. */
  function refreshWhileShown(hash, fn) {
    const tick = async () => {
      if (location.hash !== hash) return;
      try { await fn(); } catch (err) { /* shown again at the next try */ }
      setTimeout(tick, 2000);
    };
    setTimeout(tick, 2000);
  }

  async function pageRollouts() {
    const body = h('tbody', {});
    async function load() {
      const list = (await api('GET', '/rollouts?limit=50')).rollouts;
      body.replaceChildren(...list.map((r) => h('tr', { id: 'rollout-' + r.id },
        h('td', { 'data-label': 'Rollout' }, h('a', { href: '#/rollouts/' + encodeURIComponent(r.id) }, r.app + ' ' + r.version)),
        h('td', { 'data-label': 'State' }, rolloutBadge(r.state)),
        h('td', { 'data-label': 'Batch' }, (r.batch + 1) + ' of ' + r.batchCount),
        h('td', { 'data-label': 'Devices' }, countsText(r.counts)),
        h('td', { 'data-label': 'Failures' }, 'app ' + r.failures.app + ', device ' + r.failures.device))));
      return list.length;
    }
    const n = await load();
    refreshWhileShown(location.hash, load);
    return [
      h('h1', { tabindex: '-1' }, 'Rollouts'),
      h('p', { class: 'lede' }, n ? 'Newest first; progress updates by itself. Create rollouts with margoctl rollout create or the API.'
        : 'No rollout yet. Create one with margoctl rollout create or POST /api/v1/rollouts.'),
      n ? h('div', { class: 'table-wrap' }, h('table', { class: 'stack' },
        h('thead', {}, h('tr', {}, h('th', {}, 'Rollout'), h('th', {}, 'State'), h('th', {}, 'Batch'),
          h('th', {}, 'Devices'), h('th', {}, 'Failures'))), body)) : null,
    ];
  }

  async function pageRollout(id) {
    const root = h('section', { id: 'rollout', 'aria-live': 'polite' });
    const heading = h('h1', { tabindex: '-1' }, 'Rollout');
    const path = '/rollouts/' + encodeURIComponent(id);
    async function act(action) {
      try {
        await api('POST', path + '/' + action);
        await load();
        announce('Rollout ' + action + ' requested');
      } catch (err) {
        root.prepend(problemBox(err, 'The manager refused to ' + action + ' the rollout'));
      }
    }
    async function load() {
      const r = await api('GET', path);
      root.dataset.state = r.state;
      const batches = r.batches.map((b) => {
        const open = (b.counts.waiting || 0) + (b.counts.updating || 0) + (b.counts['rolling-back'] || 0);
        const done = b.size - open;
        return h('tr', { 'data-batch': b.batch, class: b.batch === r.batch ? 'current' : '' },
          h('td', { 'data-label': 'Batch' }, String(b.batch + 1) + (b.batch === 0 && r.strategy.canary ? ' (canary)' : '')),
          h('td', { 'data-label': 'Progress' },
            h('progress', { max: String(b.size || 1), value: String(done), 'aria-label': 'Batch ' + (b.batch + 1) + ': ' + done + ' of ' + b.size + ' done' }),
            ' ' + done + ' of ' + b.size),
          h('td', { 'data-label': 'Devices' }, countsText(b.counts)));
      });
      const codes = Object.entries(r.failures.byCode);
      const allowed = {
        pause: r.state === 'running', resume: r.state === 'paused',
        cancel: r.state === 'running' || r.state === 'paused',
        rollback: r.state !== 'rolling-back' && r.state !== 'rolled-back',
      };
      heading.textContent = 'Rollout: ' + r.app + ' ' + r.version;
      root.replaceChildren(...[
        h('p', {}, rolloutBadge(r.state), ' batch ' + (r.batch + 1) + ' of ' + r.batchCount + ', ' +
          r.targetCount + ' devices (' + r.mode + (r.selector ? ', selector ' + r.selector : '') + ')'),
        r.reason ? h('p', { class: 'reason' }, r.reason) : null,
        h('div', { class: 'actions' }, Object.keys(allowed).map((a) =>
          h('button', { type: 'button', class: a === 'rollback' ? 'secondary' : '', disabled: allowed[a] ? null : '', onclick: () => act(a) },
            a[0].toUpperCase() + a.slice(1)))),
        h('h2', {}, 'Batches'),
        h('div', { class: 'table-wrap' }, h('table', { class: 'stack' },
          h('thead', {}, h('tr', {}, h('th', {}, 'Batch'), h('th', {}, 'Progress'), h('th', {}, 'Devices'))),
          h('tbody', {}, batches))),
        h('h2', {}, 'Failures'),
        h('p', { id: 'rollout-failures' }, 'app ' + r.failures.app + ', device ' + r.failures.device +
          (codes.length ? ' — ' + codes.map(([c, n]) => c + ' ' + n).join(', ') : ''))].filter(Boolean));
    }
    await load();
    refreshWhileShown(location.hash, load);
    pageHandler = async (event) => { if (event === 'status' || event === 'resync') await load(); };
    return [
      h('p', { class: 'crumbs' }, h('a', { href: '#/rollouts' }, 'Rollouts'), ' › ', id),
      heading,
      root,
    ];
  }

  /* ---- router ---------------------------------------------------------------------------- */

  let renderSeq = 0;

  async function route() {
    const hash = location.hash || '#/catalog';
    if (!hash.startsWith('#/')) return; /* in-page anchors */
    const [path, qs] = hash.slice(2).split('?');
    const parts = path.split('/').map((p) => decodeURIComponent(p));
    const params = new URLSearchParams(qs || '');
    const seq = ++renderSeq;
    pageHandler = null;
    stopOverview();
    if (!token() && parts[0] !== 'login') {
      sessionStorage.setItem('margo-next', hash);
      location.hash = '#/login';
      return;
    }
    let page;
    let title;
    const current = parts[0] === 'apps' || parts[0] === 'deploy' ? 'catalog' : parts[0];
    for (const a of nav.querySelectorAll('a')) {
      if (a.dataset.route === current) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    if (parts[0] !== 'login') {
      nav.hidden = false;
      session.hidden = false;
      if (!stream.ctrl) startEvents();
    }
    main.setAttribute('aria-busy', 'true');
    try {
      if (parts[0] === 'login') { title = 'Sign in'; page = pageLogin(); }
      else if (parts[0] === 'catalog' || parts[0] === '') { title = 'Catalog'; page = await pageCatalog(); }
      else if (parts[0] === 'apps' && parts[1]) { title = parts[1]; page = await pageApp(parts[1], params); }
      else if (parts[0] === 'deploy' && parts[1]) { title = 'Deploy ' + parts[1]; page = await pageDeploy(parts[1], params); }
      else if (parts[0] === 'deployments') { title = 'Deployments'; page = await pageDeployments(params); }
      else if (parts[0] === 'devices') { title = 'Devices'; page = await pageDevices(params); }
      else if (parts[0] === 'overview') { title = 'Fleet overview'; page = await pageOverview(params); }
      else if (parts[0] === 'rollouts' && parts[1]) { title = 'Rollout'; page = await pageRollout(parts[1]); }
      else if (parts[0] === 'rollouts') { title = 'Rollouts'; page = await pageRollouts(); }
      else { title = 'Not found'; page = [h('h1', { tabindex: '-1' }, 'Page not found'), h('p', {}, h('a', { href: '#/catalog' }, 'Go to the catalog'))]; }
    } catch (err) {
      if (seq !== renderSeq) return;
      title = 'Error';
      page = [h('h1', { tabindex: '-1' }, 'This page could not be loaded'), problemBox(err, 'The manager answered with an error'),
        h('p', {}, h('button', { type: 'button', onclick: () => route() }, 'Try again'))];
    }
    if (seq !== renderSeq) return;
    main.replaceChildren(...page.flat().filter(Boolean));
    main.removeAttribute('aria-busy');
    main.dataset.route = hash; /* which route is on screen (the browser tests wait for it) */
    document.title = title + ' · Margo fleet manager';
    /* after a navigation, focus goes to the new page's heading (not on the first load) */
    const h1 = main.querySelector('h1');
    if (h1 && routeCount > 0) h1.focus();
    routeCount++;
  }
  let routeCount = 0;

  window.addEventListener('hashchange', route);
  route();
})();
