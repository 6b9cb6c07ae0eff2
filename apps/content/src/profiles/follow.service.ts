/**
 * Follows: follow and unfollow a profile. The follow row and its notification job are written in one
 * transaction; the follower's `following` flags change after the commit (writes/after-commit.ts).
 */
import type { Identity } from '@atoll/identity';
import { AppError } from '@atoll/service-kit';
import type { Kysely } from 'kysely';
import type { ContentDatabase } from '../db.ts';
import { recordNotification } from '../notifications/notifications.ts';
import type { AfterCommit } from '../writes/after-commit.ts';
import type { PublicProfile } from './profile.directory.ts';
import { ensureProfile, follow, unfollow } from './profile.repository.ts';

export interface FollowServiceDeps {
  db: Kysely<ContentDatabase>;
  afterCommit: AfterCommit;
}

export class FollowService {
  private readonly deps: FollowServiceDeps;

  constructor(deps: FollowServiceDeps) {
    this.deps = deps;
  }

  /** The viewer follows `profile` (again: nothing changes); following yourself is a 422. */
  async follow(viewer: Identity, profile: PublicProfile): Promise<void> {
    if (profile.userId === viewer.userId)
      throw new AppError('VALIDATION_FAILED', { profile: ['cannot follow yourself'] });
    const added = await this.deps.db.transaction().execute(async (trx) => {
      await ensureProfile(trx, viewer.userId, viewer.username);
      if (!(await follow(trx, viewer.userId, profile.userId))) return false;
      return recordNotification(trx, 'follow', {
        v: 1,
        actorId: viewer.userId,
        actorUsername: viewer.username,
        recipientId: profile.userId,
        occurredAt: new Date().toISOString(),
      });
    });
    // A new follow always writes its job (you cannot follow yourself).
    await this.deps.afterCommit.followChanged(viewer.userId, added, added);
  }

  /** The viewer no longer follows `profile` (if they did). */
  async unfollow(viewer: Identity, profile: PublicProfile): Promise<void> {
    await unfollow(this.deps.db, viewer.userId, profile.userId);
    // Applied whether or not a row went: the flag is then right even if the key was ahead of the table.
    await this.deps.afterCommit.followChanged(viewer.userId, true, false);
  }
}
