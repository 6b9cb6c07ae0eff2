/**
 * Accounts: register, log in, read and update the current user, with the RealWorld contract's rules and
 * messages. Every change to an account and its `user.*` event are written in one transaction (outbox);
 * every login creates a new session. Self-service changes keep the caller's session working (a client
 * holding its token must not be logged out by its own change); a new password or email ends every
 * other session, and a new username or role reaches every live session at once.
 *
 * Changing the email or password needs a fresh proof of identity (ASVS 5.0 re-authentication): the
 * current password in the same request, or a session that a sign-in created within the re-authentication
 * window (RealWorld clients change them right after signing in, without a current password). The old
 * address is told about a new one (the `email-changed` job). A disabled account cannot sign in.
 */
import type { Identity } from '@atoll/identity';
import type { Producer } from '@atoll/jobs';
import { isRedisUnavailable } from '@atoll/redis';
import { AppError } from '@atoll/service-kit';
import type { Session, SessionStore } from '@atoll/session-store';
import type { Kysely } from 'kysely';
import type { AuthDatabase } from '../db.ts';
import { recordEvent, type UserEventRelay } from '../outbox/outbox.ts';
import type { DeviceCookies } from '../security/device-cookie.ts';
import { accountOf, type LoginLimiter } from '../security/login-limiter.ts';
import type { PasswordChangeLimiter } from '../security/password-change-limiter.ts';
import type { RegistrationLimiter } from '../security/registration-limiter.ts';
import { foldAscii } from './fold.ts';
import { checkedUnlessBusy, isHashingBusy } from './hash-pool.ts';
import { PasswordHasher } from './password.ts';
import { type PasswordContext, PasswordPolicy } from './password-policy.ts';
import {
  findUserByEmail,
  findUserById,
  insertUser,
  newSecurityStamp,
  takenFields,
  type UserRow,
  uniqueViolation,
  updateUser,
} from './user.repository.ts';
import { normalUsername, validUsername } from './username.ts';

export interface ClientInfo {
  userAgent: string | undefined;
  ip: string;
  /** The session token the request already carried, if any: ended when a new session starts. */
  previousToken?: string | null;
  /** The device cookie the request carried, if any (security/device-cookie.ts). */
  deviceToken?: string | null;
  /** A browser, which keeps cookies: only browsers are given a device cookie. */
  browser?: boolean;
}

/** What an update knows of the request besides the identity. */
export interface UpdateClient {
  /** The caller's session token: it stays valid and is returned. */
  token: string;
  /** The client address, for the brute-force limiter when a current password is checked. */
  ip: string;
  /** The device cookie the request carried, if any: a trusted browser is counted by it alone. */
  deviceToken?: string | null;
}

export const DEFAULT_REAUTH_WINDOW_MS = 15 * 60_000;

export interface UserWithToken {
  user: UserRow;
  token: string;
  /** A new device cookie to set (a browser that signed in without a valid one). */
  deviceToken?: string;
}

const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

type FieldErrors = Record<string, string[]>;

function add(errors: FieldErrors, field: string, message: string) {
  errors[field] = [...(errors[field] ?? []), message];
}

function checkUsername(errors: FieldErrors, value: string | undefined) {
  if (value === undefined) return;
  if (value.trim() === '') add(errors, 'username', "can't be blank");
  else if (!validUsername(value)) add(errors, 'username', 'is invalid');
}

function checkEmail(errors: FieldErrors, value: string | undefined) {
  if (value === undefined) return;
  if (value.trim() === '') add(errors, 'email', "can't be blank");
  else if (!EMAIL.test(value.trim())) add(errors, 'email', 'is invalid');
}

/**
 * A profile image is shown to everyone who reads the profile (a frontend puts it in `<img src>`, some
 * in a link): an absolute http or https URL without credentials, never `javascript:` or `data:`, stored
 * as the URL parser writes it (whitespace gone, quotes and controls percent-encoded, the host in
 * punycode). `""` clears it. Null for a refused one (an error is added).
 */
function imageUrl(errors: FieldErrors, value: string): string | null {
  const url = URL.parse(value.trim());
  if ((url?.protocol !== 'http:' && url?.protocol !== 'https:') || url.username || url.password) {
    add(errors, 'image', 'must be an http or https URL');
    return null;
  }
  return url.href;
}

function checkPassword(
  errors: FieldErrors,
  value: string | undefined,
  policy: PasswordPolicy,
  context: PasswordContext,
) {
  if (value === undefined) return;
  const problem = policy.problem(value, context);
  if (problem) add(errors, 'password', problem);
}

function throwIfAny(errors: FieldErrors) {
  if (Object.keys(errors).length > 0) throw new AppError('VALIDATION_FAILED', errors);
}

function conflict(fields: Array<'username' | 'email'>): AppError {
  return new AppError('CONFLICT', Object.fromEntries(fields.map((f) => [f, ['has already been taken']])));
}

export function tooManyAttempts(retryAfterMs: number): AppError {
  return new AppError('AUTH_TOO_MANY_ATTEMPTS', undefined, {
    'retry-after': String(Math.ceil(retryAfterMs / 1000)),
  });
}

/** `ada@example.com` → `a***@example.com`: enough for the owner to recognise, little for anyone else. */
export function maskEmail(email: string): string {
  const at = email.lastIndexOf('@');
  return `${email.slice(0, Math.min(1, at))}***${email.slice(at)}`;
}

/** `""` clears a field (RealWorld clients send it for "none"); `null` does too. */
const emptyToNull = (value: string | null | undefined) =>
  value === undefined ? undefined : value === '' ? null : value;

/** `user.updated` (v2): the public profile, the address and whether it is verified, as of `updated_at`. */
export function accountEvent(user: UserRow) {
  return {
    ...publicProfile(user),
    email: user.email,
    emailVerified: user.email_verified_at !== null,
    occurredAt: user.updated_at.toISOString(),
  };
}

export function publicProfile(user: UserRow) {
  return { userId: user.id, username: user.username, bio: user.bio, image: user.image };
}

export class UserService {
  private readonly db: Kysely<AuthDatabase>;
  private readonly sessions: SessionStore;
  private readonly relay: UserEventRelay;
  private readonly limiter: LoginLimiter;
  private readonly changes: PasswordChangeLimiter | null;
  private readonly registrations: RegistrationLimiter | null;
  private readonly devices: DeviceCookies | null;
  private readonly adminEmails: Set<string>;
  private readonly producer: Producer;
  private readonly reauthWindowMs: number;
  private readonly policy: PasswordPolicy;
  private readonly passwords: PasswordHasher;
  private readonly onEmailChanged: (userId: string) => Promise<void>;

  constructor(deps: {
    db: Kysely<AuthDatabase>;
    sessions: SessionStore;
    relay: UserEventRelay;
    limiter: LoginLimiter;
    /** Password changes per account; unlimited when not given. */
    changes?: PasswordChangeLimiter;
    /** Sign-ups per client address; unlimited when not given. */
    registrations?: RegistrationLimiter;
    /** Device cookies for browsers that signed in; none when not given. */
    devices?: DeviceCookies;
    adminEmails?: string[];
    /** Enqueues the `email-changed` mail to the old address. */
    producer: Producer;
    /** How long after the sign-in that created it a session may change the email or password. */
    reauthWindowMs?: number;
    /** Hashes new passwords at the configured cost; the default cost when not given. */
    passwords?: PasswordHasher;
    /** What a new password must be; common passwords are refused when not given. */
    policy?: PasswordPolicy;
    /** Ends whatever was mailed to the old address (a pending verification code) when the email changes. */
    onEmailChanged?: (userId: string) => Promise<void>;
  }) {
    this.onEmailChanged = deps.onEmailChanged ?? (async () => undefined);
    this.policy = deps.policy ?? new PasswordPolicy({ denyCommon: true });
    this.adminEmails = new Set(deps.adminEmails ?? []);
    this.producer = deps.producer;
    this.reauthWindowMs = deps.reauthWindowMs ?? DEFAULT_REAUTH_WINDOW_MS;
    this.passwords = deps.passwords ?? new PasswordHasher();
    this.db = deps.db;
    this.sessions = deps.sessions;
    this.relay = deps.relay;
    this.limiter = deps.limiter;
    this.changes = deps.changes ?? null;
    this.registrations = deps.registrations ?? null;
    this.devices = deps.devices ?? null;
  }

  /**
   * Everyone is a `user`; an account whose email is in ADMIN_EMAILS is also an `admin`, but only once
   * that address is verified: otherwise whoever registered it first would be an admin. Roles are fixed
   * when a session starts (sign in again after verifying), and recomputed for live admin sessions when
   * auth starts (sessions/reconcile-roles.ts).
   */
  rolesOf(user: UserRow): string[] {
    const admin = user.email_verified_at !== null && this.adminEmails.has(foldAscii(user.email));
    return admin ? ['user', 'admin'] : ['user'];
  }

  private newSession(user: UserRow, client: ClientInfo): Promise<{ token: string; session: Session }> {
    return this.sessions.create({
      userId: user.id,
      username: user.username,
      roles: this.rolesOf(user),
      userAgent: client.userAgent,
      ip: client.ip,
    });
  }

  async register(
    input: { username: string; email: string; password: string },
    client: ClientInfo,
  ): Promise<UserWithToken> {
    const errors: FieldErrors = {};
    checkUsername(errors, input.username);
    checkEmail(errors, input.email);
    checkPassword(errors, input.password, this.policy, input);
    throwIfAny(errors);
    this.passwords.admit(client.ip, 'new');
    // Counted before anything else is looked at (a taken address is a sign-up too: no free probing).
    const counted = await this.registrations?.count(client.ip);
    const username = normalUsername(input.username);
    const email = input.email.trim();
    const taken = await takenFields(this.db, { username, email });
    if (taken.length > 0) throw conflict(taken);
    const passwordHash = await this.passwords.hash(input.password, client.ip).catch(async (err: unknown) => {
      // Refused by a busy pool: nothing was hashed, so this sign-up is given back.
      if (isHashingBusy(err)) await counted?.giveBack();
      throw err;
    });
    try {
      // The session is created before the account commits: if redis-session is down the registration
      // fails as a whole (503) instead of leaving an account its owner got no token for.
      const created = await this.db.transaction().execute(async (trx) => {
        const row = await insertUser(trx, { username, email, passwordHash });
        await recordEvent(trx, 'user.registered', {
          ...publicProfile(row),
          email: row.email,
          emailVerified: row.email_verified_at !== null,
          occurredAt: row.created_at.toISOString(),
        });
        const { token } = await this.newSession(row, client);
        return { user: row, token };
      });
      this.relay.kick();
      await this.endPrevious(client);
      return { ...created, ...(await this.newDevice(created.user, client, null)) };
    } catch (err) {
      const field = uniqueViolation(err);
      if (field) throw conflict([field]); // lost a race with another registration
      throw err;
    }
  }

  async login(input: { email: string; password: string }, client: ClientInfo): Promise<UserWithToken> {
    // A full hashing pool answers 503 before any work (and before an attempt is counted).
    this.passwords.admit(client.ip);
    const account = accountOf('email', input.email);
    const lookUp = () => findUserByEmail(this.db, input.email.trim());
    // A browser that signed in to this account before (this account: its id and credentials, not just
    // its address) is counted by its device cookie alone. Only then is the account read first.
    const known = this.devices && client.deviceToken ? await lookUp() : null;
    const device = known ? await this.devices!.trusted(client.deviceToken ?? null, known) : null;
    const attempt = await this.limiter.begin(account, client.ip, device);
    if (!attempt.allowed) throw tooManyAttempts(attempt.retryAfterMs);
    let user = known === null ? await lookUp() : known;
    // The same work whether or not the account exists: the answer and its timing reveal nothing.
    const stored = user?.password_hash ?? null;
    const { valid, outdated } = await checkedUnlessBusy(attempt, () =>
      this.passwords.verify(input.password, stored, client.ip),
    );
    if (!user?.password_hash || !valid) throw new AppError('AUTH_INVALID_CREDENTIALS');
    await attempt.succeeded();
    // A hash made at a lower cost than today's is replaced while the password is at hand; only if the
    // stored hash is still the one just checked (a concurrent change wins).
    const rehashed = outdated ? await this.rehash(user, input.password, client.ip) : undefined;
    user = rehashed ?? user;
    const token = await this.startSession(user, client);
    // A new hash is new credentials: the device cookie this browser brought no longer counts, so it gets one.
    return { user, token, ...(await this.newDevice(user, client, rehashed ? null : device)) };
  }

  /**
   * A device cookie for a browser that signed in to `user` without a valid one already. Best effort:
   * the sign-in has happened (the account and its session exist), so a failure here only means no
   * cookie this time.
   */
  private async newDevice(
    user: UserRow,
    client: Pick<ClientInfo, 'browser'>,
    trusted: string | null,
  ): Promise<{ deviceToken?: string }> {
    if (!this.devices || !client.browser || trusted !== null) return {};
    try {
      return { deviceToken: await this.devices.issue(user) };
    } catch {
      return {};
    }
  }

  /** Best effort: with no room for a new hash now (busy), the login goes on and a later one rehashes. */
  private async rehash(user: UserRow, password: string, ip: string): Promise<UserRow | undefined> {
    let passwordHash: string;
    try {
      passwordHash = await this.passwords.hash(password, ip);
    } catch (err) {
      if (isHashingBusy(err)) return undefined;
      throw err;
    }
    return this.db
      .updateTable('users')
      .set({ password_hash: passwordHash })
      .where('id', '=', user.id)
      .where('password_hash', '=', user.password_hash as string)
      .returningAll()
      .executeTakeFirst();
  }

  /**
   * A new session for a user who just proved who they are (password, Google), ending whatever session
   * the client had before; returns the token.
   */
  async startSession(user: UserRow, client: ClientInfo): Promise<string> {
    // A disabled account is refused like a wrong password: the answer tells nobody the password was right.
    if (user.disabled_at) throw new AppError('AUTH_INVALID_CREDENTIALS');
    const { token, session } = await this.newSession(user, client);
    // The account read again once the session exists. Whatever ends every session of an account (a new
    // password or email, a reset, a Google link, an admin's disable) first commits its change, then ends
    // the sessions it finds. So either that change is seen here, or the end comes after this session
    // existed and finds it: no order leaves a session made from credentials that no longer hold.
    const now = await findUserById(this.db, user.id);
    if (!now || now.disabled_at || now.security_stamp !== user.security_stamp) {
      await this.sessions.destroyById(user.id, session.id);
      throw new AppError('AUTH_INVALID_CREDENTIALS');
    }
    // Renamed, or its roles changed, while the session was made: it carries what holds now.
    if (now.username !== user.username || this.rolesOf(now).join() !== this.rolesOf(user).join()) {
      await this.sessions.updateIdentity(user.id, { username: now.username, roles: this.rolesOf(now) });
    }
    await this.endPrevious(client);
    return token;
  }

  /**
   * Re-authentication before an email or password change: the current password (a wrong one is a failed
   * attempt for the brute-force limiter, 422), or else a session created by a sign-in within the window
   * (401 `AUTH_REAUTHENTICATION_REQUIRED` otherwise). An account without a password (Google only) has
   * only the window.
   */
  private async reauthenticate(
    identity: Identity,
    user: UserRow,
    currentPassword: string | undefined,
    client: UpdateClient,
  ): Promise<void> {
    const { ip } = client;
    if (currentPassword !== undefined) {
      const account = accountOf('email', user.email);
      // As at login: a browser that signed in to this account before is counted by its device alone.
      const device = (await this.devices?.trusted(client.deviceToken ?? null, user)) ?? null;
      const attempt = await this.limiter.begin(account, ip, device);
      if (!attempt.allowed) throw tooManyAttempts(attempt.retryAfterMs);
      const { valid } = await checkedUnlessBusy(attempt, () =>
        this.passwords.verify(currentPassword, user.password_hash, ip),
      );
      if (!user.password_hash || !valid) {
        throw new AppError('VALIDATION_FAILED', { currentPassword: ['is invalid'] });
      }
      await attempt.succeeded();
      return;
    }
    const session = await this.sessions.find(identity.userId, identity.sessionId);
    if (session && Date.now() - session.createdAt < this.reauthWindowMs) return;
    throw new AppError('AUTH_REAUTHENTICATION_REQUIRED');
  }

  /** Session fixation: whatever session the client had before logging in never survives the login. */
  private async endPrevious(client: ClientInfo): Promise<void> {
    if (client.previousToken) await this.sessions.destroy(client.previousToken);
  }

  async current(identity: Identity): Promise<UserRow> {
    const user = await findUserById(this.db, identity.userId);
    // The session outlived its account: treat it as no session at all.
    if (!user) throw new AppError('TOKEN_MISSING');
    return user;
  }

  async update(
    identity: Identity,
    client: UpdateClient,
    patch: {
      username?: string | undefined;
      email?: string | undefined;
      password?: string | undefined;
      currentPassword?: string | undefined;
      bio?: string | null | undefined;
      image?: string | null | undefined;
    },
  ): Promise<UserWithToken> {
    // `password: ""` is refused (422 "can't be blank"), as the RealWorld contract's conformance tests
    // require; a client that keeps the password leaves the field out.
    const password = patch.password;
    const errors: FieldErrors = {};
    checkUsername(errors, patch.username);
    checkEmail(errors, patch.email);
    const image = patch.image ? imageUrl(errors, patch.image) : emptyToNull(patch.image);
    const before = await this.current(identity);
    const username = patch.username === undefined ? undefined : normalUsername(patch.username);
    const email = patch.email?.trim();
    checkPassword(errors, password, this.policy, {
      username: username ?? before.username,
      email: email ?? before.email,
    });
    throwIfAny(errors);
    if (password !== undefined || (email !== undefined && email !== before.email)) {
      await this.reauthenticate(identity, before, patch.currentPassword, client);
    }
    // The current password, just proved, sent again as the new one: nothing changes, nothing is hashed.
    const samePassword = password !== undefined && password === patch.currentPassword;
    const taken = await takenFields(
      this.db,
      {
        username: username !== undefined && username !== before.username ? username : undefined,
        email: email !== undefined && foldAscii(email) !== foldAscii(before.email) ? email : undefined,
      },
      before.id,
    );
    if (taken.length > 0) throw conflict(taken);
    // Every real change costs a hash: counted per account before it, once nothing else refused the
    // request. (A wrong current password is a failed attempt for the guessing limiter instead, and
    // costs no new hash.)
    if (password !== undefined && !samePassword) await this.changes?.count(before.id);
    // A browser trusted before a new password is trusted after it (below): the owner just proved it.
    const trustedDevice =
      password === undefined || samePassword
        ? null
        : ((await this.devices?.trusted(client.deviceToken ?? null, before)) ?? null);
    const passwordHash =
      password === undefined || samePassword ? undefined : await this.passwords.hash(password, client.ip);
    const changes = {
      ...(username !== undefined ? { username } : {}),
      // A new address is not verified yet (and whatever role it would give waits until it is).
      ...(email !== undefined && email !== before.email ? { email } : {}),
      ...(email !== undefined && foldAscii(email) !== foldAscii(before.email)
        ? { email_verified_at: null }
        : {}),
      ...(passwordHash !== undefined ? { password_hash: passwordHash } : {}),
      // New credentials: every reset link mailed before stops working (even if the email changes back).
      ...(passwordHash !== undefined || (email !== undefined && email !== before.email)
        ? { security_stamp: newSecurityStamp() }
        : {}),
      ...(patch.bio !== undefined ? { bio: emptyToNull(patch.bio) ?? null } : {}),
      ...(image !== undefined ? { image } : {}),
    };
    let user: UserRow;
    try {
      user = await this.db.transaction().execute(async (trx) => {
        // Only the account as it was read and authorised: a new password, email or reset that committed
        // meanwhile (and ended the session this request came with) makes this one fail, not undo it.
        const row =
          Object.keys(changes).length > 0
            ? await updateUser(trx, before.id, changes, before.security_stamp)
            : before;
        if (!row)
          throw new AppError('CONFLICT', { user: ['changed while this request was made: sign in again'] });
        const profileChanged =
          row.username !== before.username || row.bio !== before.bio || row.image !== before.image;
        // The email and its verification too: the notifier mails the current address (accountEvent).
        const verifiedChanged = (row.email_verified_at === null) !== (before.email_verified_at === null);
        if (profileChanged || row.email !== before.email || verifiedChanged) {
          await recordEvent(trx, 'user.updated', accountEvent(row));
        }
        // The old address hears of the change, or nothing changes: enqueued last, inside the transaction,
        // so a down queue rolls the change back (503) rather than leaving it untold.
        if (foldAscii(row.email) !== foldAscii(before.email)) {
          await this.producer.enqueue(
            'security-email',
            'email-changed',
            {
              v: 1,
              userId: row.id,
              to: before.email,
              username: row.username,
              newEmailMasked: maskEmail(row.email),
              changedAt: row.updated_at.toISOString(),
            },
            { jobId: `email-changed-${row.id}-${row.updated_at.getTime()}` },
          );
        }
        return row;
      });
    } catch (err) {
      const field = uniqueViolation(err);
      if (field) throw conflict([field]);
      if (isRedisUnavailable(err)) throw new AppError('QUEUE_UNAVAILABLE');
      throw err;
    }
    this.relay.kick();

    // A code mailed to the old address verifies nothing now (a reset link is bound to the address too).
    if (user.email !== before.email) await this.onEmailChanged(user.id);
    // The session that made the change goes on (its token is the one returned); a new password or
    // email ends every other session of the account (ASVS 5.0, 7.4.3).
    if (passwordHash !== undefined || user.email !== before.email) {
      await this.sessions.destroyAll(user.id, identity.sessionId);
    }
    const roles = this.rolesOf(user);
    if (user.username !== before.username || roles.join() !== this.rolesOf(before).join()) {
      await this.sessions.updateIdentity(user.id, { username: user.username, roles });
    }
    // The new password ended the trust of every device cookie; the one that made the change keeps it.
    const device =
      passwordHash !== undefined && trustedDevice !== null
        ? await this.newDevice(user, { browser: true }, null)
        : {};
    return { user, token: client.token, ...device };
  }
}
