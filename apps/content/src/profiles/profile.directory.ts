/**
 * Public profiles by username, for profile pages, follows, and the `author`/`favorited` filters.
 *
 * The profiles projection (the user.* events) is the normal source. An event can lag behind a
 * registration, so when the projection has no such name, content asks auth once
 * (`GET /internal/profiles/:username`), writes the answer into the projection (as of auth's
 * `updated_at`, so the event, when it arrives, still applies if newer) and caches it like any profile.
 * "Nobody has that name" is cached too, until a user takes the name (tag `list:name:<name>`).
 * Auth serves that route only to `Authorization: Bearer <AUTH_INTERNAL_TOKEN>` (its INTERNAL_TOKEN).
 * With auth unreachable, or no token configured, a name the projection does not know answers 503, not
 * a false 404.
 */
import type { LayeredCache } from '@atoll/cache';
import { cacheIds, cacheTags } from '@atoll/redis-keys';
import { AppError } from '@atoll/service-kit';
import type { Kysely } from 'kysely';
import type { ContentDatabase } from '../db.ts';
import { applyUserEvent } from './profile.projection.ts';
import { findProfileByUsername } from './profile.repository.ts';

/** The cache id of the profile that has (or would have) this username. */

export interface PublicProfile {
  userId: string;
  username: string;
  bio: string | null;
  image: string | null;
}

export interface ProfileDirectoryOptions {
  db: Kysely<ContentDatabase>;
  cache: LayeredCache | null;
  authUrl: string;
  /** The bearer token auth's internal route asks for; null: auth is not asked (as if unreachable). */
  authToken: string | null;
  log: { warn(obj: object, msg?: string): void };
}

export class ProfileDirectory {
  private readonly opts: ProfileDirectoryOptions;

  constructor(opts: ProfileDirectoryOptions) {
    this.opts = opts;
  }

  /** The profile, or null when nobody has this username. */
  async find(username: string): Promise<PublicProfile | null> {
    const { cache } = this.opts;
    const load = () => this.load(username);
    if (!cache) return load();
    return cache.get(cacheIds.profile(username), load, (p) =>
      p ? [cacheTags.profile(p.userId)] : [cacheTags.listName(username)],
    );
  }

  /** The profile, or 404 `profile: not found`. */
  async get(username: string): Promise<PublicProfile> {
    const profile = await this.find(username);
    if (!profile) throw new AppError('NOT_FOUND', { profile: ['not found'] });
    return profile;
  }

  private async load(username: string): Promise<PublicProfile | null> {
    const row = await findProfileByUsername(this.opts.db, username);
    if (row) return { userId: row.user_id, username: row.username, bio: row.bio, image: row.image };
    return this.askAuth(username);
  }

  private async askAuth(username: string): Promise<PublicProfile | null> {
    const { authToken } = this.opts;
    if (!authToken) {
      this.opts.log.warn(
        { username },
        'AUTH_INTERNAL_TOKEN unset: cannot look up a profile not yet projected',
      );
      throw new AppError('SERVICE_UNAVAILABLE', { auth: ['is unavailable, try again shortly'] });
    }
    let response: Response;
    try {
      response = await fetch(`${this.opts.authUrl}/internal/profiles/${encodeURIComponent(username)}`, {
        headers: { authorization: `Bearer ${authToken}` },
        signal: AbortSignal.timeout(2000),
      });
    } catch (err) {
      this.opts.log.warn({ err, username }, 'auth unreachable: cannot look up a profile not yet projected');
      throw new AppError('SERVICE_UNAVAILABLE', { auth: ['is unavailable, try again shortly'] });
    }
    if (response.status === 404) return null;
    if (response.status === 401)
      this.opts.log.warn(
        { username },
        "auth refused AUTH_INTERNAL_TOKEN: is it the same as auth's INTERNAL_TOKEN?",
      );
    if (!response.ok)
      throw new AppError('SERVICE_UNAVAILABLE', { auth: ['is unavailable, try again shortly'] });
    const { profile } = (await response.json()) as { profile: PublicProfile & { updatedAt: string } };
    await applyUserEvent(this.opts.db, {
      type: 'user.updated',
      version: 1,
      payload: {
        userId: profile.userId,
        username: profile.username,
        bio: profile.bio,
        image: profile.image,
        occurredAt: profile.updatedAt,
      },
    });
    return { userId: profile.userId, username: profile.username, bio: profile.bio, image: profile.image };
  }
}
