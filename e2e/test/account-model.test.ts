/**
 * A model-based test of the account state machine, against the real stack: an attacker and a victim run
 * random interleavings of every account operation (sign up, log in, log out, sessions listed and revoked,
 * verification codes asked for and confirmed, email / password / username changes, reset links asked for
 * and used, Google sign-in through the local OpenID provider, admin actions). Each sequence gets a world
 * of its own: two addresses for each party, and an admin address that nobody owns (the victim's first
 * address is an admin address too). The SMTP sink is the truth of who received what: a party knows a
 * code or a reset link only if it arrived at an address of theirs.
 *
 * Invariants, checked after every step (and on every answer):
 * 1. credentials: a party holds a live session of an account only if it set the account's current
 *    password or signed in to it with its own Google identity; a login works only with the password the
 *    model knows the account has;
 * 2. mail: an account's address is verified only by a code that was mailed to that very address, for
 *    that account, and confirmed by the party who received it (or by Google for its owner's address);
 *    a reset link works once, only for the account as it was when it was mailed;
 * 3. admin: a session has the admin role only if its holder owns the account's admin address and
 *    verified it; admin actions from anyone else are refused;
 * 4. endings: every session the policy ends (log out, log out everywhere, a revoked session, a new
 *    password or email for the others, a reset, an admin's end or disable, a Google link to an
 *    unverified account) answers 401 from then on, and a disabled account cannot sign in;
 * 5. no answer is a 5xx.
 *
 * ACCOUNT_MODEL_RUNS (default 300) sequences of up to 25 steps, from ACCOUNT_MODEL_SEED (printed);
 * ACCOUNT_MODEL_SHRINK=1 shrinks a failing sequence (slow: every try runs against the stack),
 * ACCOUNT_MODEL_TRACE=1 prints every step and answer.
 */
import { randomBytes } from 'node:crypto';
import type { Stack } from '@atoll/testkit';
import fc from 'fast-check';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ApiResponse, apiClient } from './api.ts';
import { type GoogleClaims, googleSignIn } from './google-flow.ts';
import { startTestStack } from './helpers.ts';

const RUNS = Number(process.env.ACCOUNT_MODEL_RUNS ?? 300);
const SEED = Number(process.env.ACCOUNT_MODEL_SEED ?? 20261205);
const MAX_STEPS = 25;
/** Worlds whose admin addresses are in ADMIN_EMAILS (a failing run shrinks with fresh worlds too). */
const ADMIN_WORLDS = RUNS + 200;
/** A code or reset mail that does not arrive within this is a defect, not bad luck. */
const MAIL_WAIT_MS = 15_000;
/** Emails of one kind one account is sent per window (auth's MAIL_CAP). */
const MAIL_CAP = 3;

type Party = 'attacker' | 'victim';
type AddressName = 'a1' | 'a2' | 'v1' | 'v2' | 'boss';
const ADDRESS_NAMES: AddressName[] = ['a1', 'a2', 'v1', 'v2', 'boss'];
const OWNER: Record<AddressName, Party | null> = {
  a1: 'attacker',
  a2: 'attacker',
  v1: 'victim',
  v2: 'victim',
  boss: null,
};

const addressesOf = (r: string): Record<AddressName, string> => ({
  a1: `${r}-atk-one@attacker.test`,
  a2: `${r}-atk-two@attacker.test`,
  v1: `${r}-vic-one@victim.test`,
  v2: `${r}-vic-two@victim.test`,
  boss: `${r}-boss@corp.test`,
});
/** A world's name: `m<n>` for the random sequences, `k<n>` for the known orders. */
const worldNames = [
  ...Array.from({ length: ADMIN_WORLDS }, (_, n) => `m${n}`),
  ...Array.from({ length: 10 }, (_, n) => `k${n}`),
];
const ADMIN_EMAILS = worldNames.flatMap((name) => {
  const a = addressesOf(name);
  return [a.v1, a.boss];
});
const ADMIN_SET = new Set(ADMIN_EMAILS);

interface Held {
  party: Party;
  token: string;
  userId: string;
  sessionId: string;
  /** The model says the policy ended it. */
  dead: boolean;
  /** Its end was seen at the server (401). */
  deathSeen: boolean;
}

interface Account {
  id: string;
  username: string;
  /** Who set the current password (null: none). */
  pwBy: Party | null;
  password: string | null;
  /** Bumped whenever the password is set or cleared: a reset link is good for one version. */
  pwVersion: number;
  /** The Google identity (sub) linked to it, and its party. */
  googleSub: string | null;
  googleBy: Party | null;
  disabled: boolean;
  resetMails: number;
}

interface CodeMail {
  code: string;
  to: string;
  accountId: string;
  receiver: Party | null;
}

interface ResetMail {
  token: string;
  to: string;
  accountId: string;
  receiver: Party | null;
  pwVersion: number;
  used: boolean;
}

interface Model {
  id: string;
  addresses: Record<AddressName, string>;
  accounts: Map<string, Account>;
  tokens: Held[];
  /** What each party remembers setting: an address and the password it set there, newest last. */
  book: Record<Party, Array<{ email: string; password: string }>>;
  codes: CodeMail[];
  resets: ResetMail[];
  /** `<account id>|<address>`: verified by the rules of invariant 2. */
  legitVerified: Set<string>;
  counter: number;
  /** Steps run so far: a sequence stops at MAX_STEPS. */
  steps: number;
}

interface Real {
  stack: Stack;
  api: ReturnType<typeof apiClient>;
  db: pg.Client;
}

interface Row {
  id: string;
  email: string;
  username: string;
  verified: boolean;
  disabled: boolean;
}

class Violation extends Error {}
let stepsRun = 0;
/** Per kind of step: how often it ran, and how often the server did what it asked (2xx/3xx). */
const explored = new Map<string, { ran: number; done: number }>();
const tally = (kind: string, status: number) => {
  const entry = explored.get(kind) ?? { ran: 0, done: 0 };
  entry.ran += 1;
  if (status < 400) entry.done += 1;
  explored.set(kind, entry);
};
const violation = (m: Model, message: string): never => {
  throw new Violation(`[world ${m.id}] ${message}`);
};

const ownerOf = (m: Model, address: string): Party | null => {
  const name = ADDRESS_NAMES.find((n) => m.addresses[n] === address.toLowerCase());
  return name ? OWNER[name] : null;
};

const isAdminAddress = (address: string) => ADMIN_SET.has(address.toLowerCase());

/** Every answer: never a 5xx. */
async function call(m: Model, real: Real, ...args: Parameters<Real['api']>): Promise<ApiResponse> {
  const res = await real.api(...args);
  const [method, path] = args;
  if (process.env.ACCOUNT_MODEL_TRACE)
    console.log(m.id, method, path, res.status, JSON.stringify(res.body).slice(0, 120));
  if (path !== '/api/auth/session')
    tally(
      `${method} ${path.replace(/\/api\/admin\/users\/[^/]+/, '/api/admin/users/:u').replace(/sessions\/[0-9a-f]{32}$/, 'sessions/:id')}`,
      res.status,
    );
  if (res.status >= 500)
    violation(m, `${args[0]} ${args[1]} answered ${res.status}: ${JSON.stringify(res.body)}`);
  return res;
}

async function rowsOf(real: Real, ids: string[]): Promise<Map<string, Row>> {
  const { rows } = await real.db.query<Row>(
    `SELECT id::text, email, username, email_verified_at IS NOT NULL AS verified,
            disabled_at IS NOT NULL AS disabled
       FROM auth.users WHERE id::text = ANY($1)`,
    [ids],
  );
  return new Map(rows.map((r) => [r.id, r]));
}

async function rowByEmail(real: Real, email: string): Promise<Row | undefined> {
  const { rows } = await real.db.query<Row>(
    `SELECT id::text, email, username, email_verified_at IS NOT NULL AS verified,
            disabled_at IS NOT NULL AS disabled
       FROM auth.users WHERE lower(email) = lower($1)`,
    [email],
  );
  return rows[0];
}

const newPassword = (m: Model, party: Party) => {
  m.counter += 1;
  return `${party === 'attacker' ? 'Mallory' : 'Alice'} sings ${m.id}.${m.counter} ${randomBytes(3).toString('hex')}`;
};
/** The party remembers the password it set on the account with this address. */
const remember = (m: Model, party: Party, email: string, password: string) =>
  m.book[party].push({ email: email.toLowerCase(), password });

const heldBy = (m: Model, party: Party) => m.tokens.filter((t) => t.party === party);
const pick = <T>(list: T[], i: number): T | undefined =>
  list.length === 0 ? undefined : list[i % list.length];
/** The i-th from the end: index 0 is the newest (a party tries its latest mail first). */
const latest = <T>(list: T[], i: number): T | undefined =>
  list.length === 0 ? undefined : list[list.length - 1 - (i % list.length)];

/** The policy ends these sessions: every session of the account, but `keep`. */
function endSessions(m: Model, accountId: string, keep?: Held) {
  for (const t of m.tokens) if (t.userId === accountId && t !== keep) t.dead = true;
}

/** A request made with a session the model holds: a session the policy ended must be refused. */
function judgeUse(m: Model, held: Held, res: ApiResponse, what: string): 'live' | 'ended' {
  if (res.status === 401) {
    held.dead = true;
    held.deathSeen = true;
    return 'ended';
  }
  if (held.dead && res.status < 400) {
    violation(m, `${held.party}'s ended session still worked for ${what} (${res.status})`);
  }
  return 'live';
}

/** Who the server says a new session is, checked against invariant 1 by the caller. */
async function adopt(m: Model, real: Real, party: Party, token: string): Promise<Held> {
  const res = await call(m, real, 'GET', '/api/auth/session', { token });
  if (res.status !== 200) violation(m, `a session just created answers ${res.status}`);
  const held: Held = {
    party,
    token,
    userId: res.body.session.userId,
    sessionId: res.body.session.id,
    dead: false,
    deathSeen: false,
  };
  m.tokens.push(held);
  return held;
}

/** Waits for the next mail at `address` whose subject starts with `subject`. */
async function nextMail(real: Real, address: string, subject: string, seen: number) {
  const deadline = Date.now() + MAIL_WAIT_MS;
  for (;;) {
    const mails = mailsTo(real, address, subject);
    if (mails.length > seen) return mails[seen];
    if (Date.now() > deadline) return undefined;
    await new Promise((r) => setTimeout(r, 25));
  }
}

const mailsTo = (real: Real, address: string, subject: string) =>
  (real.stack.smtp?.received ?? []).filter(
    (mail) =>
      mail.to.some((to) => to.toLowerCase() === address.toLowerCase()) && mail.subject.startsWith(subject),
  );

const CODE_SUBJECT = 'Your atoll verification code: ';
const RESET_SUBJECT = 'Reset your atoll password';

/** Invariants 1 to 4 over everything the model holds, after every step. */
async function checkInvariants(m: Model, real: Real): Promise<void> {
  const rows = await rowsOf(real, [...m.accounts.keys()]);
  for (const t of m.tokens) {
    if (t.deathSeen) continue;
    const res = await call(m, real, 'GET', '/api/auth/session', { token: t.token });
    if (res.status === 401) {
      t.dead = true;
      t.deathSeen = true;
      continue;
    }
    if (t.dead) violation(m, `a session of ${t.party}'s that the policy ended is live (${res.status})`);
    if (res.status !== 200) violation(m, `GET /api/auth/session answered ${res.status}`);
    const session = res.body.session as { userId: string; roles: string[] };
    if (session.userId !== t.userId) violation(m, `a session moved from ${t.userId} to ${session.userId}`);
    const account = m.accounts.get(t.userId);
    if (!account) return violation(m, `${t.party} holds a session of an account the model never saw`);
    if (account.pwBy !== t.party && account.googleBy !== t.party) {
      violation(
        m,
        `${t.party} holds a live session of ${account.username}, whose password is ${account.pwBy ?? 'nobody'}'s and Google identity ${account.googleBy ?? 'nobody'}'s`,
      );
    }
    if (session.roles.includes('admin')) {
      const row = rows.get(t.userId);
      const legit =
        row !== undefined &&
        isAdminAddress(row.email) &&
        ownerOf(m, row.email) === t.party &&
        m.legitVerified.has(`${row.id}|${row.email.toLowerCase()}`);
      if (!legit)
        violation(m, `${t.party} holds an admin session of ${row?.email} without owning and verifying it`);
    }
  }
  for (const [id, row] of rows) {
    if (row.verified && !m.legitVerified.has(`${id}|${row.email.toLowerCase()}`)) {
      violation(
        m,
        `${row.username}'s address ${row.email} is verified, yet nobody who received mail there verified it`,
      );
    }
  }
}

type Cmd = fc.AsyncCommand<Model, Real>;

/** One step of a party: it runs, then every invariant is checked. */
function step(
  party: Party,
  name: string,
  act: (m: Model, real: Real) => Promise<void>,
  check: (m: Readonly<Model>) => boolean = () => true,
): Cmd {
  return {
    check: (m) => m.steps < MAX_STEPS && check(m),
    run: async (m, real) => {
      stepsRun += 1;
      m.steps += 1;
      if (process.env.ACCOUNT_MODEL_TRACE) console.log(`STEP ${m.id} ${party}.${name}`);
      await act(m, real);
      await checkInvariants(m, real);
    },
    toString: () => `${party}.${name}`,
  };
}

/** A step made with one of the party's sessions (live or ended), picked by index. */
function withSession(
  party: Party,
  tokenIndex: number,
  name: string,
  act: (m: Model, real: Real, held: Held) => Promise<void>,
  check: (m: Readonly<Model>) => boolean = () => true,
): Cmd {
  return step(
    party,
    name,
    (m, real) => act(m, real, pick(heldBy(m, party), tokenIndex) as Held),
    (m) => m.tokens.some((t) => t.party === party) && check(m),
  );
}

const register = (party: Party, address: AddressName) =>
  step(party, `register(${address})`, async (m, real) => {
    m.counter += 1;
    const username = `${m.id}${party[0]}${m.counter}`;
    const password = newPassword(m, party);
    const email = m.addresses[address];
    const res = await call(m, real, 'POST', '/api/users', { body: { user: { username, email, password } } });
    if (res.status !== 201) return;
    const held = await adopt(m, real, party, res.body.user.token);
    remember(m, party, email, password);
    m.accounts.set(held.userId, {
      id: held.userId,
      username,
      pwBy: party,
      password,
      pwVersion: 0,
      googleSub: null,
      googleBy: null,
      disabled: false,
      resetMails: 0,
    });
  });

/** A login from the party's memory (an address and the password it set there), or a guess at an address. */
const login = (party: Party, entry: number | null, guessAt: AddressName) =>
  step(
    party,
    `login(${entry === null ? `guess at ${guessAt}` : `remembered#${entry}`})`,
    async (m, real) => {
      const remembered = entry === null ? undefined : latest(m.book[party], entry);
      const email = remembered?.email ?? m.addresses[guessAt];
      const password = remembered?.password ?? `Not it ${randomBytes(4).toString('hex')}`;
      const res = await call(m, real, 'POST', '/api/users/login', { body: { user: { email, password } } });
      if (res.status !== 200) return;
      const held = await adopt(m, real, party, res.body.user.token);
      const account = m.accounts.get(held.userId);
      if (!account) return violation(m, `a login reached an account the model never saw`);
      if (account.pwBy !== party || account.password !== password) {
        violation(m, `${party} logged in to ${account.username} with a password it never set there`);
      }
      if (account.disabled) violation(m, `${party} logged in to the disabled ${account.username}`);
    },
    (m) => entry === null || m.book[party].length > 0,
  );

const logout = (party: Party, tokenIndex: number, everywhere: boolean) =>
  withSession(
    party,
    tokenIndex,
    `${everywhere ? 'logoutEverywhere' : 'logout'}(t#${tokenIndex})`,
    async (m, real, held) => {
      const path = everywhere ? '/api/user/sessions' : '/api/user/session';
      const res = await call(m, real, 'DELETE', path, { token: held.token });
      if (judgeUse(m, held, res, path) === 'ended' || res.status !== 204) return;
      if (everywhere) endSessions(m, held.userId);
      else held.dead = true;
    },
  );

const revokeSession = (party: Party, tokenIndex: number, which: number) =>
  withSession(party, tokenIndex, `revokeSession(t#${tokenIndex}, #${which})`, async (m, real, held) => {
    const listed = await call(m, real, 'GET', '/api/user/sessions', { token: held.token });
    if (judgeUse(m, held, listed, 'the session list') === 'ended' || listed.status !== 200) return;
    const ids = (listed.body.sessions as Array<{ id: string }>).map((s) => s.id);
    const mine = new Set(m.tokens.filter((t) => t.userId === held.userId).map((t) => t.sessionId));
    for (const id of ids) {
      if (!mine.has(id)) violation(m, `the session list of ${held.userId} shows a session nobody holds`);
    }
    const target = pick(ids, which);
    if (!target) return;
    const res = await call(m, real, 'DELETE', `/api/user/sessions/${target}`, { token: held.token });
    if (res.status !== 204) return;
    for (const t of m.tokens) if (t.sessionId === target) t.dead = true;
  });

const requestCode = (party: Party, tokenIndex: number) =>
  withSession(party, tokenIndex, `requestCode(t#${tokenIndex})`, async (m, real, held) => {
    const before = (await rowsOf(real, [held.userId])).get(held.userId);
    const seen = before ? mailsTo(real, before.email, CODE_SUBJECT).length : 0;
    const res = await call(m, real, 'POST', '/api/user/verification', { token: held.token });
    if (judgeUse(m, held, res, 'a code request') === 'ended' || res.status !== 202 || !before) return;
    const mail = await nextMail(real, before.email, CODE_SUBJECT, seen);
    if (!mail) return violation(m, `the code mailed to ${before.email} never arrived`);
    m.codes.push({
      code: mail.subject.slice(CODE_SUBJECT.length),
      to: before.email.toLowerCase(),
      accountId: held.userId,
      receiver: ownerOf(m, before.email),
    });
  });

/**
 * Confirms a code the party received (or a wrong one). `withItsSession`: with a live session of the
 * account the code was mailed for, where the party holds one (as its owner would); otherwise with the
 * picked session.
 */
const confirmCode = (party: Party, tokenIndex: number, codeIndex: number | null, withItsSession: boolean) =>
  withSession(
    party,
    tokenIndex,
    `confirmCode(t#${tokenIndex}${withItsSession ? " or the code's account" : ''}, ${codeIndex === null ? 'wrong' : `code#${codeIndex}`})`,
    async (m, real, picked) => {
      const known = m.codes.filter((c) => c.receiver === party);
      const mail = codeIndex === null ? undefined : latest(known, codeIndex);
      const its = withItsSession
        ? m.tokens.find((t) => t.party === party && !t.dead && t.userId === mail?.accountId)
        : undefined;
      const held = its ?? picked;
      const code = mail?.code ?? String(100000 + (m.counter % 900000));
      const res = await call(m, real, 'POST', '/api/user/verification/confirm', {
        token: held.token,
        body: { verification: { code } },
      });
      if (judgeUse(m, held, res, 'a code confirmation') === 'ended' || res.status !== 200) return;
      const row = (await rowsOf(real, [held.userId])).get(held.userId);
      if (!row) return;
      const legit =
        mail !== undefined &&
        mail.accountId === held.userId &&
        mail.to === row.email.toLowerCase() &&
        mail.receiver === party;
      if (!legit) {
        violation(
          m,
          `a code ${mail ? `mailed to ${mail.to} for ${mail.accountId}` : 'nobody was sent'} verified ${row.email} of ${row.username} for ${party}`,
        );
      }
      m.legitVerified.add(`${row.id}|${row.email.toLowerCase()}`);
    },
    // A party tries a code it received (a wrong one only when asked to).
    (m) => codeIndex === null || m.codes.some((c) => c.receiver === party),
  );

const changeEmail = (party: Party, tokenIndex: number, address: AddressName) =>
  withSession(party, tokenIndex, `changeEmail(t#${tokenIndex}, ${address})`, async (m, real, held) => {
    const email = m.addresses[address];
    const before = (await rowsOf(real, [held.userId])).get(held.userId);
    const res = await call(m, real, 'PUT', '/api/user', { token: held.token, body: { user: { email } } });
    if (judgeUse(m, held, res, 'an email change') === 'ended' || res.status !== 200) return;
    if (before && before.email.toLowerCase() !== email.toLowerCase()) endSessions(m, held.userId, held);
    const account = m.accounts.get(held.userId) as Account;
    if (account.pwBy === party && account.password) remember(m, party, email, account.password);
  });

const changePassword = (party: Party, tokenIndex: number) =>
  withSession(party, tokenIndex, `changePassword(t#${tokenIndex})`, async (m, real, held) => {
    const password = newPassword(m, party);
    const res = await call(m, real, 'PUT', '/api/user', { token: held.token, body: { user: { password } } });
    if (judgeUse(m, held, res, 'a password change') === 'ended' || res.status !== 200) return;
    const account = m.accounts.get(held.userId) as Account;
    Object.assign(account, { pwBy: party, password, pwVersion: account.pwVersion + 1 });
    endSessions(m, held.userId, held);
    const row = (await rowsOf(real, [held.userId])).get(held.userId);
    if (row) remember(m, party, row.email, password);
  });

const changeUsername = (party: Party, tokenIndex: number) =>
  withSession(party, tokenIndex, `changeUsername(t#${tokenIndex})`, async (m, real, held) => {
    m.counter += 1;
    const username = `${m.id}${party[0]}${m.counter}`;
    const res = await call(m, real, 'PUT', '/api/user', { token: held.token, body: { user: { username } } });
    if (judgeUse(m, held, res, 'a username change') === 'ended' || res.status !== 200) return;
    (m.accounts.get(held.userId) as Account).username = username;
  });

const requestReset = (party: Party, address: AddressName) =>
  step(party, `requestReset(${address})`, async (m, real) => {
    const email = m.addresses[address];
    const row = await rowByEmail(real, email);
    const seen = mailsTo(real, email, RESET_SUBJECT).length;
    const res = await call(m, real, 'POST', '/api/users/password-reset', { body: { user: { email } } });
    if (res.status !== 202) return;
    const account = row && m.accounts.get(row.id);
    if (!account || account.resetMails >= MAIL_CAP) return;
    account.resetMails += 1;
    const mail = await nextMail(real, email, RESET_SUBJECT, seen);
    if (!mail) return violation(m, `the reset link mailed to ${email} never arrived`);
    m.resets.push({
      token: decodeURIComponent(/reset-password\?token=([^\s"&]+)/.exec(mail.text)?.[1] ?? ''),
      to: email,
      accountId: account.id,
      receiver: OWNER[address],
      pwVersion: account.pwVersion,
      used: false,
    });
  });

/** Uses a reset link the party received (`resetIndex`), or a made-up one (null). */
const useReset = (party: Party, resetIndex: number | null) =>
  step(
    party,
    `useReset(${resetIndex === null ? 'made up' : `#${resetIndex}`})`,
    async (m, real) => {
      const mail =
        resetIndex === null
          ? undefined
          : latest(
              m.resets.filter((r) => r.receiver === party),
              resetIndex,
            );
      const token = mail?.token ?? randomBytes(32).toString('base64url');
      const password = newPassword(m, party);
      const res = await call(m, real, 'POST', '/api/users/password-reset/confirm', {
        body: { reset: { token, password } },
      });
      if (res.status !== 204) return;
      if (!mail) return violation(m, `a reset token nobody was mailed worked`);
      const account = m.accounts.get(mail.accountId) as Account;
      const row = (await rowsOf(real, [account.id])).get(account.id);
      if (mail.used) violation(m, `a reset link worked twice`);
      if (mail.pwVersion !== account.pwVersion) violation(m, `a reset link outlived a password change`);
      if (row && row.email.toLowerCase() !== mail.to) {
        violation(m, `a reset link mailed to ${mail.to} worked after the address became ${row.email}`);
      }
      mail.used = true;
      // A reset is proof of the mailbox alone: the password, the sessions and a linked Google identity end.
      Object.assign(account, {
        pwBy: party,
        password,
        pwVersion: account.pwVersion + 1,
        googleSub: null,
        googleBy: null,
      });
      endSessions(m, account.id);
      remember(m, party, row?.email ?? mail.to, password);
    },
    (m) => resetIndex === null || m.resets.some((r) => r.receiver === party),
  );

/** Google sign-in with the party's own identity, or (attacker) one claiming the victim's address unverified. */
const google = (party: Party, claimsVictim: boolean) =>
  step(party, `google(${claimsVictim ? "victim's address, unverified" : 'own'})`, async (m, real) => {
    const claims: GoogleClaims = claimsVictim
      ? { sub: `${m.id}-g-attacker-alt`, email: m.addresses.v1, name: 'Alt', email_verified: false }
      : {
          sub: `${m.id}-g-${party}`,
          email: party === 'attacker' ? m.addresses.a1 : m.addresses.v1,
          name: party,
          email_verified: true,
        };
    const before = await rowByEmail(real, claims.email);
    const { res, token } = await googleSignIn(real.stack, claims);
    tally(`Google sign-in${claimsVictim ? " (victim's address, unverified)" : ''}`, token ? 200 : res.status);
    if (res.status >= 500) violation(m, `the Google callback answered ${res.status}`);
    if (!token) return;
    const held = await adopt(m, real, party, token);
    const known = m.accounts.get(held.userId);
    if (known?.googleSub === claims.sub) return; // found by its Google identity
    if (known) {
      // Linked by address: only an account with exactly this address, and only with Google's word for it.
      if (!claims.email_verified || before?.id !== held.userId) {
        violation(
          m,
          `Google sign-in as ${claims.email} landed in ${known.username}, linked to ${before?.email}`,
        );
      }
      if (!before?.verified) {
        // The link ends the password and every session the account had.
        const hadPassword = known.password !== null;
        Object.assign(known, {
          pwBy: null,
          password: null,
          pwVersion: known.pwVersion + (hadPassword ? 1 : 0),
        });
        endSessions(m, held.userId, held);
      }
      Object.assign(known, { googleSub: claims.sub, googleBy: party });
    } else {
      m.accounts.set(held.userId, {
        id: held.userId,
        username: held.userId,
        pwBy: null,
        password: null,
        pwVersion: 0,
        googleSub: claims.sub,
        googleBy: party,
        disabled: false,
        resetMails: 0,
      });
    }
    if (claims.email_verified && ownerOf(m, claims.email) === party) {
      m.legitVerified.add(`${held.userId}|${claims.email.toLowerCase()}`);
    }
    const row = (await rowsOf(real, [held.userId])).get(held.userId);
    if (row) (m.accounts.get(held.userId) as Account).username = row.username;
  });

type AdminAction = 'end-sessions' | 'disable' | 'enable';

const admin = (party: Party, tokenIndex: number, action: AdminAction, targetIndex: number) =>
  withSession(
    party,
    tokenIndex,
    `admin(${action}, t#${tokenIndex}, account#${targetIndex})`,
    async (m, real, held) => {
      const target = pick([...m.accounts.values()], targetIndex) as Account;
      const path =
        action === 'end-sessions'
          ? `/api/admin/users/${target.username}/sessions`
          : `/api/admin/users/${target.username}/${action}`;
      const res = await call(m, real, action === 'end-sessions' ? 'DELETE' : 'POST', path, {
        token: held.token,
      });
      if (judgeUse(m, held, res, 'an admin action') === 'ended' || res.status !== 200) return;
      const row = (await rowsOf(real, [held.userId])).get(held.userId);
      const legit =
        row !== undefined &&
        isAdminAddress(row.email) &&
        ownerOf(m, row.email) === party &&
        m.legitVerified.has(`${row.id}|${row.email.toLowerCase()}`);
      if (!legit) violation(m, `${party} did ${action} as admin without owning a verified admin address`);
      if (action !== 'enable') endSessions(m, target.id);
      if (action !== 'end-sessions') target.disabled = action === 'disable';
    },
    (m) => m.accounts.size > 0,
  );

const address = fc.constantFrom<AddressName>(...ADDRESS_NAMES);
const index = fc.nat({ max: 7 });
const maybe = (arb: fc.Arbitrary<number>) => fc.option(arb, { nil: null, freq: 5 });
const adminAction = fc.constantFrom<AdminAction>('end-sessions', 'disable', 'enable');

/**
 * What one party may do, weighted: the attacker leans on the operations that move an account between
 * states (codes, email changes, resets, pre-claimed addresses); the victim behaves like a user.
 */
function stepsOf(p: Party, w: Record<string, number>): fc.Arbitrary<Cmd> {
  const own = fc.constantFrom<AddressName>(
    ...(p === 'attacker' ? (['a1', 'a2'] as const) : (['v1', 'v2'] as const)),
  );
  const arbs: Array<[number, fc.Arbitrary<Cmd>]> = [
    [w.registerOwn ?? 0, own.map((a) => register(p, a))],
    [w.registerAny ?? 0, address.map((a) => register(p, a))],
    [w.login ?? 0, index.map((i) => login(p, i, 'a1'))],
    [w.guessLogin ?? 0, address.map((a) => login(p, null, a))],
    [w.logout ?? 0, fc.tuple(index, fc.boolean()).map(([t, all]) => logout(p, t, all))],
    [w.revoke ?? 0, fc.tuple(index, index).map(([t, x]) => revokeSession(p, t, x))],
    [w.requestCode ?? 0, index.map((t) => requestCode(p, t))],
    [
      w.confirmCode ?? 0,
      fc.tuple(index, maybe(index), fc.boolean()).map(([t, c, its]) => confirmCode(p, t, c, its)),
    ],
    [w.changeEmail ?? 0, fc.tuple(index, address).map(([t, a]) => changeEmail(p, t, a))],
    [w.changePassword ?? 0, index.map((t) => changePassword(p, t))],
    [w.changeUsername ?? 0, index.map((t) => changeUsername(p, t))],
    [w.requestReset ?? 0, address.map((a) => requestReset(p, a))],
    [w.useReset ?? 0, index.map((i) => useReset(p, i))],
    [w.guessReset ?? 0, fc.constant(useReset(p, null))],
    [w.google ?? 0, fc.constant(google(p, false))],
    [w.googleClaimingVictim ?? 0, fc.constant(google(p, true))],
    [w.admin ?? 0, fc.tuple(index, adminAction, index).map(([t, a, x]) => admin(p, t, a, x))],
  ];
  return fc.oneof(
    ...arbs.filter(([weight]) => weight > 0).map(([weight, arbitrary]) => ({ weight, arbitrary })),
  );
}

const attacker = stepsOf('attacker', {
  registerOwn: 2,
  registerAny: 1,
  login: 2,
  guessLogin: 1,
  logout: 1,
  revoke: 1,
  requestCode: 4,
  confirmCode: 4,
  changeEmail: 4,
  changePassword: 1,
  changeUsername: 1,
  requestReset: 2,
  useReset: 2,
  guessReset: 1,
  google: 1,
  googleClaimingVictim: 1,
  admin: 2,
});
const victim = stepsOf('victim', {
  registerOwn: 2,
  login: 3,
  logout: 1,
  revoke: 1,
  requestCode: 2,
  confirmCode: 2,
  changeEmail: 1,
  changePassword: 1,
  changeUsername: 1,
  requestReset: 2,
  useReset: 2,
  google: 3,
  admin: 2,
});
/**
 * A step that needs a session is skipped while its party holds none; the sequences are generated longer
 * than MAX_STEPS so that most of them run MAX_STEPS steps (the check stops each one there).
 */
const commands = fc.commands(
  [fc.oneof({ weight: 3, arbitrary: attacker }, { weight: 2, arbitrary: victim })],
  { maxCommands: 3 * MAX_STEPS, size: 'max' },
);

/** The orders of the review's findings, replayed through the same model (each must keep the invariants). */
const KNOWN_ORDERS: Record<string, Cmd[]> = {
  'N1: a code mailed to the attacker confirms the unowned admin address': [
    register('attacker', 'a1'),
    requestCode('attacker', 0),
    changeEmail('attacker', 0, 'boss'),
    confirmCode('attacker', 0, 0, false),
  ],
  "a Google-linked account moved to the victim's address keeps its Google link through her reset": [
    google('attacker', false),
    changeEmail('attacker', 0, 'v2'),
    requestReset('victim', 'v2'),
    useReset('victim', 0),
    google('attacker', false),
  ],
  "N1: a pre-claimed address against the victim's later Google sign-in": [
    register('attacker', 'a1'),
    requestCode('attacker', 0),
    changeEmail('attacker', 0, 'v1'),
    confirmCode('attacker', 0, 0, false),
    google('victim', false),
  ],
};

const newWorld = (id: string): Model => ({
  id,
  addresses: addressesOf(id),
  accounts: new Map(),
  tokens: [],
  book: { attacker: [], victim: [] },
  codes: [],
  resets: [],
  legitVerified: new Set(),
  counter: 0,
  steps: 0,
});

describe('the account state machine (model-based)', () => {
  let stack: Stack;
  let dispose: () => Promise<void>;
  let db: pg.Client;

  beforeAll(async () => {
    ({ stack, dispose } = await startTestStack('account-model', {
      ADMIN_EMAILS: ADMIN_EMAILS.join(','),
      // Every party calls from 127.0.0.1: the per-address ceiling would end the exploration early; the
      // per-account ceilings stay as configured (they have their own tests).
      LOGIN_MAX_FAILURES_PER_ADDRESS: '1000000',
    }));
    db = new pg.Client({ connectionString: stack.envOf('auth').DATABASE_URL });
    await db.connect();
  }, 120_000);
  afterAll(async () => {
    await db?.end();
    await dispose?.();
  });

  it("keeps its invariants on the orders of the review's findings", async () => {
    const real: Real = { stack, api: apiClient(stack.gatewayUrl), db };
    let k = 0;
    for (const [finding, order] of Object.entries(KNOWN_ORDERS)) {
      const model = newWorld(`k${k++}`);
      await expect(
        (async () => {
          for (const step of order) if (step.check(model)) await step.run(model, real);
        })(),
        finding,
      ).resolves.toBeUndefined();
    }
  }, 120_000);

  it(
    `keeps its invariants over ${RUNS} random interleavings of up to ${MAX_STEPS} steps`,
    async () => {
      const real: Real = { stack, api: apiClient(stack.gatewayUrl), db };
      let worlds = 0;
      console.log(
        `account model: seed ${SEED}, ${RUNS} sequences of up to ${MAX_STEPS} steps (ACCOUNT_MODEL_SEED, ACCOUNT_MODEL_RUNS)`,
      );
      try {
        await fc.assert(
          fc.asyncProperty(commands, async (cmds) => {
            const model = newWorld(`m${worlds++}`);
            await fc.asyncModelRun(() => ({ model, real }), cmds);
            // Every ended session once more, at the end of the sequence.
            for (const t of model.tokens) t.deathSeen = false;
            await checkInvariants(model, real);
          }),
          { seed: SEED, numRuns: RUNS, endOnFailure: process.env.ACCOUNT_MODEL_SHRINK !== '1' },
        );
      } finally {
        console.log(`account model: ${worlds} sequences, ${stepsRun} steps; what the server did of each:`);
        console.table(Object.fromEntries([...explored].sort()));
      }
      expect(worlds).toBeGreaterThanOrEqual(RUNS);
    },
    45 * 60_000,
  );
});
