// The browser scenario of the web interface, driven by tests/tests/browser.rs against a real
// `motcua` node: Debian's chromium through playwright-core, no browser download.
//
// Why one script: the scenario is one working day in a small office (sign in, receive a dossier,
// print its slip, a citizen rates on the kiosk, the hall board shows it, the citizen looks the
// dossier up, a leader exports the report, a forged form is refused), and each step needs the
// state the previous one made. Every wait is for a condition with a generous bound; nothing
// assumes the machine is fast. Screenshots of every page go to SCREENSHOT_DIR.
//
// Input (environment): MOTCUA_BASE (http://127.0.0.1:PORT), MOTCUA_PASSWORD (every account's),
// SCREENSHOT_DIR, DOWNLOAD_DIR, CHROMIUM (default /usr/bin/chromium).
// Output: the last line of stdout is `RESULT {json}` for the Rust side; any failure exits 1.

import { chromium } from 'playwright-core';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const BASE = process.env.MOTCUA_BASE;
const PASSWORD = process.env.MOTCUA_PASSWORD;
const SHOTS = process.env.SCREENSHOT_DIR;
const DOWNLOADS = process.env.DOWNLOAD_DIR;
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
// Only catches hangs: a slow machine passes, a stuck page fails.
const WAIT_MS = 120_000;

const APPLICANT = { name: 'Trần Thị Bảo Mật', id: '001190123456', phone: '0912000111', address: 'Thôn Riêng Tư, xã Thử' };

if (!BASE || !PASSWORD || !SHOTS || !DOWNLOADS) {
  console.error('MOTCUA_BASE, MOTCUA_PASSWORD, SCREENSHOT_DIR and DOWNLOAD_DIR are required');
  process.exit(2);
}
mkdirSync(SHOTS, { recursive: true });
mkdirSync(DOWNLOADS, { recursive: true });

function check(cond, message) {
  if (!cond) throw new Error('check failed: ' + message);
}

async function shot(page, name, options = {}) {
  await page.screenshot({ path: join(SHOTS, name + '.png'), fullPage: true, ...options });
  console.log('screenshot ' + name);
}

async function signIn(context, user) {
  const page = await context.newPage();
  await page.goto(BASE + '/dang-nhap');
  await page.fill('input[name=username]', user);
  await page.fill('input[name=password]', PASSWORD);
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  check(!page.url().includes('/dang-nhap'), 'sign-in as ' + user + ' left the sign-in page');
  return page;
}

async function pair(context, token, expectPath) {
  const page = await context.newPage();
  await page.goto(BASE + '/thiet-bi/ghep');
  await page.fill('input[name=token]', token);
  await Promise.all([page.waitForURL('**' + expectPath), page.click('button[type=submit]')]);
  return page;
}

/** POSTs a form from inside `page` (same origin, the page's cookies), returns the status. */
async function rawPost(page, path, fields) {
  return page.evaluate(async ({ path, fields }) => {
    const r = await fetch(path, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(fields).toString(),
      redirect: 'manual',
    });
    return r.status;
  }, { path, fields });
}

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  // Playwright gives each launch a fresh temporary --user-data-dir of its own.
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  timeout: WAIT_MS,
});
const result = {};
try {
  const desktop = { viewport: { width: 1280, height: 860 }, locale: 'vi-VN', acceptDownloads: true };

  // The landing page and sign-in, as anyone sees them.
  const visitor = await browser.newContext(desktop);
  visitor.setDefaultTimeout(WAIT_MS);
  const home = await visitor.newPage();
  await home.goto(BASE + '/');
  await shot(home, '01-trang-chu');
  await home.goto(BASE + '/dang-nhap');
  await shot(home, '02-dang-nhap');

  // The administrator makes a rating tablet and a hall TV and reads their pairing tokens.
  const adminCtx = await browser.newContext(desktop);
  adminCtx.setDefaultTimeout(WAIT_MS);
  const admin = await signIn(adminCtx, 'admin');
  check(admin.url().endsWith('/quan-tri'), 'admin lands on the admin page');
  const tokens = {};
  for (const [name, kind] of [['may-danh-gia-1', 'kiosk'], ['man-hinh-sanh', 'board']]) {
    await admin.goto(BASE + '/quan-tri');
    await admin.fill('form[action="/quan-tri/thiet-bi"] input[name=name]', name);
    await admin.selectOption('form[action="/quan-tri/thiet-bi"] select[name=kind]', kind);
    await Promise.all([admin.waitForSelector('#device-token'), admin.click('form[action="/quan-tri/thiet-bi"] button')]);
    tokens[kind] = (await admin.textContent('#device-token')).trim();
    check(/^[0-9a-f]{64}$/.test(tokens[kind]), 'device token shown once');
  }
  await admin.goto(BASE + '/quan-tri');
  await shot(admin, '12-quan-tri');

  // The intake officer signs in and receives a dossier.
  const staffCtx = await browser.newContext(desktop);
  staffCtx.setDefaultTimeout(WAIT_MS);
  const staff = await signIn(staffCtx, 'tiepnhan');
  check(staff.url().endsWith('/quay'), 'intake officer lands on the counter');
  await staff.goto(BASE + '/quay/tiep-nhan');
  // Typed without diacritics: the live search still finds "Cấp Giấy xác nhận tình trạng hôn nhân".
  await staff.fill('#procedure-search', 'xac nhan hon nhan');
  const choice = staff.locator('#procedure-list label.choice', { hasText: 'xác nhận tình trạng hôn nhân' });
  await choice.first().waitFor();
  await choice.first().locator('input').check();
  await staff.fill('input[name=name]', APPLICANT.name);
  await staff.fill('input[name=id_number]', APPLICANT.id);
  await staff.fill('input[name=phone]', APPLICANT.phone);
  await staff.fill('input[name=address]', APPLICANT.address);
  await staff.check('input[name=digitised]');
  await shot(staff, '04-tiep-nhan-ho-so');
  await Promise.all([staff.waitForSelector('#new-code'), staff.click('form[action="/quay/tiep-nhan"][method=post] button[type=submit]')]);
  const code = (await staff.textContent('#new-code')).trim();
  const due = (await staff.textContent('#new-due')).trim();
  check(/^000\.00\.00\.H99-\d{6}-\d{4}$/.test(code), 'dossier code allocated: ' + code);
  check(/^\d{2}\/\d{2}\/\d{4} \d{2}:\d{2}$/.test(due), 'due date shown at once: ' + due);
  result.code = code;
  await shot(staff, '05-ho-so');

  // The counter's home lists it among today's dossiers.
  await staff.goto(BASE + '/quay');
  await staff.locator('a', { hasText: code }).first().waitFor();

  // The receipt and appointment slip renders with the code as a QR code.
  const slip = await staffCtx.newPage();
  await slip.goto(BASE + '/ho-so/' + code + '/in/tiep-nhan');
  await slip.waitForSelector('#qr svg path');
  check((await slip.getAttribute('#qr', 'data-code')) === code, 'QR carries the dossier code');
  const qrBox = await slip.locator('#qr svg').boundingBox();
  check(qrBox && qrBox.width > 50 && qrBox.height > 50, 'QR code is drawn at a scannable size');
  check((await slip.textContent('article.a5')).includes(APPLICANT.name), 'the slip names the applicant');
  // What the printer gets: print media on a page the width of an A5 sheet (148 mm).
  await slip.setViewportSize({ width: 560, height: 794 });
  await slip.emulateMedia({ media: 'print' });
  await shot(slip, '06-giay-tiep-nhan-a5');
  await slip.emulateMedia({ media: 'screen' });
  await slip.setViewportSize({ width: 1280, height: 860 });
  await slip.goto(BASE + '/ho-so/' + code + '/in/kiem-soat');
  await slip.waitForSelector('table.control');
  await shot(slip, '07-phieu-kiem-soat');

  // The hall TV is paired and shows no rating yet today.
  const tvCtx = await browser.newContext({ viewport: { width: 1366, height: 768 }, locale: 'vi-VN' });
  tvCtx.setDefaultTimeout(WAIT_MS);
  const tv = await pair(tvCtx, tokens.board, '/bang-tin');
  const ratingsBefore = Number((await tv.textContent('#today [data-figure=ratings]')).trim());

  // A citizen rates on the kiosk, naming the official and the dossier.
  const kioskCtx = await browser.newContext({ viewport: { width: 1024, height: 768 }, locale: 'vi-VN', hasTouch: true });
  kioskCtx.setDefaultTimeout(WAIT_MS);
  const kiosk = await pair(kioskCtx, tokens.kiosk, '/danh-gia');
  await shot(kiosk, '08-may-danh-gia');
  await kiosk.selectOption('select[name=official]', 'tiepnhan');
  await kiosk.fill('input[name=dossier]', code);
  await Promise.all([kiosk.waitForURL('**/danh-gia/cam-on'), kiosk.click('button.score.good')]);
  await kiosk.waitForSelector('#thanks');
  await shot(kiosk, '09-cam-on');
  // The thanks screen returns to the start by itself.
  await kiosk.waitForURL(url => url.pathname === '/danh-gia', { timeout: WAIT_MS });
  await kiosk.waitForSelector('button.score.good');

  // The board, left open, picks the rating up by itself.
  await tv.waitForFunction(before => {
    const el = document.querySelector('#today [data-figure=ratings]');
    return el && Number(el.textContent.trim()) === before + 1;
  }, ratingsBefore, { timeout: WAIT_MS, polling: 500 });
  check((await tv.textContent('#today [data-figure=satisfaction]')).includes('100,00%'), 'satisfaction shown');
  await tv.waitForSelector('tr[data-official="tiepnhan"]');
  await shot(tv, '10-bang-tin');
  result.board_ratings_today = ratingsBefore + 1;

  // A kiosk may not do anything else: a staff page sends it away.
  const kioskStaff = await kiosk.goto(BASE + '/quay');
  check(kioskStaff.url().includes('/dang-nhap'), 'a kiosk has no staff rights');

  // The citizen looks the dossier up: status and appointment, no personal data.
  const citizenCtx = await browser.newContext({ viewport: { width: 412, height: 900 }, locale: 'vi-VN', isMobile: true });
  citizenCtx.setDefaultTimeout(WAIT_MS);
  const citizen = await citizenCtx.newPage();
  await citizen.goto(BASE + '/tra-cuu');
  await citizen.fill('input[name=ma]', code);
  await Promise.all([citizen.waitForSelector('#lookup-status'), citizen.click('button[type=submit]')]);
  check((await citizen.textContent('#lookup-status')).includes('Đã tiếp nhận'), 'status shown');
  check((await citizen.textContent('#lookup-appointment')).trim() === due, 'appointment shown');
  const html = await citizen.content();
  for (const secret of [APPLICANT.name, APPLICANT.id, APPLICANT.phone, APPLICANT.address]) {
    check(!html.includes(secret), 'public lookup must not show personal data: ' + secret);
  }
  await shot(citizen, '11-tra-cuu');
  // A phone scanning the QR code of a URL lands on the same answer.
  await citizen.goto(BASE + '/tra-cuu/' + encodeURIComponent(code));
  check(!(await citizen.content()).includes(APPLICANT.id), 'lookup by URL shows no ID number');

  // A leader's report for this month, its charts, and the exports.
  const report = await adminCtx.newPage();
  await report.goto(BASE + '/bao-cao');
  await report.waitForSelector('#report-summary');
  check(await report.locator('figure.chart svg').count() >= 3, 'report has charts');
  await shot(report, '13-bao-cao');
  const [xlsx] = await Promise.all([report.waitForEvent('download'), report.click('#export-xlsx')]);
  result.xlsx = join(DOWNLOADS, 'bao-cao.xlsx');
  await xlsx.saveAs(result.xlsx);
  const [csv] = await Promise.all([report.waitForEvent('download'), report.click('#export-csv')]);
  result.csv = join(DOWNLOADS, 'bao-cao.csv');
  await csv.saveAs(result.csv);

  // The province's dashboard says plainly that it has no sync data yet.
  const dash = await adminCtx.newPage();
  await dash.goto(BASE + '/tinh');
  await dash.waitForSelector('#units');
  check((await dash.textContent('#sync-unknown')).includes('chưa có dữ liệu đồng bộ'), 'staleness is stated, not faked');
  check((await dash.locator('#units tbody tr', { hasText: 'UBND xã An Bình' }).textContent()).includes('chưa có dữ liệu đồng bộ'),
    'an enrolled commune that never synced is marked as such');
  await shot(dash, '14-toan-tinh');

  // Forms without a valid CSRF token are refused with 403 and write nothing.
  const fields = { procedure_code: '1.001193', name: 'Giả Mạo', id_number: '001190999999', channel: 'direct' };
  result.csrf_missing = await rawPost(staff, '/quay/tiep-nhan', fields);
  result.csrf_wrong = await rawPost(staff, '/quay/tiep-nhan', { ...fields, csrf: 'f'.repeat(64) });
  result.kiosk_csrf_missing = await rawPost(kiosk, '/danh-gia', { score: 'dissatisfied' });
  check(result.csrf_missing === 403, 'POST without CSRF token: ' + result.csrf_missing);
  check(result.csrf_wrong === 403, 'POST with a wrong CSRF token: ' + result.csrf_wrong);
  check(result.kiosk_csrf_missing === 403, 'kiosk POST without CSRF token: ' + result.kiosk_csrf_missing);
  await staff.goto(BASE + '/quay');
  await shot(staff, '03-quay-mot-cua');
  const forged = await staff.locator('td', { hasText: 'Giả Mạo' }).count();
  check(forged === 0, 'a refused form wrote nothing');

  result.ok = true;
} finally {
  await browser.close();
}
writeFileSync(join(DOWNLOADS, 'result.json'), JSON.stringify(result));
console.log('RESULT ' + JSON.stringify(result));
