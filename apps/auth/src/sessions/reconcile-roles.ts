/**
 * Roles go stale: a session keeps the roles it was given, so an address taken out of ADMIN_EMAILS would
 * keep `admin` in every live session until they end. At start-up (the only time the rules change: they
 * are configuration), auth recomputes the roles of every user the session store lists as holding an
 * `admin` session and rewrites them in all their live sessions; users that are no longer admins leave
 * the list, accounts that are gone or disabled lose their sessions.
 */
import type { SessionStore } from '@atoll/session-store';
import type { Kysely } from 'kysely';
import type { AuthDatabase } from '../db.ts';
import { findUserById, type UserRow } from '../users/user.repository.ts';

/** The roles whose holders the session store indexes (`SessionLimits.trackedRoles`). */
export const TRACKED_ROLES = ['admin'] as const;

export async function reconcileRoles(deps: {
  db: Kysely<AuthDatabase>;
  sessions: SessionStore;
  rolesOf: (user: UserRow) => string[];
}): Promise<{ checked: number; demoted: number }> {
  const { db, sessions, rolesOf } = deps;
  let checked = 0;
  let demoted = 0;
  for (const role of TRACKED_ROLES) {
    for (const userId of await sessions.roleHolders(role)) {
      checked += 1;
      const user = await findUserById(db, userId);
      if (!user || user.disabled_at) {
        await sessions.forgetRoleHolder(role, userId);
        await sessions.destroyAll(userId);
        demoted += 1;
        continue;
      }
      const roles = rolesOf(user);
      // Forgotten first: a sign-in that gives the role again meanwhile puts the user back.
      if (!roles.includes(role)) {
        await sessions.forgetRoleHolder(role, userId);
        demoted += 1;
      }
      await sessions.updateIdentity(userId, { username: user.username, roles });
    }
  }
  return { checked, demoted };
}
