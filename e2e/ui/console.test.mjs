// make test-ui: the web console in headless Chromium, driven by playwright-core.
//
// e2e/ui/run.sh starts krappyd (with an --http-token), produces a topic and
// runs this with:
//   KRAPPY_UI_URL    the console, http://127.0.0.1:PORT/
//   KRAPPY_UI_TOKEN  the admin token
//   KRAPPY_UI_TOPIC  the topic it produced (68 events: see run.sh)
//   KRAPPY_UI_OUT    output directory (screenshots *.png, browser profile)
// Prints one line per check, then "N passed, N failed"; exits 1 on a failure.
// Every wait has a timeout.
import { createRequire } from 'node:module';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const OUT = path.resolve(process.env.KRAPPY_UI_OUT || 'build/ui');
const URL_ = process.env.KRAPPY_UI_URL;
const TOKEN = process.env.KRAPPY_UI_TOKEN || '';
const TOPIC = process.env.KRAPPY_UI_TOPIC || 'ui-demo';
const WAIT_MS = 10000;

if (!URL_) {
  console.error('console.test.mjs: set KRAPPY_UI_URL (run it through make test-ui)');
  process.exit(2);
}

// playwright-core lives in build/ui/node_modules, outside Node's ESM search path.
const require = createRequire(path.join(OUT, 'node_modules') + path.sep);
const { chromium } = require('playwright-core');

let passed = 0, failed = 0;
async function check(name, fn) {
  try {
    await fn();
    passed++;
    console.log(`ok   ${name}`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${String(e && e.message || e).split('\n').slice(0, process.env.KRAPPY_UI_VERBOSE ? 30 : 1).join('\n')}`);
  }
}
function expect(cond, msg) { if (!cond) throw new Error(msg); }

const profile = mkdtempSync(path.join(tmpdir(), 'krappy-ui-chromium-'));
const origin = new URL(URL_).origin;
const outside = [];      // requests that left the admin port
let expectErrors = false; // while a check provokes errors on purpose
const pageErrors = [];   // uncaught exceptions and console errors

let browser, context;
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    timeout: 30000,
    viewport: { width: 1280, height: 860 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  browser = context;
  context.setDefaultTimeout(WAIT_MS);
  const page = context.pages()[0] || await context.newPage();
  page.on('request', (r) => {
    const u = r.url();
    if (!u.startsWith(origin + '/') && !u.startsWith('data:')) outside.push(u);
  });
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('console', (m) => {
    // Failed loads are judged by the response handler below.
    if (m.type() === 'error' && !/^Failed to load resource/.test(m.text()))
      pageErrors.push(m.text());
  });
  // Expected failures: /api's 401 before the token, the missing key's 404,
  // the refused seek's 400 and those the JSON-error check asks for.
  page.on('response', (r) => {
    const p = new URL(r.url()).pathname;
    if (r.status() >= 400 && !expectErrors && !(r.status() === 401 && p.startsWith('/api/')) &&
        !(r.status() === 404 && p.endsWith('/keys/no-such-key')) &&
        !(r.status() === 400 && p.endsWith('/groups/billing/seek')))
      pageErrors.push(`${r.status()} for ${p}`);
  });

  await check('console page loads without the token', async () => {
    const res = await page.goto(URL_, { waitUntil: 'domcontentloaded', timeout: WAIT_MS });
    expect(res && res.status() === 200, `status ${res && res.status()}`);
    expect(/text\/html/.test(res.headers()['content-type'] || ''), 'not text/html');
    expect(/default-src 'self'/.test(res.headers()['content-security-policy'] || ''), 'no CSP');
    expect((await page.title()) === 'krappy console', `title ${await page.title()}`);
  });

  await check('API 401 shows the token field; the token unlocks it', async () => {
    await page.locator('#auth.shown').waitFor({ state: 'visible', timeout: WAIT_MS });
    await page.fill('#token', TOKEN);
    await page.click('#auth-form button');
    await page.locator('#auth').waitFor({ state: 'hidden', timeout: WAIT_MS });
    const stored = await page.evaluate(() => sessionStorage.getItem('krappy-token'));
    expect(stored === TOKEN, 'token not kept in sessionStorage');
  });

  // The rows of the tail, newest first: [offset, time, key, value, headers].
  const tailRows = () => page.$$eval('#tail tbody tr',
    (trs) => trs.map((tr) => Array.from(tr.cells, (td) => td.textContent)));
  const waitFirstOffset = (want) => page.waitForFunction(
    (w) => document.querySelector('#tail tbody tr td')?.textContent === String(w), want,
    { timeout: WAIT_MS });
  const shot = (name) => page.screenshot({ path: path.join(OUT, name), fullPage: true, timeout: WAIT_MS });
  const showView = async (view) => {
    await page.click(`#tabs a[data-view="${view}"]`);
    await page.locator(`#view-${view}`).waitFor({ state: 'visible', timeout: WAIT_MS });
  };
  const jumpOffset = async (n) => {
    await page.fill('#jump-offset-input', String(n));
    await page.click('#jump-offset button');
  };

  await check('the topics table: the topic, its disk use and a rate chart', async () => {
    const row = page.locator(`#topics tbody tr[data-topic="${TOPIC}"]`);
    await row.waitFor({ state: 'visible', timeout: WAIT_MS });
    const cells = await row.locator('td').allTextContents();
    expect(cells[0] === TOPIC, `name cell ${cells[0]}`);
    expect(Number(cells[2].replace(/,/g, '')) === 68, `next is ${cells[2]}, want 68`);
    expect(/KiB$/.test(cells[4]), `disk ${cells[4]}`);
    expect(await row.locator('svg.spark').count() === 1, 'no chart');
  });

  await check('rates appear after a refresh, and the chart fills', async () => {
    const sel = `#topics tbody tr[data-topic="${TOPIC}"]`;
    await page.waitForFunction((s) => /\/s$/.test(document.querySelector(s + ' td.rate')?.textContent || '') &&
                                      Number(document.querySelector(s + ' svg.spark')?.dataset.points) >= 2,
                               sel, { timeout: WAIT_MS });
  });

  await check('selecting a topic puts it in the URL; a reload lands there', async () => {
    await page.locator(`#topics tbody tr[data-topic="${TOPIC}"]`).click();
    await page.waitForFunction((t) => location.hash.includes('topic=' + t), TOPIC, { timeout: WAIT_MS });
    await page.reload({ waitUntil: 'domcontentloaded' });
    await page.locator('#topic-panel').waitFor({ state: 'visible', timeout: WAIT_MS });
    expect((await page.textContent('#sel-topic')) === TOPIC, 'another topic after the reload');
  });

  await check('the tail shows the newest events, times in UTC', async () => {
    await waitFirstOffset(67);
    const rows = await tailRows();
    expect(rows.length === 20, `${rows.length} rows`);
    expect(rows[0][2] === 'late-19', `newest key ${rows[0][2]}`);
    expect(/ UTC$/.test(rows[0][1]) && rows[0][1].startsWith('2099-01-01 10:05:19'), `time ${rows[0][1]}`);
    await shot('events.png');
  });

  await check('paging: older and newer by offset, kept in the URL', async () => {
    await page.click('#older');
    await waitFirstOffset(47);
    expect(/before=48/.test(await page.evaluate(() => location.hash)), 'page not in the URL');
    expect(!(await page.isDisabled('#newer')), 'newer is disabled: ' + await page.textContent('#tail-meta'));
    await page.click('#newer');
    await waitFirstOffset(67);
    await page.click('#latest');
    await waitFirstOffset(67);
  });

  await check('jump to an offset', async () => {
    await jumpOffset(5);
    await waitFirstOffset(24);
    const rows = await tailRows();
    expect(rows[rows.length - 1][0] === '5', `oldest ${rows[rows.length - 1][0]}`);
  });

  await check('jump to a time (UTC)', async () => {
    await page.fill('#jump-time-input', '2099-01-01T10:01Z');
    await page.click('#jump-time button');
    await waitFirstOffset(66);
    const rows = await tailRows();
    expect(rows[rows.length - 1][0] === '47' && rows[rows.length - 1][2] === 'timed-b',
           `oldest ${rows[rows.length - 1].join(' | ')}`);
  });

  await check('filter by key prefix', async () => {
    await page.fill('#filter-prefix', 'sensor-1');
    await page.click('#filter button');
    await page.waitForFunction(() => document.querySelectorAll('#tail tbody tr').length === 10,
                               null, { timeout: WAIT_MS });
    const rows = await tailRows();
    expect(rows.every((r) => r[2] === 'sensor-1'), rows.map((r) => r[2]).join(','));
    await page.fill('#filter-prefix', '');
    await page.click('#filter button');
    await waitFirstOffset(67);
  });

  await check('headers are shown as text', async () => {
    await jumpOffset(40);
    await waitFirstOffset(59);
    const row = page.locator('#tail tbody tr[data-offset="44"] td.headers');
    expect((await row.textContent()) === 'trace=abc-123', await row.textContent());
  });

  await check('JSON values are pretty and collapsible', async () => {
    await jumpOffset(0);
    await waitFirstOffset(19);
    const cell = page.locator('#tail tbody tr[data-offset="2"] td.value');
    await cell.locator('summary').click();
    const pre = await cell.locator('pre').textContent();
    expect(JSON.parse(pre).name === 'apple' && /\n  "name": "apple"/.test(pre), pre);
  });

  await check('a long value is cut by the server and loaded on demand', async () => {
    await jumpOffset(45);
    await waitFirstOffset(64);
    const cell = page.locator('#tail tbody tr[data-offset="45"] td.value');
    expect(/cut by the server: 5\.9 KiB/.test(await cell.textContent()), await cell.textContent());
    expect((await cell.textContent()).length < 2200, `the whole value came (${(await cell.textContent()).length} characters)`);
    await cell.locator('button').click();
    await page.waitForFunction(() =>
      document.querySelector('#tail tbody tr[data-offset="45"] td.value')?.textContent.length >= 6000,
      null, { timeout: WAIT_MS });
    await page.click('#latest');
    await waitFirstOffset(67);
  });

  await check('key lookup shows the value as JSON', async () => {
    await showView('keys');
    await page.fill('#lookup-key', 'fruit');
    await page.click('#lookup button');
    const out = page.locator('#lookup-result.value');
    await out.waitFor({ state: 'visible', timeout: WAIT_MS });
    const v = JSON.parse(await out.textContent());
    expect(v.name === 'apple' && v.qty === 3, `value ${JSON.stringify(v)}`);
    expect(/ UTC/.test(await page.textContent('#lookup-meta')), 'time not in UTC');
  });

  await check('key lookup of a missing key shows the error', async () => {
    await page.fill('#lookup-key', 'no-such-key');
    await page.click('#lookup button');
    const out = page.locator('#lookup-result.error');
    await out.waitFor({ state: 'visible', timeout: WAIT_MS });
    expect(/404/.test(await out.textContent()), await out.textContent());
  });

  await check('groups: cursor, lag with its chart, members with pending counts', async () => {
    await showView('groups');
    expect(/view=groups/.test(await page.evaluate(() => location.hash)), 'view not in the URL');
    const billing = page.locator('#groups tbody tr[data-group="billing"]');
    await billing.waitFor({ state: 'visible', timeout: WAIT_MS });
    const cells = await billing.locator('td').allTextContents();
    expect(cells[1] === '10' && Number(cells[3].replace(/,/g, '')) === 58, `billing ${cells.join(' | ')}`);
    expect(await billing.locator('svg.spark').count() === 1, 'no lag chart');
    const live = page.locator('#groups tbody tr[data-group="live"]');
    await live.locator('button').first().click();
    const members = page.locator('#groups tbody tr.members');
    await members.waitFor({ state: 'visible', timeout: WAIT_MS });
    expect(/member-\d+: 0 pending · ack explicit/.test(await members.textContent()),
           await members.textContent());
    await shot('groups.png');
  });

  await check('seek a group, confirmed in a dialog', async () => {
    await page.locator('#groups tbody tr[data-group="billing"] button.seek').click();
    await page.locator('#modal.shown').waitFor({ state: 'visible', timeout: WAIT_MS });
    await page.selectOption('#seek-to', 'offset');
    await page.fill('#seek-value', '99999');
    await page.click('#modal-ok');
    await page.locator('#modal-error').waitFor({ state: 'visible', timeout: WAIT_MS });
    expect(/outside what topic/.test(await page.textContent('#modal-error')), await page.textContent('#modal-error'));
    await page.selectOption('#seek-to', 'earliest');
    await shot('modal.png');
    await page.click('#modal-ok');
    await page.locator('#modal').waitFor({ state: 'hidden', timeout: WAIT_MS });
    await page.waitForFunction(() =>
      document.querySelector('#groups tbody tr[data-group="billing"] td:nth-child(2)')?.textContent === '0',
      null, { timeout: WAIT_MS });
  });

  await check('delete a group, confirmed by typing its name', async () => {
    await page.locator('#groups tbody tr[data-group="billing"] button.delete-group').click();
    await page.locator('#modal.shown').waitFor({ state: 'visible', timeout: WAIT_MS });
    expect(await page.isDisabled('#modal-ok'), 'OK enabled before typing');
    await page.fill('#modal-confirm', 'billin');
    expect(await page.isDisabled('#modal-ok'), 'OK enabled by a wrong name');
    await page.fill('#modal-confirm', 'billing');
    await page.click('#modal-ok');
    await page.locator('#groups tbody tr[data-group="billing"]').waitFor({ state: 'detached', timeout: WAIT_MS });
  });

  await check('produce a test event from the form', async () => {
    await page.click('#new-event');
    await page.fill('#produce-topic', 'ui-new');
    await page.fill('#produce-key', 'k1');
    await page.fill('#produce-value', '{"status": "shipped", "n": [1, 2]}');
    await page.fill('#produce-headers', 'source=console');
    await page.click('#produce button');
    const out = page.locator('#produce-result');
    await page.waitForFunction(() => /stored in ui-new at offset 0/.test(
      document.querySelector('#produce-result')?.textContent || ''), null, { timeout: WAIT_MS });
    await shot('produce.png');
    await page.locator('#topics tbody tr[data-topic="ui-new"]').click();
    await showView('events');
    await waitFirstOffset(0);
    const rows = await tailRows();
    expect(rows[0][2] === 'k1' && rows[0][4] === 'source=console', rows[0].join(' | '));
    expect(/"status":"shipped"/.test(rows[0][3]), rows[0][3]);
    void out;
  });

  await check('delete a topic, confirmed by typing its name', async () => {
    await page.locator('#topics tbody tr[data-topic="other-topic"]').click();
    await page.click('#delete-topic');
    await page.locator('#modal.shown').waitFor({ state: 'visible', timeout: WAIT_MS });
    expect(await page.isDisabled('#modal-ok'), 'OK enabled before typing');
    await page.fill('#modal-confirm', 'other-topic');
    await page.click('#modal-ok');
    await page.locator('#topics tbody tr[data-topic="other-topic"]').waitFor({ state: 'detached', timeout: WAIT_MS });
    await page.locator('#topic-panel').waitFor({ state: 'hidden', timeout: WAIT_MS });
  });

  await check('POSTs answer errors in JSON', async () => {
    expectErrors = true;
    const r = await page.evaluate(async (token) => {
      const h = { Authorization: 'Bearer ' + token };
      const a = await fetch('/api/topics/x/events', { method: 'POST', headers: h, body: '{"value":1}' });
      const b = await fetch('/api/topics/' + encodeURIComponent('bad topic') + '/events', {
        method: 'POST', headers: { ...h, 'Content-Type': 'application/json' }, body: '{"value":1}' });
      const c = await fetch('/api/topics/ui-new/events', {
        method: 'POST', headers: { ...h, 'Content-Type': 'application/json' }, body: '{"value":' });
      return [[a.status, await a.json()], [b.status, await b.json()], [c.status, await c.json()]];
    }, TOKEN);
    expectErrors = false;
    expect(r[0][0] === 415 && /application\/json/.test(r[0][1].error), JSON.stringify(r[0]));
    expect(r[1][0] === 400 && /topic name/.test(r[1][1].error), JSON.stringify(r[1]));
    expect(r[2][0] === 400 && /line 1/.test(r[2][1].error), JSON.stringify(r[2]));
  });

  await page.locator(`#topics tbody tr[data-topic="${TOPIC}"]`).click();
  await waitFirstOffset(67);

  await check('screenshot written', async () => {
    await shot('console.png');
  });
} catch (e) {
  failed++;
  console.log(`FAIL browser: ${String(e && e.message || e).split('\n')[0]}`);
} finally {
  if (browser) await browser.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
