/**
 * Email verification codes and password resets. Both secrets are shown once (in the email) and stored
 * only as hashes in redis-session with a short TTL; both emails go out as jobs of the email queue (the
 * notifier sends them). If the job cannot be enqueued, nothing is left behind and the caller gets 503:
 * never "202 and the email is silently lost".
 *
 * - A 6-digit code lives 15 minutes, allows 5 attempts (check-code.lua), and a new one replaces the old.
 * - A reset token (32 random bytes) lives 30 minutes and is consumed with GETDEL: a link works once.
 *   Asking for a reset answers 202 whether or not the email has an account.
 */
import { createHash, randomBytes, randomInt } from 'node:crypto';
import type { Identity } from '@atoll/identity';
import type { Producer } from '@atoll/jobs';
import { isRedisUnavailable } from '@atoll/redis';
import type { Keys } from '@atoll/redis-keys';
import { AppError } from '@atoll/service-kit';
import type { SessionStore } from '@atoll/session-store';
import type { Redis } from 'ioredis';
import type { Kysely } from 'kysely';
import type { AuthDatabase } from '../db.ts';
import { accountOf, type LoginLimiter } from '../security/login-limiter.ts';
import { hashPassword } from '../users/password.ts';
import { findUserByEmail, findUserById, type UserRow, updateUser } from '../users/user.repository.ts';
import { MIN_PASSWORD, tooManyAttempts } from '../users/user.service.ts';
import { CHECK_CODE, CODE_RESULT } from './check-code.lua.ts';

export const CODE_TTL_MS = 15 * 60_000;
export const CODE_ATTEMPTS = 5;
export const RESET_TTL_MS = 30 * 60_000;

const sha256 = (value: string) => createHash('sha256').update(value).digest('hex');

type ScriptedRedis = Redis & { checkCode(key: string, hash: string, attempts: number): Promise<number> };

export class VerificationService {
  private readonly db: Kysely<AuthDatabase>;
  private readonly redis: ScriptedRedis;
  private readonly keys: Keys;
  private readonly producer: Producer;
  private readonly sessions: SessionStore;
  private readonly limiter: LoginLimiter;

  constructor(deps: {
    db: Kysely<AuthDatabase>;
    redis: Redis;
    keys: Keys;
    producer: Producer;
    sessions: SessionStore;
    limiter: LoginLimiter;
  }) {
    if (!('checkCode' in deps.redis))
      deps.redis.defineCommand('checkCode', { numberOfKeys: 1, lua: CHECK_CODE });
    this.db = deps.db;
    this.redis = deps.redis as ScriptedRedis;
    this.keys = deps.keys;
    this.producer = deps.producer;
    this.sessions = deps.sessions;
    this.limiter = deps.limiter;
  }

  /** Sends a new code to the account's email; the previous code stops working. */
  async sendCode(identity: Identity): Promise<{ expiresAt: Date }> {
    const user = await findUserById(this.db, identity.userId);
    if (!user) throw new AppError('TOKEN_MISSING');
    if (user.email_verified_at) throw new AppError('CONFLICT', { email: ['is already verified'] });
    const code = String(randomInt(0, 1_000_000)).padStart(6, '0');
    const expiresAt = new Date(Date.now() + CODE_TTL_MS);
    const key = this.keys.verificationCode(user.id);
    await this.redis
      .multi()
      .del(key)
      .hset(key, { h: sha256(`${user.id}:${code}`), attempts: '0' })
      .pexpire(key, CODE_TTL_MS)
      .exec();
    await this.enqueueOrUndo(key, () =>
      this.producer.enqueue(
        'email',
        'verification-code',
        {
          v: 1,
          userId: user.id,
          to: user.email,
          username: user.username,
          code,
          expiresAt: expiresAt.toISOString(),
        },
        { jobId: `verification-code-${user.id}-${expiresAt.getTime()}` },
      ),
    );
    return { expiresAt };
  }

  /**
   * Checks a code; on success the email counts as verified. Wrong codes count as failed attempts on the
   * account (the brute-force limiter), across codes: asking for a new code does not reset them.
   */
  async confirmCode(identity: Identity, code: string, address: string): Promise<UserRow> {
    const attempt = await this.limiter.begin(accountOf('user', identity.userId), address);
    if (!attempt.allowed) throw tooManyAttempts(attempt.retryAfterMs);
    const result = await this.redis.checkCode(
      this.keys.verificationCode(identity.userId),
      sha256(`${identity.userId}:${code}`),
      CODE_ATTEMPTS,
    );
    if (result === CODE_RESULT.NONE || result === CODE_RESULT.USED_UP) {
      throw new AppError('VALIDATION_FAILED', { code: ['has expired or was used up, ask for a new one'] });
    }
    if (result !== CODE_RESULT.RIGHT) throw new AppError('VALIDATION_FAILED', { code: ['is invalid'] });
    await attempt.succeeded();
    return this.db
      .updateTable('users')
      .set({ email_verified_at: new Date() })
      .where('id', '=', identity.userId)
      .returningAll()
      .executeTakeFirstOrThrow();
  }

  /** Starts a password reset; the answer is the same whether or not the email has an account. */
  async requestReset(email: string): Promise<void> {
    const user = await findUserByEmail(this.db, email.trim());
    if (!user) return;
    const token = randomBytes(32).toString('base64url');
    const key = this.keys.passwordReset(sha256(token));
    const expiresAt = new Date(Date.now() + RESET_TTL_MS);
    await this.redis.set(key, user.id, 'PX', RESET_TTL_MS);
    await this.enqueueOrUndo(key, () =>
      this.producer.enqueue(
        'email',
        'password-reset',
        {
          v: 1,
          userId: user.id,
          to: user.email,
          username: user.username,
          token,
          expiresAt: expiresAt.toISOString(),
        },
        { jobId: `password-reset-${sha256(token).slice(0, 24)}` },
      ),
    );
  }

  /**
   * Consumes a reset token (once), sets the new password and ends every session of the account. Unknown
   * tokens count as failed attempts of the client address (the brute-force limiter).
   */
  async confirmReset(token: string, password: string, address: string): Promise<void> {
    if (password.length < MIN_PASSWORD) {
      throw new AppError('VALIDATION_FAILED', {
        password: [`is too short (minimum is ${MIN_PASSWORD} characters)`],
      });
    }
    const attempt = await this.limiter.begin(null, address);
    if (!attempt.allowed) throw tooManyAttempts(attempt.retryAfterMs);
    const userId = await this.redis.getdel(this.keys.passwordReset(sha256(token)));
    if (!userId) throw new AppError('VALIDATION_FAILED', { token: ['is invalid or has expired'] });
    await attempt.succeeded();
    const passwordHash = await hashPassword(password);
    await updateUser(this.db, userId, { password_hash: passwordHash });
    await this.sessions.destroyAll(userId);
  }

  private async enqueueOrUndo(key: string, enqueue: () => Promise<unknown>): Promise<void> {
    try {
      await enqueue();
    } catch (err) {
      await this.redis.del(key).catch(() => undefined);
      throw isRedisUnavailable(err) ? new AppError('QUEUE_UNAVAILABLE') : err;
    }
  }
}
