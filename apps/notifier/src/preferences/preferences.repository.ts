/**
 * Per user: how each notification type is mailed (`instant`, in the `digest`, or `off`) and how often
 * the digest comes (`daily`, `weekly` or `off`). Users who never chose get the defaults: comments and
 * mentions at once, follows and favorites in a daily digest.
 */
import type { Kysely } from 'kysely';
import type { DigestChoice, EmailChoice, NotificationType, NotifierDatabase } from '../db.ts';

export interface Preferences {
  email: Record<NotificationType, EmailChoice>;
  digest: DigestChoice;
}

export const DEFAULT_PREFERENCES: Preferences = {
  email: { follow: 'digest', favorite: 'digest', comment: 'instant', mention: 'instant' },
  digest: 'daily',
};

export async function getPreferences(db: Kysely<NotifierDatabase>, userId: string): Promise<Preferences> {
  const row = await db
    .selectFrom('preferences')
    .select(['email', 'digest'])
    .where('user_id', '=', userId)
    .executeTakeFirst();
  return row
    ? { email: { ...DEFAULT_PREFERENCES.email, ...row.email }, digest: row.digest }
    : DEFAULT_PREFERENCES;
}

export async function savePreferences(
  db: Kysely<NotifierDatabase>,
  userId: string,
  prefs: Preferences,
): Promise<void> {
  await db
    .insertInto('preferences')
    .values({ user_id: userId, email: JSON.stringify(prefs.email), digest: prefs.digest })
    .onConflict((oc) =>
      oc
        .column('user_id')
        .doUpdateSet({ email: JSON.stringify(prefs.email), digest: prefs.digest, updated_at: new Date() }),
    )
    .execute();
}
