// make test-ui: the web console in headless Chromium, driven by playwright-core.
//
// e2e/ui/run.sh starts krappyd (with an --http-token), produces a topic and
// runs this with:
//   KRAPPY_UI_URL    the console, http://127.0.0.1:PORT/
//   KRAPPY_UI_TOKEN  the admin token
//   KRAPPY_UI_TOPIC  the topic it produced (keys greeting=hello, fruit={...})
//   KRAPPY_UI_OUT    output directory (screenshot console.png, browser profile)
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
    console.log(`FAIL ${name}: ${String(e && e.message || e).split('\n')[0]}`);
  }
}
function expect(cond, msg) { if (!cond) throw new Error(msg); }

const profile = mkdtempSync(path.join(tmpdir(), 'krappy-ui-chromium-'));
const origin = new URL(URL_).origin;
const outside = [];      // requests that left the admin port
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
  // Expected failures: /api's 401 before the token, the missing key's 404.
  page.on('response', (r) => {
    const p = new URL(r.url()).pathname;
    if (r.status() >= 400 && !(r.status() === 401 && p.startsWith('/api/')) &&
        !(r.status() === 404 && p.endsWith('/keys/no-such-key')))
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

  await check('the produced topic is in the topics table', async () => {
    const row = page.locator(`#topics tbody tr[data-topic="${TOPIC}"]`);
    await row.waitFor({ state: 'visible', timeout: WAIT_MS });
    const cells = await row.locator('td').allTextContents();
    expect(cells[0] === TOPIC, `name cell ${cells[0]}`);
    expect(Number(cells[2].replace(/,/g, '')) === 44, `next is ${cells[2]}, want 44`);
  });

  await check('rates appear after a refresh', async () => {
    const rate = page.locator(`#topics tbody tr[data-topic="${TOPIC}"] td.rate`);
    await page.waitForFunction(
      (sel) => /\/s$/.test(document.querySelector(sel)?.textContent || ''),
      `#topics tbody tr[data-topic="${TOPIC}"] td.rate`, { timeout: WAIT_MS });
    expect(/\/s$/.test(await rate.textContent()), 'no rate');
  });

  await check('key lookup shows the value as JSON', async () => {
    await page.selectOption('#lookup-topic', TOPIC, { timeout: WAIT_MS });
    await page.fill('#lookup-key', 'fruit');
    await page.click('#lookup button');
    const out = page.locator('#lookup-result.value');
    await out.waitFor({ state: 'visible', timeout: WAIT_MS });
    const v = JSON.parse(await out.textContent());
    expect(v.name === 'apple' && v.qty === 3, `value ${JSON.stringify(v)}`);
  });

  await check('key lookup of a missing key shows the error', async () => {
    await page.fill('#lookup-key', 'no-such-key');
    await page.click('#lookup button');
    const out = page.locator('#lookup-result.error');
    await out.waitFor({ state: 'visible', timeout: WAIT_MS });
    expect(/404/.test(await out.textContent()), await out.textContent());
  });

  await check('the tail shows the latest events', async () => {
    await page.locator('#topics tbody tr', { hasText: TOPIC }).first().click();
    await page.waitForFunction(() => document.querySelectorAll('#tail tbody tr').length === 20,
                               null, { timeout: WAIT_MS });
    const first = await page.locator('#tail tbody tr').first().locator('td').allTextContents();
    expect(first[0] === '43' && first[3] === 'reading 39', `newest row ${first.join(' | ')}`);
  });

  await check('consumer groups show cursor and lag', async () => {
    const row = page.locator('#groups tbody tr', { hasText: 'billing' });
    await row.waitFor({ state: 'visible', timeout: WAIT_MS });
    const cells = await row.locator('td').allTextContents();
    expect(cells[0] === 'billing', `group ${cells[0]}`);
    expect(Number(cells[3].replace(/,/g, '')) > 0, `lag ${cells[3]}`);
  });

  await page.fill('#lookup-key', 'fruit');
  await page.click('#lookup button');
  await page.locator('#lookup-result.value').waitFor({ state: 'visible', timeout: WAIT_MS });

  await check('screenshot written', async () => {
    await page.screenshot({ path: path.join(OUT, 'console.png'), fullPage: true, timeout: WAIT_MS });
  });

  await check('nothing fetched from outside the admin port', async () => {
    expect(outside.length === 0, outside.join(' '));
  });

  await check('no script errors', async () => {
    expect(pageErrors.length === 0, pageErrors.join(' | '));
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
