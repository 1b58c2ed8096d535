// The playground page in a real browser: Debian's chromium, headless, driven
// by puppeteer-core, pointed only at the service on 127.0.0.1. It picks a
// runtime, runs code with stdin, and shows stdout, the verdict, time and
// memory. BRIG_UPDATE_SCREENSHOT=1 keeps its screenshot as docs/playground.png.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { guardLeaks } from './helpers.js';
import { startServer, type Running } from './server-util.js';

const CHROMIUM = process.env.BRIG_CHROMIUM ?? '/usr/bin/chromium';
const noChromium = existsSync(CHROMIUM) ? false : `skipped: no ${CHROMIUM} (apt-get install chromium)`;
const docs = join(dirname(fileURLToPath(import.meta.url)), '../../docs');

describe('playground page', { skip: noChromium }, () => {
  let s: Running;
  let browser: Browser;
  let page: Page;
  let profileDir: string;
  before(async () => {
    s = await startServer();
    profileDir = mkdtempSync(join(tmpdir(), 'brig-chromium-'));
    browser = await puppeteer.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-sync', `--user-data-dir=${profileDir}`],
    });
    page = await browser.newPage();
    await page.setViewport({ width: 1100, height: 720 });
    // Only the service: any request elsewhere fails the test.
    await page.setRequestInterception(true);
    page.on('request', (req) => (req.url().startsWith(s.url) ? req.continue() : req.abort()));
  });
  after(async () => {
    await browser?.close();
    await s?.close();
    rmSync(profileDir, { recursive: true, force: true });
  });

  it('runs python with stdin and shows stdout, the verdict, time and memory', async () => {
    const seen: string[] = [];
    page.on('request', (req) => seen.push(req.url()));
    await page.goto(s.url + '/', { waitUntil: 'networkidle0' });
    const options = await page.$$eval('#runtime option', (os) => os.map((o) => o.textContent));
    assert.ok(options.some((o) => o?.startsWith('python 3.')), JSON.stringify(options));
    assert.ok(options.some((o) => o?.startsWith('c ')));
    assert.match(await page.$eval('#code', (e) => (e as HTMLTextAreaElement).value), /hello, \{name\}/);
    await page.$eval('#stdin', (e) => ((e as HTMLTextAreaElement).value = 'playground'));
    await page.click('#run');
    await page.waitForFunction(() => !document.getElementById('verdict')!.textContent!.startsWith('running'), { timeout: 20000 });
    assert.equal(await page.$eval('#stdout', (e) => e.textContent), 'hello, playground\n');
    assert.equal(await page.$eval('#verdict', (e) => e.textContent), 'OK (exit 0)');
    assert.match((await page.$eval('#stats', (e) => e.textContent))!, /^cpu \d+ ms, wall \d+ ms, memory \d+\.\d MiB$/);
    const shot = process.env.BRIG_UPDATE_SCREENSHOT === '1' ? join(docs, 'playground.png') : join(profileDir, 'playground.png');
    mkdirSync(dirname(shot), { recursive: true });
    await page.screenshot({ path: shot });
    assert.ok(statSync(shot).size > 10000);
    assert.ok(seen.every((u) => u.startsWith(s.url)), JSON.stringify(seen));
  });

  it('a C compile error shows in the compile pane with a failed verdict', async () => {
    const index = await page.$$eval('#runtime option', (os) => os.findIndex((o) => o.textContent!.startsWith('c ')));
    await page.select('#runtime', String(index));
    await page.$eval('#code', (e) => ((e as HTMLTextAreaElement).value = 'int main( {'));
    await page.click('#run');
    await page.waitForFunction(() => !document.getElementById('verdict')!.textContent!.startsWith('running'), { timeout: 20000 });
    assert.match((await page.$eval('#verdict', (e) => e.textContent))!, /^RE: /);
    assert.match((await page.$eval('#compile', (e) => e.textContent))!, /error/);
  });
});

guardLeaks();
