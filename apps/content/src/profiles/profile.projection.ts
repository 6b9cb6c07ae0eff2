/**
 * The profiles projection: applies `user.registered` and `user.updated` events to `content.profiles`.
 *
 * Events arrive at least once and not necessarily in order (see StreamConsumer), so every write is an
 * upsert that only lands when the event is at least as new as the row (`updated_at`, taken from the
 * event's `occurredAt`): a replayed or older event changes nothing, whatever the order of arrival.
 *
 * Usernames are unique regardless of case here as in auth. An event can meet a stale row that still
 * holds its username (another account renamed since, its event not applied yet); the write then fails
 * with a unique violation and the event is retried after the consumer's `claimIdleMs`, by which time the
 * other account's event has normally been applied.
 *
 * It answers whether what readers see (username, bio, image) changed, so that cached reads showing the
 * profile are dropped only then: an account's registration event usually finds the row its first
 * article or follow already wrote with the same values, and invalidating there would throw away every
 * cached read of that article for nothing.
 */
import type { EventVersions, StreamEvent } from '@atoll/events';
import type { Kysely } from 'kysely';
import type { ProfilesDatabase } from './profile.table.ts';

/** What every version of both events carries: user.updated v1 is exactly the public profile. */
type PublicProfile = EventVersions['user.updated'][1];

export async function applyUserEvent(
  db: Kysely<ProfilesDatabase>,
  event: Pick<StreamEvent, 'type' | 'version' | 'payload'>,
): Promise<{ changed: boolean }> {
  const profile = publicProfile(event);
  return db.transaction().execute(async (trx) => {
    // Locked, so that no other event lands between this read and the write below.
    const before = await trx
      .selectFrom('profiles')
      .select(['username', 'bio', 'image'])
      .where('user_id', '=', profile.userId)
      .forUpdate()
      .executeTakeFirst();
    const written = await trx
      .insertInto('profiles')
      .values({
        user_id: profile.userId,
        username: profile.username,
        bio: profile.bio,
        image: profile.image,
        updated_at: new Date(profile.occurredAt),
      })
      .onConflict((oc) =>
        oc
          .column('user_id')
          .doUpdateSet((eb) => ({
            username: eb.ref('excluded.username'),
            bio: eb.ref('excluded.bio'),
            image: eb.ref('excluded.image'),
            updated_at: eb.ref('excluded.updated_at'),
          }))
          .where((eb) => eb('profiles.updated_at', '<=', eb.ref('excluded.updated_at'))),
      )
      .returning(['username', 'bio', 'image'])
      .executeTakeFirst();
    if (!written) return { changed: false }; // an older event than the row: nothing written
    const changed =
      !before ||
      before.username !== written.username ||
      before.bio !== written.bio ||
      before.image !== written.image;
    return { changed };
  });
}

/**
 * The public profile an event carries. The consumer has checked the payload against the schema of its
 * type and version; a new version (decodeEvent accepts the current and the previous one) is mapped here.
 */
function publicProfile(event: Pick<StreamEvent, 'type' | 'version' | 'payload'>): PublicProfile {
  switch (event.type) {
    case 'user.registered':
    case 'user.updated': {
      if (event.version !== 1 && event.version !== 2)
        throw new Error(`${event.type} v${event.version} is not mapped to a profile`);
      // v1 and v2 of both carry the public profile (and the email and its verification, which content
      // ignores).
      const { userId, username, bio, image, occurredAt } = event.payload as PublicProfile;
      return { userId, username, bio, image, occurredAt };
    }
    default: {
      const unknown: never = event.type;
      throw new Error(`${String(unknown)} is not a profile event`);
    }
  }
}
