/**
 * Email verification codes and password resets. Both secrets are shown once (in the email) and stored
 * only as hashes in redis-session with a short TTL; both emails go out as jobs of the email queue (the
 * notifier sends them). If the job cannot be enqueued, nothing is left behind and the caller gets 503:
 * never "202 and the email is silently lost".
 *
 * - Neither secret is in the email job (see mailSecurely).
 * - A 6-digit code lives 15 minutes, allows 5 attempts (check-code.lua), and a new one replaces the old.
 *   It verifies only the address it was mailed to: its hash binds the account and that address, an
 *   email change drops the pending code (`dropPendingCode`), and the confirmation marks the account
 *   verified only while its email is still that address. A role the address gives (ADMIN_EMAILS)
 *   reaches the account's live sessions at once.
 * - A reset token (32 random bytes) lives 30 minutes and is consumed with GETDEL: a link works once.
 *   It is good only for the account as it was when it was issued: the record holds a fingerprint of the
 *   account's email, password hash and security stamp, so a reset (with this link or another), a new
 *   password or a new email makes every earlier link useless, even once the email is changed back. A
 *   reset ends every other credential: the sessions and a linked Google identity.
 * - Asking for a reset answers 202 whether or not the email has an account, and not before
 *   RESET_ANSWER_FLOOR_MS, so the time it takes does not tell either.
 * - One account gets at most MAIL_CAP reset emails and MAIL_CAP codes per MAIL_CAP_WINDOW_MS, however
 *   often someone asks (each ask would mail the owner): over the cap a reset request still answers 202
 *   and sends nothing, a code request answers 429 with Retry-After.
 */
import { createHash, randomBytes, randomInt, timingSafeEqual } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Identity } from '@atoll/identity';
import type { Producer } from '@atoll/jobs';
import { isRedisUnavailable, oneSlotMulti, type RedisClient } from '@atoll/redis';
import { KEY_SPECS, type Keys } from '@atoll/redis-keys';
import { AppError } from '@atoll/service-kit';
import type { SessionStore } from '@atoll/session-store';
import type { Kysely } from 'kysely';
import type { AuthDatabase } from '../db.ts';
import { recordEvent, type UserEventRelay } from '../outbox/outbox.ts';
import { countFailure, giveBack } from '../security/count-failure.lua.ts';
import { accountOf, type LoginLimiter } from '../security/login-limiter.ts';
import { foldAscii } from '../users/fold.ts';
import { checkedUnlessBusy } from '../users/hash-pool.ts';
import { PasswordHasher } from '../users/password.ts';
import { PasswordPolicy } from '../users/password-policy.ts';
import { findUserByEmail, findUserById, newSecurityStamp, type UserRow } from '../users/user.repository.ts';
import { accountEvent, tooManyAttempts } from '../users/user.service.ts';
import { CHECK_CODE, CODE_RESULT } from './check-code.lua.ts';

export const CODE_TTL_MS = KEY_SPECS.verificationCode.ttlMs;
export const CODE_ATTEMPTS = 5;
export const RESET_TTL_MS = KEY_SPECS.passwordReset.ttlMs;
/** Emails of one kind (reset, code) one account may be sent per window. */
export const MAIL_CAP = 3;
export const MAIL_CAP_WINDOW_MS = KEY_SPECS.mailCap.ttlMs;
/** A reset request never answers sooner, known account or not (the work takes far less). */
export const RESET_ANSWER_FLOOR_MS = 60;

const sha256 = (value: string) => createHash('sha256').update(value).digest('hex');

/**
 * What a reset token is bound to: the account's email, password hash and security stamp when it was
 * issued (the stamp changes with every new email or password, so an email changed and changed back
 * does not bring an old link back).
 */
const accountState = (user: Pick<UserRow, 'email' | 'password_hash' | 'security_stamp'>) =>
  sha256(`${foldAscii(user.email)}|${user.password_hash ?? ''}|${user.security_stamp}`);

/** What a code's record holds: bound to the account and to the address the code was mailed to. */
const codeHash = (userId: string, email: string, code: string) =>
  sha256(`${userId}|${foldAscii(email)}|${code}`);

/** The reset record: `<userId> <account state>`. */
const resetRecord = (user: UserRow) => `${user.id} ${accountState(user)}`;

export class VerificationService {
  private readonly db: Kysely<AuthDatabase>;
  private readonly redis: RedisClient;
  private readonly keys: Keys;
  private readonly producer: Producer;
  private readonly sessions: SessionStore;
  private readonly limiter: LoginLimiter;
  private readonly passwords: PasswordHasher;
  private readonly policy: PasswordPolicy;
  private readonly rolesOf: (user: UserRow) => string[];
  /** Told when an event was recorded, to publish it at once rather than at its next poll. */
  private readonly relay: UserEventRelay | undefined;

  constructor(deps: {
    db: Kysely<AuthDatabase>;
    redis: RedisClient;
    keys: Keys;
    producer: Producer;
    sessions: SessionStore;
    limiter: LoginLimiter;
    passwords?: PasswordHasher;
    policy?: PasswordPolicy;
    /** The roles an account has (a verified ADMIN_EMAILS address gives `admin`). */
    rolesOf: (user: UserRow) => string[];
    relay?: UserEventRelay;
  }) {
    this.relay = deps.relay;
    this.policy = deps.policy ?? new PasswordPolicy({ denyCommon: true });
    this.rolesOf = deps.rolesOf;
    this.db = deps.db;
    this.redis = deps.redis;
    this.keys = deps.keys;
    this.producer = deps.producer;
    this.sessions = deps.sessions;
    this.limiter = deps.limiter;
    this.passwords = deps.passwords ?? new PasswordHasher();
  }

  /**
   * Counts one email of `kind` to the account (the counter gets its TTL in the same script); returns
   * null when it may go, else how long until it may.
   */
  private async capMail(kind: 'reset' | 'code', userId: string): Promise<number | null> {
    const [count, ttl] = await countFailure(this.redis, this.keys.mailCap(kind, userId), MAIL_CAP_WINDOW_MS);
    return count <= MAIL_CAP ? null : Math.max(1000, ttl);
  }

  /** Sends a new code to the account's email; the previous code stops working. */
  async sendCode(identity: Identity): Promise<{ expiresAt: Date }> {
    const user = await findUserById(this.db, identity.userId);
    if (!user) throw new AppError('TOKEN_MISSING');
    if (user.email_verified_at) throw new AppError('CONFLICT', { email: ['is already verified'] });
    const wait = await this.capMail('code', user.id);
    if (wait !== null) throw tooManyAttempts(wait);
    const code = String(randomInt(0, 1_000_000)).padStart(6, '0');
    const expiresAt = new Date(Date.now() + CODE_TTL_MS);
    const key = this.keys.verificationCode(user.id);
    await oneSlotMulti(this.redis, 'verification code', [key])
      .del(key)
      .hset(key, { h: codeHash(user.id, user.email, code), attempts: '0' })
      .pexpire(key, CODE_TTL_MS)
      .exec();
    await this.mailSecurely('verification-code', user, {
      jobId: `verification-code-${user.id}-${expiresAt.getTime()}`,
      secret: code,
      expiresAt,
      record: key,
      cap: 'code',
    });
    return { expiresAt };
  }

  /**
   * Checks a code; on success the email counts as verified. Wrong codes count as failed attempts on the
   * account (the brute-force limiter), across codes: asking for a new code does not reset them.
   */
  async confirmCode(identity: Identity, code: string, address: string): Promise<UserRow> {
    const attempt = await this.limiter.begin(accountOf('user', identity.userId), address);
    if (!attempt.allowed) throw tooManyAttempts(attempt.retryAfterMs);
    const user = await findUserById(this.db, identity.userId);
    if (!user) throw new AppError('TOKEN_MISSING');
    const result = await CHECK_CODE.run(
      this.redis,
      [this.keys.verificationCode(user.id)],
      codeHash(user.id, user.email, code),
      CODE_ATTEMPTS,
    );
    if (result === CODE_RESULT.NONE || result === CODE_RESULT.USED_UP) {
      throw new AppError('VALIDATION_FAILED', { code: ['has expired or was used up, ask for a new one'] });
    }
    if (result !== CODE_RESULT.RIGHT) throw new AppError('VALIDATION_FAILED', { code: ['is invalid'] });
    await attempt.succeeded();
    // Only the address the code was mailed to (an email change racing this confirmation wins); the
    // notifier learns of the verification (its mention rules) from the event, in the same transaction.
    const verified = await this.db.transaction().execute(async (trx) => {
      const now = new Date();
      const row = await trx
        .updateTable('users')
        .set({ email_verified_at: now, updated_at: now })
        .where('id', '=', user.id)
        .where('email', '=', user.email)
        .returningAll()
        .executeTakeFirst();
      if (row) await recordEvent(trx, 'user.updated', accountEvent(row));
      return row;
    });
    if (!verified) {
      throw new AppError('VALIDATION_FAILED', { code: ['has expired or was used up, ask for a new one'] });
    }
    this.relay?.kick();
    const roles = this.rolesOf(verified);
    if (roles.join() !== this.rolesOf(user).join()) {
      await this.sessions.updateIdentity(verified.id, { username: verified.username, roles });
    }
    return verified;
  }

  /** An email change ends the code mailed to the old address. */
  async dropPendingCode(userId: string): Promise<void> {
    await this.redis.del(this.keys.verificationCode(userId));
  }

  /**
   * Starts a password reset. The answer is the same whether or not the email has an account, and so is
   * its timing: the work for a known account (a token, a job) takes longer than a lookup that finds
   * nothing, so no answer comes before RESET_ANSWER_FLOOR_MS. Over the account's mail cap nothing is
   * sent, and the answer is the same again.
   */
  async requestReset(email: string): Promise<void> {
    const floor = sleep(RESET_ANSWER_FLOOR_MS);
    try {
      await this.sendReset(email);
    } finally {
      await floor;
    }
  }

  private async sendReset(email: string): Promise<void> {
    const user = await findUserByEmail(this.db, email.trim());
    if (!user) return;
    if ((await this.capMail('reset', user.id)) !== null) return;
    const token = randomBytes(32).toString('base64url');
    const key = this.keys.passwordReset(sha256(token));
    const expiresAt = new Date(Date.now() + RESET_TTL_MS);
    await this.redis.set(key, resetRecord(user), 'PX', RESET_TTL_MS);
    // The job's id says nothing of the token (not even of its hash, which names the reset record).
    await this.mailSecurely('password-reset', user, {
      jobId: `password-reset-${randomBytes(12).toString('hex')}`,
      secret: token,
      expiresAt,
      record: key,
      cap: 'reset',
    });
  }

  /**
   * Consumes a reset token (once), sets the new password and ends every session of the account. Unknown
   * tokens, and tokens issued before the account's email or password last changed, count as failed
   * attempts of the client address (the brute-force limiter).
   */
  async confirmReset(token: string, password: string, address: string): Promise<void> {
    // Length and commonness first, so a hopeless password costs no attempt and no lookup.
    const early = this.policy.problem(password, {});
    if (early) throw new AppError('VALIDATION_FAILED', { password: [early] });
    const attempt = await this.limiter.begin(null, address);
    if (!attempt.allowed) throw tooManyAttempts(attempt.retryAfterMs);
    const invalid = () => new AppError('VALIDATION_FAILED', { token: ['is invalid or has expired'] });
    const key = this.keys.passwordReset(sha256(token));
    const [userId, issuedFor] = (await this.redis.get(key))?.split(' ') ?? [];
    if (!userId || !issuedFor) throw invalid();
    const user = await findUserById(this.db, userId);
    if (!user || !sameState(accountState(user), issuedFor)) {
      await this.redis.del(key);
      throw invalid();
    }
    // The account's own words: a refused password leaves the link usable for a better one.
    const problem = this.policy.problem(password, { username: user.username, email: user.email });
    if (problem) throw new AppError('VALIDATION_FAILED', { password: [problem] });
    // Hashed before the token is taken: when hashing is busy (503) the link stays good for a retry.
    const passwordHash = await checkedUnlessBusy(attempt, () => this.passwords.hash(password, address));
    // Single use: of two confirmations racing, only the one that takes the token goes on.
    if ((await this.redis.getdel(key)) === null) throw invalid();
    await attempt.succeeded();
    // Only if the account is still as the token knew it: of two links used at once, one wins. The reset
    // is proof of the mailbox alone, so every other credential ends with it: the sessions, and a Google
    // identity linked before (it may be whoever had the account before the address's owner took it).
    const updated = await this.db
      .updateTable('users')
      .set({
        password_hash: passwordHash,
        google_subject: null,
        security_stamp: newSecurityStamp(),
        updated_at: new Date(),
      })
      .where('id', '=', user.id)
      .where('email', '=', user.email)
      .where('password_hash', user.password_hash === null ? 'is' : '=', user.password_hash)
      .where('security_stamp', '=', user.security_stamp)
      .returningAll()
      .executeTakeFirst();
    if (!updated) throw invalid();
    await this.sessions.destroyAll(userId);
  }

  /**
   * Enqueues a security email. The job carries no secret: the code or token goes to a record of its own
   * (`keys.mailSecret(jobId)`, redis-session, living as long as the secret), which the notifier reads to
   * write the email and deletes once it is sent. So redis-queue, its dashboard and its 24 h of completed
   * jobs never hold a secret; the record exists only between the request and the send. If the enqueue
   * fails, the secret, its mail record and the count against the cap are undone.
   */
  private async mailSecurely(
    job: 'verification-code' | 'password-reset',
    user: UserRow,
    mail: { jobId: string; secret: string; expiresAt: Date; record: string; cap: 'code' | 'reset' },
  ): Promise<void> {
    const secretKey = this.keys.mailSecret(mail.jobId);
    const payload = {
      v: 2 as const,
      userId: user.id,
      to: user.email,
      username: user.username,
      expiresAt: mail.expiresAt.toISOString(),
    };
    try {
      await this.redis.set(secretKey, mail.secret, 'PX', Math.max(1, mail.expiresAt.getTime() - Date.now()));
      await this.producer.enqueue('security-email', job, payload, { jobId: mail.jobId });
    } catch (err) {
      await this.redis.del(secretKey).catch(() => undefined);
      await this.redis.del(mail.record).catch(() => undefined);
      await giveBack(this.redis, this.keys.mailCap(mail.cap, user.id)).catch(() => undefined);
      throw isRedisUnavailable(err) ? new AppError('QUEUE_UNAVAILABLE') : err;
    }
  }
}

function sameState(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
