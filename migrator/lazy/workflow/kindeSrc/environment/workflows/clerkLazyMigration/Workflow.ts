/**
 * Clerk -> Kinde lazy migration, on Kinde's `user:existing_password_provided` trigger.
 *
 * A user whose Clerk password digest Kinde cannot import signs in to Kinde with the old password.
 * This workflow asks Clerk whether that password is right (`POST /v1/users/{id}/verify_password`)
 * and, when it is, creates the user in Kinde as `migrator run` would have (`provided_id` = Clerk id,
 * identities, names) and sets the password from Kinde's own hash of it (`hashedPassword`), so the
 * next sign-in is Kinde's alone.
 *
 * Kinde's readings this handles (see the project's notes on lazy migration):
 * - the documented pattern: the user is not in Kinde yet (`hasUserRecordInKinde` false, which needs
 *   Kinde's enumeration protection on): the user is created;
 * - the user is in Kinde without a password: only with `users_in_kinde` true in settings.json, and
 *   only for the Kinde user whose `provided_id` is the Clerk user's id;
 * - `hashedPassword` absent from the event (Kinde's typings declare only `password`): Kinde's API sets
 *   a password only from a hash (`PUT /api/v1/users/{id}/password` requires `hashed_password`; the
 *   drip-feed tutorial's plaintext `password` is no field of the spec, and Kinde says it never accepts
 *   plain text), so the workflow stops before asking Clerk or writing anything: the user stays for the
 *   fallback and the operator sees why in the workflow's log.
 *
 * Phones are not sent: Kinde needs `phone_country_id` with a phone identity, which only a phone
 * number library could work out of an E.164 number, and Kinde's runtime takes only the packages it
 * supports. Nor is another Clerk user's identity: an extra email some other Clerk user also holds is
 * left out (the run's conflict rule gave it to one of them, and this workflow cannot tell which), and
 * when Kinde still refuses the create (Kinde's spec reports it as a 400 with an `errors` list and
 * documents no code for "in use", so no code is matched) the user is created with the sign-in email
 * alone. `migrator lazy finish` adds every identity of the run's plan the moved user lacks.
 *
 * Unknown email, wrong password, banned, locked or (by default) two-factor users all get ONE
 * message: the reason never reaches the sign-in form. Nothing here logs the password, Kinde's hash
 * of it or the Clerk key. HTTP calls: Clerk lookup, Clerk verify, Clerk lookup of the extra emails
 * (only with extra emails), Kinde token (cached by Kinde), Kinde create, Kinde password; after a
 * refused create, a Kinde lookup and a create with the sign-in email alone.
 */
import {
  WorkflowSettings,
  WorkflowTrigger,
  createKindeAPI,
  fetch,
  getEnvironmentVariable,
  invalidateFormField,
} from "@kinde/infrastructure";
import settings from "./settings.json";

export const workflowSettings: WorkflowSettings = {
  id: "clerkLazyMigration",
  name: "Clerk lazy migration",
  trigger: WorkflowTrigger.ExistingPasswordProvided,
  // An exception (Clerk or Kinde down, a timeout) stops the sign-in: never let a user through unverified.
  failurePolicy: { action: "stop" },
  bindings: {
    "kinde.fetch": {},
    "kinde.env": {},
    "kinde.widget": {},
    // URLSearchParams for the M2M token request (Kinde's example workflows declare it too).
    ...({ url: {} } as object),
  },
};

/** The event as Kinde's documentation shows it (its typings lag: only `password` is declared). */
export type PasswordEvent = {
  context: {
    auth: {
      providedEmail?: string;
      password: string;
      hashedPassword?: string;
      hasUserRecordInKinde?: boolean;
    };
    domains: { kindeDomain: string };
    application?: { clientId?: string };
  };
};

type ClerkContact = { id?: string; verification?: { status?: string } | null };
type ClerkEmail = ClerkContact & { email_address?: string };
type ClerkPhone = ClerkContact & { phone_number?: string };
type ClerkUser = {
  id: string;
  banned?: boolean;
  locked?: boolean;
  two_factor_enabled?: boolean;
  first_name?: string | null;
  last_name?: string | null;
  username?: string | null;
  image_url?: string | null;
  has_image?: boolean;
  primary_email_address_id?: string | null;
  primary_phone_number_id?: string | null;
  email_addresses?: ClerkEmail[];
  phone_numbers?: ClerkPhone[];
};
type KindeApi = Awaited<ReturnType<typeof createKindeAPI>>;
type Settings = {
  clerk_api_url: string;
  refusal_message: string;
  refuse_two_factor: boolean;
  users_in_kinde: boolean;
  allowed_client_ids: string[];
};

const SETTINGS = settings as Settings;
// Secret: the Clerk Backend API key (Kinde env variable marked sensitive).
const CLERK_KEY_VARIABLE = "CLERK_SECRET_KEY";
// Not secret: overrides settings.json's Clerk API URL (e.g. a second Kinde environment for testing).
const CLERK_URL_VARIABLE = "CLERK_API_URL";

export default async function clerkLazyMigration(event: PasswordEvent): Promise<void> {
  const auth = event.context.auth;
  const email = typeof auth.providedEmail === "string" ? auth.providedEmail.trim().toLowerCase() : "";
  if (!email || typeof auth.password !== "string" || !auth.password) {
    return; // a username or phone sign-in: the event carries no email, these users stay for a reset
  }
  const clientId = event.context.application?.clientId;
  if (SETTINGS.allowed_client_ids.length && !(clientId && SETTINGS.allowed_client_ids.includes(clientId))) {
    return; // one workflow per trigger serves every application of the environment
  }
  const inKinde = auth.hasUserRecordInKinde === true;
  if (inKinde && !SETTINGS.users_in_kinde) {
    return; // Kinde's own password check decides
  }
  const hashed = typeof auth.hashedPassword === "string" && auth.hashedPassword ? auth.hashedPassword : null;
  if (!hashed) {
    // Checked before Clerk sees the password: nothing is sent, counted or created.
    throw new Error("the event carries no hashedPassword: Kinde sets a password only from a hash, so nobody can move at sign-in");
  }
  const clerk = clerkConnection();
  const user = await clerkUserByEmail(clerk, email);
  if (!user || user.banned === true || user.locked === true || (SETTINGS.refuse_two_factor && user.two_factor_enabled === true)) {
    refuse();
    return;
  }
  if (!(await clerkPasswordVerified(clerk, user.id, auth.password))) {
    refuse();
    return;
  }
  const shared = inKinde ? null : await sharedEmails(clerk, email, user);
  const kinde = await createKindeAPI(event as never);
  const kindeId = shared ? await createKindeUser(kinde, email, user, shared) : await kindeUserOf(kinde, email, user.id);
  if (!kindeId) {
    if (inKinde) return; // a Kinde user this migration did not create: not ours to touch
    throw new Error("Kinde did not create the user");
  }
  await setKindePassword(kinde, kindeId, hashed);
  console.log("clerk lazy migration: user moved to Kinde");
}

function refuse(): void {
  invalidateFormField("p_password", SETTINGS.refusal_message);
}

type ClerkConnection = { base: string; headers: Record<string, string> };

function clerkConnection(): ClerkConnection {
  const key = getEnvironmentVariable(CLERK_KEY_VARIABLE)?.value;
  if (!key) throw new Error(`Kinde environment variable ${CLERK_KEY_VARIABLE} is not set`);
  const override = getEnvironmentVariable(CLERK_URL_VARIABLE)?.value;
  const base = (override || SETTINGS.clerk_api_url).replace(/\/+$/, "");
  return { base, headers: { authorization: `Bearer ${key}`, accept: "application/json" } };
}

/** The one Clerk user holding this email, verified (exact match, ignoring case); else null. */
async function clerkUserByEmail(clerk: ClerkConnection, email: string): Promise<ClerkUser | null> {
  const url = `${clerk.base}/users?email_address=${encodeURIComponent(email)}&limit=10`;
  const { data } = await fetch<{ data: ClerkUser[] | unknown }>(url, { method: "GET", headers: clerk.headers, responseFormat: "json" });
  if (!Array.isArray(data)) {
    throw new Error("Clerk's user lookup failed"); // an error envelope: never read as "unknown user"
  }
  const holders = (data as ClerkUser[]).filter((user) =>
    (user.email_addresses || []).some(
      (address: ClerkEmail) => verified(address) && (address.email_address || "").toLowerCase() === email,
    ),
  );
  return holders.length === 1 ? holders[0] : null;
}

async function clerkPasswordVerified(clerk: ClerkConnection, userId: string, password: string): Promise<boolean> {
  const url = `${clerk.base}/users/${encodeURIComponent(userId)}/verify_password`;
  const { data } = await fetch<{ data?: { verified?: unknown } }>(url, {
    method: "POST",
    headers: { ...clerk.headers, "content-type": "application/json" },
    body: { password } as never,
    responseFormat: "json",
  });
  // kinde.fetch documents no status: only Clerk's success body counts (422/400/404 are error envelopes).
  return data?.verified === true;
}

/** The user's extra verified emails (not the sign-in one) that another Clerk user also holds, lower-cased:
 * one lookup for all of them, none without extras. */
async function sharedEmails(clerk: ClerkConnection, email: string, user: ClerkUser): Promise<Set<string>> {
  const extras = [...new Set(kindeIdentities(user).filter((i) => i.type === "email").map((i) => i.details.email.toLowerCase()))]
    .filter((value) => value !== email);
  if (!extras.length) return new Set();
  const query = extras.map((value) => `email_address=${encodeURIComponent(value)}`).join("&");
  const { data } = await fetch<{ data: ClerkUser[] | unknown }>(`${clerk.base}/users?${query}&limit=100`, {
    method: "GET",
    headers: clerk.headers,
    responseFormat: "json",
  });
  if (!Array.isArray(data)) {
    throw new Error("Clerk's user lookup failed"); // never read as "nobody else holds them"
  }
  const shared = new Set<string>();
  for (const other of data as ClerkUser[]) {
    if (other.id === user.id) continue;
    for (const address of other.email_addresses || []) {
      const value = (address.email_address || "").toLowerCase();
      if (extras.includes(value)) shared.add(value);
    }
  }
  return shared;
}

function verified(contact: ClerkContact): boolean {
  return contact.verification?.status === "verified";
}

type Identity = { type: string; is_verified?: boolean; details: Record<string, string> };

/** The identities `migrator run` sends but the phone (see above): the primary email first, other verified
 * emails, the username. */
export function kindeIdentities(user: ClerkUser): Identity[] {
  const emails = user.email_addresses || [];
  const designated = emails.find((e) => e.id && e.id === user.primary_email_address_id);
  const primary = designated && designated.email_address ? designated : emails.find(verified);
  const identities: Identity[] = [];
  const taken = new Set<string>();
  for (const address of [...(primary ? [primary] : []), ...emails]) {
    const value = address.email_address;
    if (!value || taken.has(value.toLowerCase())) continue;
    if (address !== primary && !verified(address)) continue;
    taken.add(value.toLowerCase());
    identities.push({ type: "email", is_verified: verified(address), details: { email: value } });
  }
  if (user.username) {
    identities.push({ type: "username", details: { username: user.username } });
  }
  return identities;
}

/** The create's body; ``keep`` chooses the identities sent (default: all of ``kindeIdentities``). */
export function createBody(user: ClerkUser, keep: (identity: Identity) => boolean = () => true): Record<string, unknown> {
  const profile: Record<string, string> = {};
  if (user.first_name) profile.given_name = user.first_name;
  if (user.last_name) profile.family_name = user.last_name;
  if (user.has_image === true && user.image_url && /^https?:\/\//.test(user.image_url)) {
    profile.picture = user.image_url;
  }
  const body: Record<string, unknown> = { provided_id: user.id, identities: kindeIdentities(user).filter(keep) };
  if (Object.keys(profile).length) body.profile = profile;
  return body;
}

async function createKindeUser(kinde: KindeApi, email: string, user: ClerkUser, shared: Set<string>): Promise<string | null> {
  const isShared = (i: Identity) => i.type === "email" && shared.has(i.details.email.toLowerCase());
  const isSignIn = (i: Identity) => i.type === "email" && i.details.email.toLowerCase() === email;
  const body = createBody(user, (i) => !isShared(i));
  const created = await createdId(kinde, body);
  if (created) return created;
  // Refused: a retried sign-in whose earlier attempt created it, or a migrator run (adopted only when it is
  // this Clerk user's); else an identity held by someone else: the sign-in email alone, never theirs.
  const ours = await kindeUserOf(kinde, email, user.id);
  if (ours || (body.identities as Identity[]).every(isSignIn)) return ours;
  return createdId(kinde, createBody(user, isSignIn));
}

async function createdId(kinde: KindeApi, body: Record<string, unknown>): Promise<string | null> {
  const { data } = await kinde.post({ endpoint: "user", params: body as never });
  return data && typeof data.id === "string" ? data.id : null;
}

/** The Kinde user with this email whose provided_id is the Clerk id; null for anyone else's. */
async function kindeUserOf(kinde: KindeApi, email: string, clerkId: string): Promise<string | null> {
  const { data } = await kinde.get({ endpoint: `users?email=${encodeURIComponent(email)}` });
  const users: Array<{ id?: string; provided_id?: string }> = (data && data.users) || [];
  const ours = users.filter((u) => u.provided_id === clerkId && typeof u.id === "string");
  return ours.length === 1 ? (ours[0].id as string) : null;
}

async function setKindePassword(kinde: KindeApi, kindeId: string, hashed: string): Promise<void> {
  const body: Record<string, unknown> = { hashed_password: hashed, is_temporary_password: false };
  if (/^\$2[aby]\$/.test(hashed)) body.hashing_method = "bcrypt";
  const { data } = await kinde.put({ endpoint: `users/${encodeURIComponent(kindeId)}/password`, params: body as never });
  if (!data || data.errors) {
    throw new Error("Kinde did not set the password");
  }
}
