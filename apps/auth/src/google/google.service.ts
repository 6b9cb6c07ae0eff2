/**
 * Google sign-in, OpenID Connect authorization code flow with PKCE (S256), `state` and `nonce`.
 *
 * Start: a random state, PKCE verifier, nonce and browser binding. The state's record (verifier, nonce,
 * return path, hash of the binding) goes to redis-session under the hash of the state for 10 minutes;
 * the binding goes to the browser as an HttpOnly cookie; the browser goes to the provider.
 * Callback: the record is taken with GETDEL (single use); the browser must present the same binding
 * (a state started in another browser is refused); the code is exchanged with the verifier and the ID
 * token is checked (iss, aud, exp and nonce by openid-client; its signature against the provider's JWKS
 * with jose).
 * The account is found by Google subject, else linked by a verified email, else created.
 * Linking to an account whose email was never verified: Google has just proved who owns the address,
 * and the account's password may have been set by someone else who registered the address first
 * (pre-account takeover). The link therefore clears the password, marks the email verified and ends
 * every session of the account; its owner can set a password again with a reset.
 *
 * Why openid-client rather than @fastify/oauth2: the latter keeps the PKCE verifier in a cookie and
 * does not validate ID tokens (it is OAuth 2, not OIDC); the design wants the verifier in Redis with
 * the state, and the ID token checked. openid-client does discovery, PKCE and ID token validation.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { RedisClient } from '@atoll/redis';
import { KEY_SPECS, type Keys } from '@atoll/redis-keys';
import { AppError, errorChain, NEVER_CONNECTED } from '@atoll/service-kit';
import type { SessionStore } from '@atoll/session-store';
import { createRemoteJWKSet, customFetch as jwksFetch, jwtVerify } from 'jose';
import type { Kysely } from 'kysely';
import { sql } from 'kysely';
import * as oidc from 'openid-client';
import type { AuthDatabase } from '../db.ts';
import { recordEvent, type UserEventRelay } from '../outbox/outbox.ts';
import { newSecurityStamp, type UserRow } from '../users/user.repository.ts';
import { accountEvent, publicProfile } from '../users/user.service.ts';

export const STATE_TTL_MS = KEY_SPECS.oauthState.ttlMs;

export interface GoogleSettings {
  issuer: string;
  clientId: string;
  clientSecret: string;
  /** The public callback URL registered with the provider (through the gateway). */
  redirectUrl: string;
}

interface StateRecord {
  verifier: string;
  nonce: string;
  returnTo: string;
  binding: string;
}

const sha256 = (value: string) => createHash('sha256').update(value).digest('hex');

/** How long to wait before the one repeat of a request that never reached the provider. */
export const PROVIDER_RETRY_DELAY_MS = 500;

const codeOf = (e: unknown) => (e as { code?: unknown }).code;

/** Whether fetching from the provider failed for want of the provider (unreachable, timed out). */
export function isProviderUnreachable(err: unknown): boolean {
  return errorChain(err).some((e) => {
    const code = codeOf(e);
    const name = (e as { name?: unknown }).name;
    return (
      (typeof code === 'string' && (NEVER_CONNECTED.has(code) || code === 'ERR_JWKS_TIMEOUT')) ||
      name === 'TimeoutError' ||
      (e instanceof TypeError && e.message === 'fetch failed')
    );
  });
}

/**
 * fetch for every request to the provider: a request that never reached it (its name did not resolve for
 * a moment, the connection was refused) is sent once more after a short wait. Sending it again cannot do
 * anything twice: an authorization code is spent only by a request that arrived.
 */
const providerFetch: typeof fetch = async (input, init) => {
  try {
    return await fetch(input, init);
  } catch (err) {
    if (!errorChain(err).some((e) => NEVER_CONNECTED.has(String(codeOf(e))))) throw err;
    await new Promise((resolve) => setTimeout(resolve, PROVIDER_RETRY_DELAY_MS));
    return fetch(input, init);
  }
};

export class GoogleSignIn {
  private readonly settings: GoogleSettings;
  private readonly db: Kysely<AuthDatabase>;
  private readonly redis: RedisClient;
  private readonly keys: Keys;
  private readonly relay: UserEventRelay;
  private readonly sessions: SessionStore;
  private config: Promise<oidc.Configuration> | undefined;

  constructor(deps: {
    settings: GoogleSettings;
    db: Kysely<AuthDatabase>;
    redis: RedisClient;
    keys: Keys;
    relay: UserEventRelay;
    sessions: SessionStore;
  }) {
    this.settings = deps.settings;
    this.db = deps.db;
    this.redis = deps.redis;
    this.keys = deps.keys;
    this.relay = deps.relay;
    this.sessions = deps.sessions;
  }

  /** The provider's metadata, discovered on first use and kept; a failed discovery is retried next time. */
  private provider(): Promise<oidc.Configuration> {
    this.config ??= oidc
      .discovery(
        new URL(this.settings.issuer),
        this.settings.clientId,
        this.settings.clientSecret,
        undefined,
        {
          // Plain HTTP only for a provider on loopback (the local stack and the tests).
          ...(this.settings.issuer.startsWith('http://') ? { execute: [oidc.allowInsecureRequests] } : {}),
          // Kept by the configuration: the token exchange goes through it too.
          [oidc.customFetch]: providerFetch,
        },
      )
      .catch((err: unknown) => {
        this.config = undefined;
        throw new AppError('OAUTH_PROVIDER_UNAVAILABLE', undefined, {}, err);
      });
    return this.config;
  }

  private jwks: ReturnType<typeof createRemoteJWKSet> | undefined;

  /** The provider's signing keys (JWKS), fetched when first needed and refreshed by jose on a new kid. */
  private keySet(config: oidc.Configuration): ReturnType<typeof createRemoteJWKSet> {
    const uri = config.serverMetadata().jwks_uri;
    if (!uri) throw new Error('the provider publishes no jwks_uri');
    this.jwks ??= createRemoteJWKSet(new URL(uri), { [jwksFetch]: providerFetch });
    return this.jwks;
  }

  /** Starts a sign-in: returns where to send the browser and the binding to set as its cookie. */
  async start(returnTo: string): Promise<{ location: string; binding: string }> {
    const config = await this.provider();
    const state = oidc.randomState();
    const verifier = oidc.randomPKCECodeVerifier();
    const nonce = oidc.randomNonce();
    const binding = randomBytes(32).toString('base64url');
    const record: StateRecord = { verifier, nonce, returnTo, binding: sha256(binding) };
    await this.redis.set(this.keys.oauthState(sha256(state)), JSON.stringify(record), 'PX', STATE_TTL_MS);
    const location = oidc.buildAuthorizationUrl(config, {
      redirect_uri: this.settings.redirectUrl,
      scope: 'openid email profile',
      response_type: 'code',
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state,
      nonce,
    });
    return { location: location.href, binding };
  }

  /** Finishes a sign-in from the callback's query; returns the account and where to send the browser. */
  async finish(
    query: Record<string, string>,
    binding: string | null,
  ): Promise<{ user: UserRow; returnTo: string }> {
    const state = query.state;
    if (!state) throw new AppError('OAUTH_STATE_INVALID');
    // Single use: whatever happens next, this state cannot be presented again.
    const raw = await this.redis.getdel(this.keys.oauthState(sha256(state)));
    if (!raw) throw new AppError('OAUTH_STATE_INVALID');
    const record = JSON.parse(raw) as StateRecord;
    if (!binding || sha256(binding) !== record.binding) {
      throw new AppError('OAUTH_STATE_INVALID', { state: ['was started in another browser, start again'] });
    }
    if (query.error) throw new AppError('OAUTH_PROVIDER_ERROR', { google: [`refused: ${query.error}`] });
    const config = await this.provider();
    const callbackUrl = new URL(this.settings.redirectUrl);
    for (const [name, value] of Object.entries(query)) callbackUrl.searchParams.set(name, value);
    let claims: oidc.IDToken;
    try {
      const tokens = await oidc.authorizationCodeGrant(config, callbackUrl, {
        pkceCodeVerifier: record.verifier,
        expectedState: state,
        expectedNonce: record.nonce,
        idTokenExpected: true,
      });
      const idClaims = tokens.claims();
      if (!idClaims || !tokens.id_token) throw new Error('no ID token');
      // openid-client (like the spec allows over TLS) trusts an ID token from the token endpoint without
      // checking its signature; atoll checks it against the provider's keys all the same.
      await jwtVerify(tokens.id_token, this.keySet(config), {
        issuer: config.serverMetadata().issuer,
        audience: this.settings.clientId,
      });
      claims = idClaims;
    } catch (err) {
      // The provider could not be reached (503, start again shortly), or it answered what cannot be trusted.
      if (isProviderUnreachable(err)) throw new AppError('OAUTH_PROVIDER_UNAVAILABLE', undefined, {}, err);
      throw new AppError('OAUTH_PROVIDER_ERROR', undefined, {}, err);
    }
    const user = await this.accountFor(claims);
    return { user, returnTo: record.returnTo };
  }

  /** By Google subject; else the account with the same, verified, email; else a new account. */
  private async accountFor(claims: oidc.IDToken): Promise<UserRow> {
    const subject = claims.sub;
    const email = typeof claims.email === 'string' ? claims.email : null;
    const verified = claims.email_verified === true;
    const bySubject = await this.db
      .selectFrom('users')
      .selectAll()
      .where('google_subject', '=', subject)
      .executeTakeFirst();
    if (bySubject) return bySubject;
    if (!email) throw new AppError('OAUTH_PROVIDER_ERROR', { google: ['did not share an email address'] });
    const byEmail = await this.db
      .selectFrom('users')
      .selectAll()
      .where(sql<string>`lower(email)`, '=', sql<string>`lower(${email})`)
      .executeTakeFirst();
    if (byEmail) {
      if (!verified) {
        throw new AppError('CONFLICT', {
          email: ['belongs to an account; Google has not verified it, sign in with your password instead'],
        });
      }
      if (byEmail.email_verified_at) {
        return this.db
          .updateTable('users')
          .set({ google_subject: subject, updated_at: new Date() })
          .where('id', '=', byEmail.id)
          .returningAll()
          .executeTakeFirstOrThrow();
      }
      // Nobody had proved this address before: whatever password and sessions the account has may be
      // someone else's. Only the row as it was read is taken over (a concurrent verification or change
      // makes this sign-in fail rather than undo it). The sessions end before the change commits, so a
      // Redis failure leaves the account as it was (and the next sign-in tries again), and once more
      // after, for a session a password login may have started while the row was locked.
      const linked = await this.db.transaction().execute(async (trx) => {
        const row = await trx
          .updateTable('users')
          .set({
            google_subject: subject,
            email_verified_at: new Date(),
            password_hash: null,
            security_stamp: newSecurityStamp(),
            updated_at: new Date(),
          })
          .where('id', '=', byEmail.id)
          .where('email_verified_at', 'is', null)
          .where('email', '=', byEmail.email)
          .returningAll()
          .executeTakeFirst();
        if (!row) throw new AppError('CONFLICT', { email: ['changed during the sign-in, try again'] });
        // The address is verified now: the notifier hears of it (user.updated v2).
        await recordEvent(trx, 'user.updated', accountEvent(row));
        await this.sessions.destroyAll(row.id);
        return row;
      });
      this.relay.kick();
      await this.sessions.destroyAll(linked.id);
      return linked;
    }
    const created = await this.db.transaction().execute(async (trx) => {
      const username = await this.freeUsername(trx, claims, email);
      const row = await trx
        .insertInto('users')
        .values({
          username,
          email,
          password_hash: null,
          google_subject: subject,
          email_verified_at: verified ? new Date() : null,
        })
        .returningAll()
        .executeTakeFirstOrThrow();
      await recordEvent(trx, 'user.registered', {
        ...publicProfile(row),
        email: row.email,
        emailVerified: row.email_verified_at !== null,
        occurredAt: row.created_at.toISOString(),
      });
      return row;
    });
    this.relay.kick();
    return created;
  }

  /** A username from the name or the email's local part, made unique with a number if needed. */
  private async freeUsername(db: Kysely<AuthDatabase>, claims: oidc.IDToken, email: string): Promise<string> {
    const fromName = typeof claims.name === 'string' ? claims.name : '';
    const base =
      (fromName || email.split('@')[0] || 'user')
        .replace(/[^A-Za-z0-9_.-]+/g, '')
        .slice(0, 48)
        .toLowerCase() || 'user';
    for (let i = 0; i < 50; i += 1) {
      const candidate = i === 0 ? base : `${base}${i + 1}`;
      const taken = await db
        .selectFrom('users')
        .select('id')
        .where(sql<string>`lower(username)`, '=', sql<string>`lower(${candidate})`)
        .executeTakeFirst();
      if (!taken) return candidate;
    }
    return `${base}${randomBytes(4).toString('hex')}`;
  }
}
