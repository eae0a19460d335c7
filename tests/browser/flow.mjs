// Clicks through fbconnect's pages in Debian's headless Chromium, like a person would:
// connect page → sandbox authorize page → back → connected page → connect page →
// Disconnect; then a user of three businesses: the chooser → a business → "Change
// business" shows it marked.  Saves a screenshot of each page (desktop and phone width), and fails on any
// console error, CSP violation, failed check or page wider than a phone.
//
// usage: node flow.mjs SITE_URL OUT_DIR EMAIL
//   SITE_URL  e.g. http://127.0.0.1:8080/  (fbconnect under the base path /)
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

const [site, outDir, email] = process.argv.slice(2);
if (!site || !outDir || !email) {
  console.error("usage: node flow.mjs SITE_URL OUT_DIR EMAIL");
  process.exit(2);
}
mkdirSync(outDir, { recursive: true });

const problems = [];
const fail = (msg) => problems.push(msg);
const check = (cond, msg) => { if (!cond) fail(msg); };

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  // playwright gives each launch a fresh, empty profile of its own.
});

// Console errors and CSP violations, on every page of a context.
let expectErrorStatus = false; // the error-page step loads a 4xx page on purpose
function watch(page, label) {
  page.on("console", (m) => {
    if (expectErrorStatus && /Failed to load resource: .* status of 4\d\d/.test(m.text()))
      return;
    if (m.type() === "error" || /Content Security Policy/i.test(m.text()))
      fail(`${label}: console ${m.type()}: ${m.text()}`);
  });
  page.on("pageerror", (e) => fail(`${label}: page error: ${e.message}`));
}

// A page fits a phone: nothing wider than the viewport.
async function fitsWidth(page, label) {
  const { scroll, client } = await page.evaluate(() => ({
    scroll: document.documentElement.scrollWidth,
    client: document.documentElement.clientWidth,
  }));
  check(scroll <= client, `${label}: ${scroll}px wide in a ${client}px viewport`);
}

async function shot(page, name) {
  await page.screenshot({ path: join(outDir, `${name}.png`), fullPage: true });
}

async function flow(viewport, suffix) {
  const context = await browser.newContext({ viewport, deviceScaleFactor: 1 });
  const page = await context.newPage();
  watch(page, suffix);
  // CSP violations also reach the page as events: record them.
  await page.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (e) =>
      console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`));
  });

  await page.goto(new URL("connect", site).href);
  check((await page.title()).includes("Connect FreshBooks"), `${suffix}: connect page title`);
  await fitsWidth(page, `${suffix} connect`);
  await shot(page, `1-connect${suffix}`);

  await page.getByRole("link", { name: "Connect to FreshBooks" }).click();
  await page.waitForURL(/\/oauth\/authorize/);
  await fitsWidth(page, `${suffix} authorize`);
  await page.getByLabel(/Sign in as/).fill(email);
  await shot(page, `2-sandbox-authorize${suffix}`);
  await page.getByRole("button", { name: "Authorize" }).click();

  await page.waitForURL(/\/connected$/);
  const connected = await page.textContent("main");
  check(connected.includes("You're connected to FreshBooks"), `${suffix}: connected page text`);
  await fitsWidth(page, `${suffix} connected`);
  await shot(page, `3-connected${suffix}`);

  check((await page.getByRole("link", { name: "Back to the site" }).getAttribute("href")) === "/",
         `${suffix}: the way back to the site`);
  await page.getByRole("link", { name: "Manage your FreshBooks connection" }).click();
  await page.waitForURL(/\/connect$/);
  check((await page.textContent("main")).includes(email), `${suffix}: connect page names the user`);
  await fitsWidth(page, `${suffix} connect (connected)`);
  await shot(page, `4-connect-connected${suffix}`);

  await page.getByRole("button", { name: "Disconnect FreshBooks" }).click();
  await page.waitForURL(/disconnected=1/);
  check((await page.textContent("main")).includes("FreshBooks confirmed"), `${suffix}: disconnect notice`);
  await fitsWidth(page, `${suffix} disconnected`);
  await shot(page, `5-disconnected${suffix}`);

  // A user of several businesses is asked which one first, then can change it.
  await page.getByRole("link", { name: "Connect to FreshBooks" }).click();
  await page.waitForURL(/\/oauth\/authorize/);
  await page.getByLabel(/Sign in as/).fill(`biz${suffix}-${email}`);
  await page.getByLabel(/Businesses this user belongs to/).selectOption("3");
  await page.getByRole("button", { name: "Authorize" }).click();
  await page.waitForURL(/\/business$/);
  check((await page.textContent("h1")).includes("Which business"), `${suffix}: chooser heading`);
  const choices = page.locator("form.choices button");
  check((await choices.count()) === 3, `${suffix}: ${await choices.count()} business buttons`);
  check((await page.locator('button[aria-current="true"]').count()) === 0, `${suffix}: marked before a choice`);
  check((await page.textContent("main")).includes("Client"), `${suffix}: roles in words`);
  await fitsWidth(page, `${suffix} chooser`);
  await shot(page, `7-business${suffix}`);
  await page.getByRole("button", { name: /Babbage Ltd/ }).click();
  await page.waitForURL(/\/connected$/);
  check((await page.textContent("main")).includes("Working with Babbage Ltd"), `${suffix}: chosen business shown`);
  await page.getByRole("link", { name: "Change business" }).click();
  await page.waitForURL(/\/business$/);
  const current = page.locator('button[aria-current="true"]');
  check((await current.count()) === 1 && (await current.textContent()).includes("Babbage Ltd"),
        `${suffix}: the chosen business is not the one marked`);
  await fitsWidth(page, `${suffix} chooser (chosen)`);
  await shot(page, `8-business-chosen${suffix}`);

  // An error page, as a person would meet it: a link that is not valid.
  expectErrorStatus = true;
  await page.goto(new URL("callback?state=expired-or-forged&code=x", site).href);
  check((await page.textContent("h1")).length > 0, `${suffix}: error page heading`);
  await fitsWidth(page, `${suffix} error`);
  await shot(page, `6-error${suffix}`);
  expectErrorStatus = false;
  await context.close();
}

try {
  await flow({ width: 1280, height: 800 }, "");
  await flow({ width: 375, height: 740 }, "-phone");
} catch (e) {
  fail(`flow stopped: ${e.message.split("\n")[0]}`);
} finally {
  await browser.close();
}

for (const p of problems) console.log(`PROBLEM ${p}`);
console.log(problems.length ? `browser flow: ${problems.length} problems` : "browser flow: ok");
process.exit(problems.length ? 1 : 0);
