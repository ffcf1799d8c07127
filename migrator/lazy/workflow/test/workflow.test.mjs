// Unit tests of the workflow under Node, with Kinde's bindings stubbed on globalThis.kinde as
// @kinde/infrastructure's own tests do. The workflow is bundled here as Kinde bundles it (esbuild,
// es2019 ESM), with settings.json replaced per test where a setting is the point.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const entry = join(root, "kindeSrc/environment/workflows/clerkLazyMigration/Workflow.ts");
const baseSettings = JSON.parse(readFileSync(join(dirname(entry), "settings.json"), "utf8"));

const CLERK = "https://clerk.test/v1";
const KINDE = "https://tenant.kinde.test";
const CLERK_KEY = "sk_test_SECRETKEY123";
const M2M_SECRET = "m2m-SECRET-456";
const PASSWORD = "correct horse battery staple";
const HASHED = "$2b$10$abcdefghijklmnopqrstuuQWERTYUIOPASDFGHJKLZXCVBNM12345";

async function load(overrides = {}) {
  // The tests' own baseline, whatever `migrator lazy init` wrote into this folder's settings.json.
  const settings = {
    ...baseSettings,
    clerk_api_url: CLERK,
    users_in_kinde: false,
    refuse_two_factor: true,
    allowed_client_ids: [],
    ...overrides,
  };
  const result = await esbuild.build({
    entryPoints: [entry],
    bundle: true,
    format: "esm",
    target: "es2019",
    platform: "neutral",
    mainFields: ["module", "main"],
    write: false,
    plugins: [
      {
        name: "settings",
        setup(build) {
          build.onLoad({ filter: /settings\.json$/ }, () => ({ contents: JSON.stringify(settings), loader: "json" }));
        },
      },
    ],
  });
  const code = Buffer.from(result.outputFiles[0].contents).toString("base64");
  return import(`data:text/javascript;base64,${code}`);
}

const clerkUser = (over = {}) => ({
  id: "user_2abc",
  banned: false,
  locked: false,
  two_factor_enabled: false,
  first_name: "Ada",
  last_name: "Lovelace",
  username: "ada",
  has_image: false,
  image_url: "https://img.clerk.com/x",
  primary_email_address_id: "idn_1",
  primary_phone_number_id: "idn_3",
  email_addresses: [
    { id: "idn_1", email_address: "ada@example.com", verification: { status: "verified" } },
    { id: "idn_2", email_address: "ada.unverified@example.com", verification: { status: "unverified" } },
    { id: "idn_4", email_address: "ADA@work.example", verification: { status: "verified" } },
  ],
  phone_numbers: [{ id: "idn_3", phone_number: "+14155550100", verification: { status: "verified" } }],
  ...over,
});

/** Stubbed bindings: a fake Clerk and Kinde behind kinde.fetch (synchronous, as goja's bindings are). */
function stub({ users = [clerkUser()], password = PASSWORD, createAnswer, kindeUsers = [] } = {}) {
  const calls = [];
  const refusals = [];
  const answer = (url, options) => {
    const method = options.method;
    if (url.startsWith(`${CLERK}/users?`)) {
      const emails = new URL(url).searchParams.getAll("email_address");
      return users.filter((u) => u.email_addresses.some((e) => emails.includes(e.email_address.toLowerCase())));
    }
    const verify = url.match(/^https:\/\/clerk\.test\/v1\/users\/([^/]+)\/verify_password$/);
    if (verify && method === "POST") {
      if (!users.some((u) => u.id === decodeURIComponent(verify[1]))) return { errors: [{ code: "resource_not_found" }] };
      return options.body.password === password ? { verified: true } : { errors: [{ code: "incorrect_password" }] };
    }
    if (url === `${KINDE}/oauth2/token`) return { access_token: "tok" };
    if (url === `${KINDE}/api/v1/user` && method === "POST") {
      // createAnswer: one answer for every create, or a list answered in turn (then a success)
      if (Array.isArray(createAnswer)) return createAnswer.shift() || { id: "kp_new", created: true };
      return createAnswer || { id: "kp_new", created: true };
    }
    if (url.startsWith(`${KINDE}/api/v1/users?`) && method === "GET") return { code: "OK", users: kindeUsers };
    if (/\/api\/v1\/users\/[^/]+\/password$/.test(url) && method === "PUT") return { code: "OK", message: "Success" };
    throw new Error(`unexpected call ${method} ${url}`);
  };
  globalThis.kinde = {
    env: {
      get: (key) =>
        ({ CLERK_SECRET_KEY: { value: CLERK_KEY, isSecret: true }, KINDE_WF_M2M_CLIENT_ID: { value: "m2m" }, KINDE_WF_M2M_CLIENT_SECRET: { value: M2M_SECRET, isSecret: true } })[key],
    },
    fetch: (url, options) => {
      calls.push({ url, method: options.method, body: options.body, headers: options.headers });
      return { json: answer(url, options) };
    },
    widget: { invalidateFormField: (field, message) => refusals.push({ field, message }) },
    cache: { jwtToken: async (_name, { onMissingOrExpired }) => onMissingOrExpired() },
  };
  return { calls, refusals };
}

const event = (auth = {}) => ({
  request: { ip: "203.0.113.9", userAgent: "test" },
  context: {
    auth: { providedEmail: "Ada@Example.com", password: PASSWORD, hashedPassword: HASHED, hasUserRecordInKinde: false, ...auth },
    domains: { kindeDomain: KINDE },
    application: { clientId: "app_1" },
    workflow: { trigger: "user:existing_password_provided" },
  },
});

const shown = (calls) => calls.map((c) => `${c.method} ${c.url.split("?")[0]}`);

test("the right password creates the Kinde user as a run would and sets Kinde's hash of it", async () => {
  const workflow = await load();
  const { calls, refusals } = stub();
  await workflow.default(event());
  assert.deepEqual(refusals, []);
  assert.deepEqual(shown(calls), [
    `GET ${CLERK}/users`,
    `POST ${CLERK}/users/user_2abc/verify_password`,
    `GET ${CLERK}/users`,
    `POST ${KINDE}/oauth2/token`,
    `POST ${KINDE}/api/v1/user`,
    `PUT ${KINDE}/api/v1/users/kp_new/password`,
  ]);
  assert.equal(new URL(calls[0].url).searchParams.get("email_address"), "ada@example.com");
  assert.equal(calls[0].headers.authorization, `Bearer ${CLERK_KEY}`);
  assert.deepEqual(calls[1].body, { password: PASSWORD });
  // the extra verified email asked about: does another Clerk user hold it?
  assert.deepEqual(new URL(calls[2].url).searchParams.getAll("email_address"), ["ada@work.example"]);
  assert.deepEqual(calls[4].body, {
    provided_id: "user_2abc",
    identities: [
      { type: "email", is_verified: true, details: { email: "ada@example.com" } },
      { type: "email", is_verified: true, details: { email: "ADA@work.example" } },
      { type: "username", details: { username: "ada" } },
    ],
    profile: { given_name: "Ada", family_name: "Lovelace" },
  });
  assert.deepEqual(calls[5].body, { hashed_password: HASHED, is_temporary_password: false, hashing_method: "bcrypt" });
});

test("a user with the sign-in email alone is created without asking Clerk about other emails", async () => {
  const workflow = await load();
  const single = clerkUser({ username: null, email_addresses: [clerkUser().email_addresses[0]] });
  const { calls } = stub({ users: [single] });
  await workflow.default(event());
  assert.deepEqual(shown(calls).filter((c) => c === `GET ${CLERK}/users`), [`GET ${CLERK}/users`]);
});

test("an extra email another Clerk user also holds is never sent: the run's plan gave it to one of them", async () => {
  const workflow = await load();
  const other = clerkUser({
    id: "user_2other",
    primary_email_address_id: "idn_9",
    email_addresses: [{ id: "idn_9", email_address: "ada@work.example", verification: { status: "verified" } }],
  });
  const { calls, refusals } = stub({ users: [clerkUser(), other] });
  await workflow.default(event());
  assert.deepEqual(refusals, []);
  const create = calls.find((c) => c.url === `${KINDE}/api/v1/user`);
  assert.deepEqual(create.body.identities, [
    { type: "email", is_verified: true, details: { email: "ada@example.com" } },
    { type: "username", details: { username: "ada" } },
  ]);
});

test("a create Kinde refuses for an identity in use is made again with the sign-in email alone", async () => {
  const workflow = await load();
  // Kinde's spec: a 400 with an `errors` list; no code is documented for "in use", so none is matched.
  const inUse = { errors: [{ code: "SOME_UNDOCUMENTED_CODE", message: "Username ada is already in use." }] };
  const { calls, refusals } = stub({ createAnswer: [inUse] });
  await workflow.default(event());
  assert.deepEqual(refusals, []);
  const creates = calls.filter((c) => c.url === `${KINDE}/api/v1/user`);
  assert.equal(creates.length, 2);
  assert.deepEqual(creates[1].body, {
    provided_id: "user_2abc",
    identities: [{ type: "email", is_verified: true, details: { email: "ada@example.com" } }],
    profile: { given_name: "Ada", family_name: "Lovelace" },
  });
  assert.equal(calls.at(-1).url, `${KINDE}/api/v1/users/kp_new/password`);
  // a user Kinde refuses even so (its sign-in email is someone else's): stopped, nobody's identity taken
  stub({ createAnswer: [inUse, inUse] });
  await assert.rejects(workflow.default(event()), /did not create/);
});

test("a wrong password and an unknown email get the same message, and Kinde is never called", async () => {
  const workflow = await load();
  const wrong = stub();
  await workflow.default(event({ password: "not it" }));
  const unknown = stub({ users: [] });
  await workflow.default(event({ providedEmail: "nobody@example.com" }));
  assert.equal(wrong.refusals.length, 1);
  assert.deepEqual(unknown.refusals, wrong.refusals);
  assert.deepEqual(wrong.refusals[0], { field: "p_password", message: baseSettings.refusal_message });
  for (const { calls } of [wrong, unknown]) assert.ok(calls.every((c) => c.url.startsWith(CLERK)));
  assert.deepEqual(shown(unknown.calls), [`GET ${CLERK}/users`]);
});

for (const [name, over] of [
  ["banned", { banned: true }],
  ["locked", { locked: true }],
  ["two-factor", { two_factor_enabled: true }],
]) {
  test(`a ${name} Clerk user is refused before Clerk checks the password (no lockout count)`, async () => {
    const workflow = await load();
    const { calls, refusals } = stub({ users: [clerkUser(over)] });
    await workflow.default(event());
    assert.deepEqual(refusals, [{ field: "p_password", message: baseSettings.refusal_message }]);
    assert.deepEqual(shown(calls), [`GET ${CLERK}/users`]);
  });
}

test("two-factor users pass when refuse_two_factor is off", async () => {
  const workflow = await load({ refuse_two_factor: false });
  const { calls, refusals } = stub({ users: [clerkUser({ two_factor_enabled: true })] });
  await workflow.default(event());
  assert.deepEqual(refusals, []);
  assert.equal(calls.length, 6);
});

test("an email two Clerk users hold, or only unverified, is refused like an unknown one", async () => {
  const workflow = await load();
  const twin = clerkUser({ id: "user_2other" });
  const both = stub({ users: [clerkUser(), twin] });
  await workflow.default(event());
  assert.equal(both.refusals.length, 1);
  const unverified = clerkUser({
    email_addresses: [{ id: "idn_1", email_address: "ada@example.com", verification: { status: "unverified" } }],
  });
  const pending = stub({ users: [unverified] });
  await workflow.default(event());
  assert.equal(pending.refusals.length, 1);
  assert.ok(![...both.calls, ...pending.calls].some((c) => c.url.includes("verify_password")));
});

test("a sign-in without an email (username or phone) is left alone", async () => {
  const workflow = await load();
  const { calls, refusals } = stub();
  await workflow.default(event({ providedEmail: undefined }));
  assert.deepEqual([calls, refusals], [[], []]);
});

test("a user already in Kinde is left to Kinde unless users_in_kinde is on", async () => {
  const off = await load();
  const first = stub();
  await off.default(event({ hasUserRecordInKinde: true }));
  assert.deepEqual([first.calls, first.refusals], [[], []]);

  const on = await load({ users_in_kinde: true });
  const ours = stub({ kindeUsers: [{ id: "kp_old", provided_id: "user_2abc" }] });
  await on.default(event({ hasUserRecordInKinde: true }));
  assert.deepEqual(shown(ours.calls).slice(3), [`GET ${KINDE}/api/v1/users`, `PUT ${KINDE}/api/v1/users/kp_old/password`]);

  const someoneElse = stub({ kindeUsers: [{ id: "kp_x", provided_id: "user_2zzz" }] });
  await on.default(event({ hasUserRecordInKinde: true }));
  assert.ok(!someoneElse.calls.some((c) => c.method === "PUT"));
  assert.deepEqual(someoneElse.refusals, []);
});

test("a create refused as a duplicate adopts the Kinde user only when it is this Clerk user's", async () => {
  const workflow = await load();
  const duplicate = { errors: [{ code: "USER_ALREADY_EXISTS" }] };
  const ours = stub({ createAnswer: duplicate, kindeUsers: [{ id: "kp_earlier", provided_id: "user_2abc" }] });
  await workflow.default(event());
  assert.equal(ours.calls.at(-1).url, `${KINDE}/api/v1/users/kp_earlier/password`);

  stub({ createAnswer: duplicate, kindeUsers: [{ id: "kp_x", provided_id: "user_2zzz" }] });
  await assert.rejects(workflow.default(event()), /did not create/);
});

test("a phone is never sent: Kinde needs its country, which the workflow cannot tell", async () => {
  const workflow = await load();
  const { calls } = stub({ users: [clerkUser({ username: null })] });
  await workflow.default(event());
  const create = calls.find((c) => c.url === `${KINDE}/api/v1/user`);
  assert.deepEqual(create.body.identities.map((i) => i.type), ["email", "email"]);
});

for (const [name, hashedPassword] of [["absent", undefined], ["empty", ""], ["null", null]]) {
  test(`without hashedPassword (${name}) the sign-in stops before Clerk sees the password or Kinde is written`, async () => {
    const workflow = await load();
    const { calls, refusals } = stub();
    await assert.rejects(workflow.default(event({ hashedPassword })), /no hashedPassword/);
    assert.deepEqual(calls, []);
    assert.deepEqual(refusals, []);
  });
}

test("a Clerk error on the lookup stops the sign-in instead of reading as an unknown user", async () => {
  const workflow = await load();
  const { refusals } = stub({ users: null });
  globalThis.kinde.fetch = () => ({ json: { errors: [{ code: "authentication_invalid" }] } });
  await assert.rejects(workflow.default(event()), /lookup failed/);
  assert.deepEqual(refusals, []);
});

test("allowed_client_ids limits the workflow to those applications", async () => {
  const workflow = await load({ allowed_client_ids: ["app_other"] });
  const { calls } = stub();
  await workflow.default(event());
  assert.deepEqual(calls, []);
});

test("no password, hash or secret reaches any console call", async () => {
  const seen = [];
  const saved = {};
  for (const level of ["log", "info", "warn", "error", "debug", "trace"]) {
    saved[level] = console[level];
    console[level] = (...args) => seen.push(args.map((a) => (typeof a === "string" ? a : JSON.stringify(a))).join(" "));
  }
  try {
    const workflow = await load({ refuse_two_factor: false });
    stub();
    await workflow.default(event());
    stub();
    await workflow.default(event({ password: "not it" }));
    stub({ users: [clerkUser({ banned: true })] });
    await workflow.default(event());
    stub({ createAnswer: { errors: [{ code: "X" }] } });
    await workflow.default(event()).catch(() => undefined);
  } finally {
    Object.assign(console, saved);
  }
  assert.ok(seen.length > 0, "the workflow logs its outcome");
  for (const line of seen) {
    for (const secret of [PASSWORD, HASHED, CLERK_KEY, M2M_SECRET, "not it"]) {
      assert.ok(!line.includes(secret), `a console call carried a secret: ${line}`);
    }
  }
});
