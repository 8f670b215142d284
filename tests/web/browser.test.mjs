// browser.test.mjs HARNESS NODE_DIR - the web front end in headless Debian chromium against
// a real margo-manager, Mosquitto and scripted devices (web_harness.c). Each step asserts
// what a user sees on the page. With MGO_WEB_SCREENSHOTS=DIR it also saves the screenshots
// of docs/web.md into DIR.
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { createInterface } from 'node:readline';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const [harnessBin, nodeDir] = process.argv.slice(2);
if (!harnessBin || !nodeDir) {
  console.error('usage: node browser.test.mjs HARNESS NODE_DIR');
  process.exit(2);
}
const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../..');
const require = createRequire(path.join(path.resolve(nodeDir), 'package.json'));
const { chromium } = require('playwright-core');
const shots = process.env.MGO_WEB_SCREENSHOTS || '';
const WAIT = 20000;

// ---- the harness: broker + manager + scripted devices ----------------------------------

const harness = spawn(harnessBin, [], { stdio: ['pipe', 'pipe', 'inherit'] });
const lines = createInterface({ input: harness.stdout });
const waiting = [];
const early = [];
lines.on('line', (l) => (waiting.length ? waiting.shift()(l) : early.push(l)));
harness.on('exit', (code) => {
  for (const w of waiting.splice(0)) w('ERR harness exited with ' + code);
});
function nextLine() {
  return new Promise((resolve, reject) => {
    if (early.length) return resolve(early.shift());
    const t = setTimeout(() => reject(new Error('the harness did not answer in time')), WAIT);
    waiting.push((l) => { clearTimeout(t); resolve(l); });
  });
}
async function device(cmd) {
  harness.stdin.write(cmd + '\n');
  const answer = await nextLine();
  if (answer !== 'OK') throw new Error('harness: ' + cmd + ': ' + answer);
}

// ---- tiny test runner ---------------------------------------------------------------------

let failures = 0;
let page;
let profileDir;
async function step(name, fn) {
  process.stdout.write('- ' + name + ' ... ');
  try {
    await fn();
    console.log('ok');
  } catch (err) {
    failures++;
    console.log('FAILED');
    console.log('  ' + String(err && err.stack || err).split('\n').join('\n  '));
    if (page) {
      const file = path.join(nodeDir, 'failure-' + failures + '.png');
      await page.screenshot({ path: file, fullPage: true }).catch(() => {});
      const text = await page.locator('main').innerText().catch(() => '');
      console.log('  page text:\n    ' + text.slice(0, 1500).split('\n').join('\n    '));
      console.log('  screenshot: ' + file);
    }
  }
}
function check(cond, message) {
  if (!cond) throw new Error(message);
}
async function shot(name, opts = {}) {
  if (!shots) return;
  fs.mkdirSync(shots, { recursive: true });
  await page.screenshot({ path: path.join(shots, name + '.png'), fullPage: true, ...opts });
}
// Opens a route and waits until the page has rendered it (app.js sets main[data-route]).
async function visit(route) {
  await page.goto(base + '/' + route);
  await page.waitForFunction((r) => document.querySelector('main').dataset.route === r, route);
}
async function textOf(selector) {
  return (await page.locator(selector).first().innerText()).trim();
}

// ---- API from the test (setup and cross-checks) ----------------------------------------

let base;
let token;
async function api(method, p, body, raw) {
  const headers = { Authorization: 'Bearer ' + token };
  if (body !== undefined && !raw) headers['Content-Type'] = 'application/json';
  const r = await fetch(base + '/api/v1' + p, {
    method, headers, body: body === undefined ? undefined : raw ? body : JSON.stringify(body),
  });
  const text = await r.text();
  return { status: r.status, json: text ? JSON.parse(text) : null };
}

// ---- the tests ----------------------------------------------------------------------------

const ready = await nextLine();
const m = /^READY (\S+) (\S+)$/.exec(ready);
if (!m) {
  console.error('web_harness did not start: ' + ready);
  process.exit(1);
}
[, base, token] = m;
console.log('manager at ' + base);

let browser;
const external = [];
try {
  // devices: dev1 matches hello-world (compose), dev2 lacks memory, dev3 only runs helm
  await device('caps dev1 1Gi compose');
  await device('presence dev1 online');
  await device('caps dev2 128Mi compose');
  await device('presence dev2 online');
  await device('caps dev3 2Gi helm');
  await device('presence dev3 online');
  for (const f of ['tests/manager/data/hello-1.0.yaml', 'tests/manager/data/hello-2.0.yaml',
    'tests/web/data/sensor-gateway.yaml']) {
    const r = await api('POST', '/apps', fs.readFileSync(path.join(repo, f), 'utf8'), true);
    if (r.status !== 201) throw new Error('adding ' + f + ': ' + JSON.stringify(r.json));
  }
  for (let i = 0; i < 100 && (await api('GET', '/devices')).json.devices.length < 3; i++)
    await new Promise((r) => setTimeout(r, 100));

  profileDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mgo-web-chromium-'));
  browser = await chromium.launchPersistentContext(profileDir, {
    executablePath: process.env.MGO_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1280, height: 860 },
  });
  page = browser.pages()[0] || await browser.newPage();
  page.setDefaultTimeout(WAIT);
  page.on('request', (req) => {
    const u = req.url();
    if (!u.startsWith(base + '/') && !u.startsWith('data:')) external.push(u);
  });
  const consoleErrors = [];
  page.on('console', (msg) => {
    /* the 401 and 422 answers the tests provoke are logged by chromium as failed loads */
    if (msg.type() === 'error' && !msg.text().startsWith('Failed to load resource')) consoleErrors.push(msg.text());
  });
  page.on('pageerror', (err) => consoleErrors.push(String(err)));
  page.on('requestfailed', (req) => {
    if (!req.url().includes('/api/v1/events')) console.log('(request failed: ' + req.method() + ' ' + req.url() + ': ' + (req.failure() || {}).errorText + ')');
  });

  await step('sign-in page asks for the token and refuses a wrong one', async () => {
    await page.goto(base + '/');
    await page.waitForURL(/#\/login$/);
    await page.getByLabel('API token').fill('not-the-token-0123456789');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByText('The manager refused this token.').waitFor();
    await shot('login');
    await page.getByLabel('API token').fill(token);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(/#\/catalog$/);
    check(await page.evaluate(() => sessionStorage.getItem('margo-token')) === token,
      'the token is kept in sessionStorage');
  });

  await step('catalog lists each app with icon, tagline, version and profiles', async () => {
    await page.locator('[data-app="hello-world"]').waitFor();
    const hello = await textOf('[data-app="hello-world"]');
    check(hello.includes('Hello World') && hello.includes('A friendly greeter'), 'name and tagline: ' + hello);
    check(hello.includes('v2.0') && hello.includes('also 1.0'), 'newest version first, older listed: ' + hello);
    check(hello.includes('helm') && hello.includes('compose'), 'profiles: ' + hello);
    check(await page.locator('[data-app="hello-world"] .icon').count() === 1, 'an icon');
    const gw = await textOf('[data-app="sensor-gateway"]');
    check(gw.includes('Sensor Gateway') && gw.includes('v3.2.1'), 'second app: ' + gw);
    await shot('catalog');
  });

  await step('keyboard only: Tab to "Deploy Hello World", Enter opens the deploy page', async () => {
    await page.locator('h1').focus();
    let found = false;
    for (let i = 0; i < 30 && !found; i++) {
      await page.keyboard.press('Tab');
      found = await page.evaluate(() => document.activeElement &&
        document.activeElement.getAttribute('aria-label') === 'Deploy Hello World');
    }
    check(found, 'the Deploy link is reachable with Tab');
    const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
    check(outline !== 'none', 'the focused link shows a focus outline');
    await page.keyboard.press('Enter');
    await page.waitForURL(/#\/deploy\/hello-world$/);
    await page.locator('h1', { hasText: 'Deploy Hello World' }).waitFor();
  });

  await step('app page: description, parameters, configuration questions with rules', async () => {
    await visit('#/apps/hello-world?version=1.0');
    await page.locator('h1', { hasText: 'Hello World' }).waitFor();
    const text = await textOf('main');
    check(text.includes('Says hello on port 8080'), 'description');
    check(text.includes('Configuration questions') && text.includes('Site id'), 'questions');
    check(text.includes('matches ^site-[0-9]+$'), 'regexMatch rule shown');
    check(text.includes('from 1024 to 65535'), 'min/max rule shown');
    check(text.includes('2–20 characters'), 'length rule shown');
    check(text.includes('internal') && text.includes('no (fixed)'), 'non-configurable parameter listed');
    check(text.includes('memory: 256Mi'), 'required resources of a profile');
    await shot('app');
  });

  await step('deploy page: matching devices, and why the others do not match', async () => {
    await visit('#/deploy/hello-world?version=1.0');
    await page.getByLabel(/dev1/).waitFor();
    check(await page.getByRole('checkbox', { name: /dev3/ }).count() === 1, 'dev3 matches (helm profile)');
    check(await page.getByRole('checkbox', { name: /dev2/ }).count() === 0, 'dev2 is not offered');
    const why = await textOf('[data-device="dev2"]');
    check(why.includes('memory: needs 256Mi, device has 128Mi'), 'reason for dev2: ' + why);
    await visit('#/deploy/sensor-gateway');
    await page.locator('[data-device="dev3"]').waitFor();
    const why3 = await textOf('[data-device="dev3"]');
    check(/deployment type/.test(why3), 'reason for dev3: ' + why3);
    check(await page.locator('select#q-logLevel option').count() === 4, 'options become a select');
  });

  await step('deploy form: browser-side validation names the rule next to each field', async () => {
    await visit('#/deploy/hello-world?version=1.0');
    await page.getByRole('checkbox', { name: /dev1/ }).check();
    await page.getByLabel('Port').fill('80');
    await page.getByLabel(/Site id/).fill('nope');
    await page.getByLabel('Greeting').fill('');
    await page.getByRole('button', { name: 'Deploy' }).click();
    await page.locator('#q-port-error', { hasText: 'must be at least 1024 (minValue)' }).waitFor();
    check(await page.locator('#q-port-error').getAttribute('data-source') === 'browser', 'browser checked it');
    check((await textOf('#q-siteId-error')).includes('must match the pattern ^site-[0-9]+$ (regexMatch)'), 'regex');
    check((await textOf('#q-greeting-error')).includes('a value is required (allowEmpty: false)'), 'required');
    check(await page.getByLabel('Port').getAttribute('aria-invalid') === 'true', 'aria-invalid set');
    check((await textOf('#form-problems')).includes('Please fix 3 answers'), 'summary');
    check((await api('GET', '/deployments')).json.deployments.length === 0, 'nothing was sent');
    await shot('deploy-validation');
    await page.getByLabel('Greeting').fill('Hi there');
  });

  await step('deploy form: API-side validation (422 errors[]) shown next to the field', async () => {
    await page.evaluate(() => { window.margoWeb.skipBrowserChecks = true; });
    await page.getByLabel(/Site id/).fill('site-7');
    await page.getByLabel('Port').fill('80');
    await page.getByRole('button', { name: 'Deploy' }).click();
    await page.locator('#q-port-error[data-source="api"]').waitFor();
    check((await textOf('#q-port-error')).includes('must be at least 1024 (minValue)'), 'API message');
    const summary = await textOf('#form-problems');
    check(summary.includes('The manager refused the deployment') && summary.includes('422'), 'summary: ' + summary);
    check(summary.includes('nothing was deployed'), 'problem detail');
    check((await api('GET', '/deployments')).json.deployments.length === 0, 'nothing deployed');
    await shot('deploy-api-error');
    await page.evaluate(() => { window.margoWeb.skipBrowserChecks = false; });
  });

  let depId;
  let manifest;
  let dev3Dep;
  await step('deploy through the form; a component goes pending -> installed without reload', async () => {
    await page.getByLabel('Port').fill('9090');
    await page.getByRole('button', { name: 'Deploy' }).click();
    await page.waitForURL(/#\/deployments\?fresh=/);
    const card = page.locator('article.deployment').first();
    await card.waitFor();
    depId = await card.getAttribute('data-deployment');
    const dep = (await api('GET', '/deployments/' + depId)).json;
    check(dep.device === 'dev1' && dep.parameters.port === 9090 && dep.parameters.siteId === 'site-7',
      'the API stored the answers: ' + JSON.stringify(dep.parameters));
    manifest = dep.manifestVersion;
    check((await textOf('#dep-' + depId)).includes('awaiting report'), 'no report yet');
    await page.evaluate(() => { window.__sameDocument = true; });
    const comp = '#dep-' + depId + ' tr[data-component="hello-compose"] .badge';
    await device(`status dev1 ${depId} ${manifest} pending hello-compose:pending`);
    await page.locator(comp + '[data-state="pending"]').waitFor();
    await device(`status dev1 ${depId} ${manifest} installing hello-compose:installing`);
    await page.locator(comp + '[data-state="installing"]').waitFor();
    await device(`status dev1 ${depId} ${manifest} installed hello-compose:installed`);
    await page.locator(comp + '[data-state="installed"]').waitFor();
    await page.locator('#dep-' + depId + '[data-state="installed"]').waitFor();
    check(await page.evaluate(() => window.__sameDocument === true), 'the page was not reloaded');
  });

  await step('deploy form: a problem only the manager knows (app already on the device)', async () => {
    await visit('#/deploy/hello-world?version=1.0');
    await page.getByRole('checkbox', { name: /dev1/ }).check();
    await page.getByLabel(/Site id/).fill('site-8');
    await page.getByRole('button', { name: 'Deploy' }).click();
    await page.locator('#devices-error[data-source="api"]').waitFor();
    const text = await textOf('#devices-error');
    check(text.includes('device dev1 already runs hello-world') && text.includes(depId), text);
    check((await api('GET', '/deployments')).json.deployments.length === 1, 'still one deployment');
    await visit('#/deployments');
    await page.locator('#dep-' + depId).waitFor();
    await page.evaluate(() => { window.__sameDocument = true; });
  });

  await step('deployments: a failed component shows its error code and message live', async () => {
    const r = await api('POST', '/deployments', { app: 'hello-world', version: '1.0', devices: ['dev3'],
      parameters: { siteId: 'site-9' } });
    check(r.status === 201, 'deploy to dev3: ' + JSON.stringify(r.json));
    const id = r.json.deployments[0].id;
    const mv = r.json.deployments[0].manifestVersion;
    dev3Dep = { id, mv };
    /* made elsewhere: it appears with its first report on the event stream */
    await device(`status dev3 ${id} ${mv} failed hello-chart:failed E_CHART chart hello 1.0.0 not found in registry`);
    await page.locator('#dep-' + id + ' tr[data-component="hello-chart"] .badge[data-state="failed"]').waitFor();
    const text = await textOf('#dep-' + id);
    check(text.includes('Error E_CHART') && text.includes('chart hello 1.0.0 not found in registry'), text);
    check(await page.evaluate(() => window.__sameDocument === true), 'the page was not reloaded');
    await shot('deployments');
  });

  await step('devices: capabilities, presence with last seen, what runs; offline live', async () => {
    await visit('#/devices');
    await page.locator('#device-dev1').waitFor();
    const text = await textOf('#device-dev1');
    check(text.includes('online') && text.includes('last seen'), 'presence: ' + text);
    check(text.includes('4 cores amd64') && text.includes('1Gi') && text.includes('compose'), 'capabilities: ' + text);
    check(text.includes('Hello World 1.0') && text.includes('installed'), 'what runs: ' + text);
    await page.evaluate(() => { window.__sameDocument = true; });
    await device('presence dev1 offline');
    await page.locator('#device-dev1 [data-presence="offline"]').waitFor();
    check((await textOf('#device-dev1')).includes('offline, last seen'), 'offline since');
    check(await page.evaluate(() => window.__sameDocument === true), 'the page was not reloaded');
    await shot('devices');
  });

  await step('fleet overview: devices online over time, deployments by state and app, failures live', async () => {
    /* presence changes a few seconds apart (the harness samples every second; a 1h window
     * shows one point per 5 s), so the line has steps */
    await device('presence dev2 offline');
    await new Promise((r) => setTimeout(r, 5500));
    await device('presence dev3 offline');
    await new Promise((r) => setTimeout(r, 5500));
    await device('presence dev1 online');
    await device('presence dev2 online');
    await new Promise((r) => setTimeout(r, 5500));
    await visit('#/overview?window=1h');
    await page.waitForFunction(() => document.querySelector('main').dataset.overviewAt);
    const summary = await textOf('#overview-summary');
    check(summary.includes('3 devices: 2 online, 1 offline'), 'summary: ' + summary);
    check(summary.includes('2 deployments'), 'summary: ' + summary);
    /* every chart drew something: a canvas with a size and painted pixels */
    const painted = await page.evaluate(() => ['chart-online', 'chart-states', 'chart-apps'].map((id) => {
      const c = document.getElementById(id);
      if (!c || !c.width || !c.height) return [id, 0];
      const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let n = 0;
      for (let i = 3; i < px.length; i += 4) if (px[i] > 0) n++;
      return [id, n];
    }));
    for (const [id, n] of painted) check(n > 1000, id + ' is empty (' + n + ' painted pixels)');
    const ov = (await api('GET', '/overview?window=1h')).json;
    check(ov.online.length >= 3, 'samples: ' + JSON.stringify(ov.online));
    check(ov.online.some((p) => p.online === 1) && ov.online.some((p) => p.online === 2), 'the line has steps');
    check(ov.deploymentsByState.installed === 1 && ov.deploymentsByState.failed === 1, JSON.stringify(ov.deploymentsByState));
    const label = await page.locator('#chart-states').getAttribute('aria-label');
    check(label.includes('1 installed') && label.includes('1 failed'), 'state chart label: ' + label);
    /* the failure of dev3 (an unknown code: class app) is in the table */
    const row = page.locator('#failures-body tr[data-code="E_CHART"]');
    check(await row.count() === 1, 'E_CHART row');
    const rowText = (await row.innerText()).trim();
    check(rowText.includes('dev3') && rowText.includes('hello-chart') && rowText.includes('Hello World 1.0'), rowText);
    check(await row.locator('[data-class="app"]').count() === 1, 'class app: ' + rowText);
    /* a new failure appears without reload (event stream -> refetch), with class device */
    await page.evaluate(() => { window.__sameDocument = true; });
    await device(`status dev3 ${dev3Dep.id} ${dev3Dep.mv} failed hello-chart:failed FETCH_FAILED registry unreachable`);
    await page.locator('#failures-body tr[data-code="FETCH_FAILED"] [data-class="device"]').waitFor();
    check(await page.locator('#failures-body tr').first().getAttribute('data-code') === 'FETCH_FAILED', 'newest first');
    check(await page.evaluate(() => window.__sameDocument === true), 'the page was not reloaded');
    await shot('fleet-overview');
  });

  await step('rollouts: batch progress and failures by class, live', async () => {
    /* dev1 (hello-world 1.0 installed) is the canary, then dev3 (1.0 failed) */
    const r = await api('POST', '/rollouts', { app: 'hello-world', version: '2.0',
      devices: ['dev1', 'dev3'], strategy: { canary: 1 } });
    check(r.status === 201, 'rollout: ' + JSON.stringify(r.json));
    const id = r.json.id;
    await visit('#/rollouts/' + id);
    await page.locator('#rollout[data-state="running"]').waitFor();
    async function updating(dev) {
      for (let i = 0; i < 100; i++) {
        const t = (await api('GET', '/rollouts/' + id + '/targets')).json.targets.find((x) => x.device === dev);
        if (t && t.state === 'updating') return t;
        await new Promise((res) => setTimeout(res, 100));
      }
      throw new Error(dev + ' never started');
    }
    const t1 = await updating('dev1');
    await device(`status dev1 ${t1.deploymentId} ${t1.manifestVersion} installed hello-compose:installed`);
    const t3 = await updating('dev3');
    await page.locator('#rollout tr[data-batch="0"]').filter({ hasText: 'succeeded 1' }).waitFor();
    await device(`status dev3 ${t3.deploymentId} ${t3.manifestVersion} failed hello-chart:failed FETCH_FAILED registry unreachable`);
    await page.locator('#rollout[data-state="succeeded"]').waitFor({ timeout: WAIT });
    const text = await textOf('#rollout');
    check(text.includes('batch 2 of 2') && text.includes('failed 1') && text.includes('app 0, device 1') &&
      text.includes('FETCH_FAILED 1'), text);
    check(!/null|undefined/.test(text), 'no placeholder text: ' + text);
    check((await textOf('main h1')) === 'Rollout: hello-world 2.0', 'heading');
    await shot('rollout');
    await visit('#/rollouts');
    await page.locator('#rollout-' + id).waitFor();
    check((await textOf('#rollout-' + id)).includes('succeeded'), 'listed');
  });

  await step('phone-sized screen: no sideways scrolling, navigation still reachable', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    for (const route of ['#/catalog', '#/apps/hello-world', '#/deploy/hello-world', '#/deployments', '#/devices', '#/overview', '#/rollouts']) {
      await visit(route);
      await page.waitForTimeout(100);
      const over = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      check(over <= 0, route + ' is ' + over + ' px wider than the screen');
      check(await page.getByRole('link', { name: 'Devices' }).isVisible(), 'nav visible on ' + route);
      if (route === '#/deployments') await shot('phone-deployments');
      if (route === '#/catalog') await shot('phone-catalog');
      if (route === '#/overview') {
        await page.waitForFunction(() => document.querySelector('main').dataset.overviewAt);
        await shot('phone-overview');
      }
    }
    await page.setViewportSize({ width: 1280, height: 860 });
  });

  await step('deployments and devices pages: one page of rows, "Next page" shows the next, filters, live rows', async () => {
    /* 60 more devices that match hello-world 1.0, each running it: more than one page (50) */
    const fleet = [];
    for (let i = 0; i < 60; i++) {
      const id = 'fleet' + String(i).padStart(2, '0');
      fleet.push(id);
      await device(`caps ${id} 1Gi compose`);
    }
    for (let i = 0; i < 100 && (await api('GET', '/devices')).json.devices.filter((d) => d.id.startsWith('fleet')).length < 60; i++)
      await new Promise((r) => setTimeout(r, 100));
    const r = await api('POST', '/deployments', { app: 'hello-world', version: '1.0', devices: fleet, parameters: { siteId: 'site-5' } });
    check(r.status === 201, 'deploy to the fleet: ' + JSON.stringify(r.json));
    const total = (await api('GET', '/deployments')).json.deployments.length;
    check(total > 50, 'more deployments than one page: ' + total);
    const ids = async (sel, attr) => page.locator(sel).evaluateAll((els, a) => els.map((e) => e.getAttribute(a)), attr);
    const sameList = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);

    /* deployments: page 1 is exactly the API's first page, "Next page" the second */
    const p1 = (await api('GET', '/deployments?limit=50')).json;
    const p2 = (await api('GET', '/deployments?limit=50&after=' + p1.next)).json;
    await visit('#/deployments');
    await page.locator('#deployments[data-rows="50"]').waitFor();
    let shown = await ids('article.deployment', 'data-deployment');
    check(sameList([...shown].sort(), p1.deployments.map((d) => d.id).sort()), 'page 1 rows: ' + shown.length);
    check((await textOf('nav.pager')).includes('Page 1'), 'pager says page 1');
    await page.getByRole('button', { name: 'Next page' }).click();
    await page.locator('#deployments[data-rows="' + p2.deployments.length + '"]').waitFor();
    await page.locator('#dep-' + p2.deployments[0].id).waitFor();
    shown = await ids('article.deployment', 'data-deployment');
    check(sameList([...shown].sort(), p2.deployments.map((d) => d.id).sort()), 'page 2 rows: ' + shown.length);
    check((await textOf('nav.pager')).includes('Page 2'), 'pager says page 2');
    await page.getByRole('button', { name: 'Previous page' }).click();
    await page.locator('#dep-' + p1.deployments[0].id).waitFor();
    check(await page.locator('article.deployment').count() === 50, 'back to one page of 50');

    /* a state filter shows what the API's filter answers; a bad selector names the field */
    const failed = (await api('GET', '/deployments?state=failed&limit=50')).json.deployments.map((d) => d.id);
    check(failed.length > 0 && failed.length < 50, 'some failed deployments: ' + failed.length);
    await page.getByLabel('State').selectOption('failed');
    await page.getByRole('button', { name: 'Filter' }).click();
    await page.locator('#deployments[data-rows="' + failed.length + '"]').waitFor();
    shown = await ids('article.deployment', 'data-deployment');
    check(sameList([...shown].sort(), [...failed].sort()), 'failed only: ' + shown.join(','));
    check(await page.locator('nav.pager').isHidden(), 'one page: no page navigation');
    await page.getByLabel('Device labels').fill('site=(');
    await page.getByRole('button', { name: 'Filter' }).click();
    await page.locator('#filter-selector[aria-invalid="true"]').waitFor();
    check((await textOf('#filter-error')).includes('selector: at byte'), await textOf('#filter-error'));
    check(await page.locator('article.deployment').count() === failed.length, 'the rows stay');

    /* devices: the same paging; a presence change updates its row without asking for a list */
    const d1 = (await api('GET', '/devices?limit=50')).json;
    const d2 = (await api('GET', '/devices?limit=50&after=' + d1.next)).json;
    await visit('#/devices');
    await page.locator('#devices[data-rows="50"]').waitFor();
    shown = await ids('#devices article.card', 'data-device');
    check(sameList(shown, d1.devices.map((d) => d.id)), 'devices page 1: ' + shown.length);
    const live = d1.devices.map((d) => d.id).find((id) => id.startsWith('fleet'));
    const asked = [];
    const onReq = (req) => { if (/\/api\/v1\/(devices|deployments)\?/.test(req.url())) asked.push(req.url()); };
    page.on('request', onReq);
    await device(`presence ${live} online`);
    await page.locator('#device-' + live + ' [data-presence="online"]').waitFor();
    page.off('request', onReq);
    check(asked.length === 0, 'no list was asked again: ' + asked.join(', '));
    await page.getByRole('button', { name: 'Next page' }).click();
    await page.locator('#devices[data-rows="' + d2.devices.length + '"]').waitFor();
    await page.locator('#device-' + d2.devices[0].id).waitFor();
    shown = await ids('#devices article.card', 'data-device');
    check(sameList(shown, d2.devices.map((d) => d.id)), 'devices page 2: ' + shown.join(','));
  });

  await step('the event stream sends the token in a header, not in the URL', async () => {
    const urls = [];
    const onReq = (req) => urls.push({ url: req.url(), auth: req.headers().authorization || '' });
    page.on('request', onReq);
    await page.goto(base + '/?fresh-load#/deployments'); /* a new document: new stream */
    await page.locator('main h1').waitFor();
    await page.locator('#live[data-state="live"]').waitFor();
    page.off('request', onReq);
    const ev = urls.find((u) => u.url.includes('/api/v1/events'));
    check(ev, 'the page opened the event stream');
    check(!ev.url.includes(token) && ev.auth === 'Bearer ' + token, 'token only in the Authorization header');
    check(!urls.some((u) => u.url.includes(token)), 'no URL carries the token');
  });

  await step('sign out forgets the token', async () => {
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL(/#\/login$/);
    check(await page.evaluate(() => sessionStorage.getItem('margo-token')) === null, 'token removed');
  });

  await step('no external resources were requested and no script errors happened', async () => {
    check(external.length === 0, 'external requests: ' + external.join(', '));
    check(consoleErrors.length === 0, 'console errors: ' + consoleErrors.join(' | '));
  });
} catch (err) {
  failures++;
  console.log('FAILED (setup): ' + (err && err.stack || err));
} finally {
  if (browser) await browser.close().catch(() => {});
  if (profileDir) fs.rmSync(profileDir, { recursive: true, force: true });
  harness.stdin.write('quit\n');
  harness.stdin.end();
  if (harness.exitCode === null && harness.signalCode === null)
    await new Promise((r) => harness.on('exit', r));
  if (harness.exitCode !== 0) {
    failures++;
    console.log('FAILED: web_harness exited with ' + (harness.exitCode ?? harness.signalCode) + ' (see its stderr)');
  }
}
console.log(failures ? failures + ' step(s) failed' : 'all browser steps passed');
process.exit(failures ? 1 : 0);
