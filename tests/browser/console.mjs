// The console in a real browser: two approvers sign in through the company's identity
// provider, approve a pending suspension (quorum 2), and see the user suspended and their
// decisions in the alert's timeline and the audit page. Takes a screenshot of each page at
// 1280 and 390 px wide. Env: LOCKOUT_URL, APPROVAL_ID, ALERT_ID, USER_EMAIL, SHOTS (a folder),
// CHROMIUM (default /usr/bin/chromium). Exits non-zero, saying why, on the first failure.
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

const { LOCKOUT_URL, APPROVAL_ID, ALERT_ID, USER_EMAIL, SHOTS } = process.env;
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
fs.mkdirSync(SHOTS, { recursive: true });

function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
}

async function shoot(page, name) {
  for (const [width, height] of [[1280, 900], [390, 844]]) {
    await page.setViewportSize({ width, height });
    await page.screenshot({ path: path.join(SHOTS, `${name}-${width}.png`), fullPage: true });
  }
  await page.setViewportSize({ width: 1280, height: 900 });
}

async function signIn(page, who) {
  await page.goto(`${LOCKOUT_URL}/console/approvals`);
  check(page.url().includes('/console/sign-in'), `an anonymous visit goes to sign-in (${page.url()})`);
  await page.click('#oidc');
  // The provider's own sign-in form, then its consent page.
  await page.fill('input[name=login]', who);
  await page.fill('input[name=password]', 'any password');
  await page.click('button[type=submit]');
  if (await page.locator('input[name=prompt][value=consent]').count()) {
    await page.click('button[type=submit]');
  }
  await page.waitForURL(/\/console\/approvals$/);
  check((await page.textContent('header')).includes(who), `signed in as ${who}`);
}

async function signOut(page) {
  await page.click('form.who button');
  await page.waitForURL(/why=signed-out/);
}

const browser = await chromium.launch({ executablePath, args: ['--no-sandbox'] });
let page;
try {
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.setDefaultTimeout(10000);
  await page.goto(`${LOCKOUT_URL}/console/approvals`);
  await shoot(page, 'sign-in');

  // The first approver.
  await signIn(page, 'ana@example.com');
  check((await page.textContent('main')).includes(USER_EMAIL), 'the pending list names the user');
  await shoot(page, 'approvals');
  await page.click(`a[href$="${APPROVAL_ID}"]`);
  const detail = await page.textContent('main');
  check(detail.includes(`suspend ${USER_EMAIL}`), 'the approval says exactly what will happen');
  check(detail.includes('ACTIVE'), 'the user as 1Password has them now');
  await shoot(page, 'approval');
  await page.fill('#reason', 'confirmed with the SOC');
  await page.click('#approve');
  check((await page.textContent('main')).includes('1 of 2'), 'the first approval is recorded, 1 of 2');
  await shoot(page, 'decision-recorded');
  await signOut(page);

  // The second approver, in their own browser (the provider remembers who signed in there).
  page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
  page.setDefaultTimeout(10000);
  await signIn(page, 'ben@example.com');
  await page.goto(`${LOCKOUT_URL}/console/approvals/${APPROVAL_ID}`);
  await page.click('#approve');
  check((await page.textContent('main')).includes('Approved'), 'the quorum is met');

  // The user is suspended (the worker runs at once; the page is reloaded until it shows).
  let suspended = false;
  for (let i = 0; i < 50 && !suspended; i++) {
    await page.goto(`${LOCKOUT_URL}/console/users/${USER_EMAIL}`);
    suspended = (await page.textContent('main')).includes('SUSPENDED');
    if (!suspended) await page.waitForTimeout(200);
  }
  check(suspended, 'the user page shows the user suspended');
  await shoot(page, 'user');

  await page.goto(`${LOCKOUT_URL}/console/alerts/${ALERT_ID}`);
  const timeline = await page.textContent('main');
  check((timeline.match(/approval\.decision/g) || []).length >= 2, 'both decisions in the alert timeline');
  check(timeline.includes('approver:ana@example.com') && timeline.includes('approver:ben@example.com'), 'the timeline names both approvers');
  await shoot(page, 'alert');

  await page.goto(`${LOCKOUT_URL}/console/alerts`);
  await shoot(page, 'alerts');

  await page.goto(`${LOCKOUT_URL}/console/audit?kind=approval`);
  const audit = await page.textContent('main');
  check(audit.includes('approval.decision') && audit.includes('ben@example.com'), 'the audit page shows the decisions');
  await shoot(page, 'audit');
  await page.goto(`${LOCKOUT_URL}/console/audit/verify`);
  check((await page.textContent('main')).includes('Intact'), 'the chain verifies');
  await shoot(page, 'audit-verify');

  // Nothing is pending any more.
  await page.goto(`${LOCKOUT_URL}/console/approvals`);
  check((await page.textContent('main')).includes('Nothing waits for a decision'), 'nothing pending');
  await shoot(page, 'approvals-none-pending');
  await signOut(page);
  await shoot(page, 'signed-out');
  console.log('OK');
} catch (e) {
  // Where it stopped, to read in the test's failure.
  console.error(`at ${page && page.url()}:\n${page && (await page.textContent('body').catch(() => ''))}`);
  if (page) await page.screenshot({ path: path.join(SHOTS, 'failure.png'), fullPage: true }).catch(() => {});
  throw e;
} finally {
  await browser.close();
}
