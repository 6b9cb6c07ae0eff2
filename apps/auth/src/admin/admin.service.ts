/**
 * What an admin can do to another account: end all its sessions, disable it (its sessions end and no
 * sign-in of any kind works until it is enabled again), enable it.
 */
import { AppError } from '@atoll/service-kit';
import type { SessionStore } from '@atoll/session-store';
import { type Kysely, sql } from 'kysely';
import type { AuthDatabase } from '../db.ts';
import type { UserRow } from '../users/user.repository.ts';

export class AdminService {
  private readonly db: Kysely<AuthDatabase>;
  private readonly sessions: SessionStore;

  constructor(deps: { db: Kysely<AuthDatabase>; sessions: SessionStore }) {
    this.db = deps.db;
    this.sessions = deps.sessions;
  }

  private async byUsername(username: string): Promise<UserRow> {
    const user = await this.db
      .selectFrom('users')
      .selectAll()
      .where(sql<string>`lower(username)`, '=', sql<string>`lower(${username})`)
      .executeTakeFirst();
    if (!user) throw new AppError('NOT_FOUND', { username: ['not found'] });
    return user;
  }

  /** Ends every session of the account; returns how many were live. */
  async endSessions(username: string): Promise<number> {
    const user = await this.byUsername(username);
    return this.sessions.destroyAll(user.id);
  }

  /**
   * Disables the account (keeping the first time it was disabled) and then ends its sessions: a sign-in
   * racing this checks the flag again after creating its session (UserService.startSession).
   */
  async disable(adminUserId: string, username: string): Promise<UserRow> {
    const user = await this.byUsername(username);
    if (user.id === adminUserId) {
      throw new AppError('VALIDATION_FAILED', { username: ['is your own account'] });
    }
    const row = await this.db
      .updateTable('users')
      .set({ disabled_at: sql<Date>`coalesce(disabled_at, now())` })
      .where('id', '=', user.id)
      .returningAll()
      .executeTakeFirstOrThrow();
    await this.sessions.destroyAll(user.id);
    return row;
  }

  async enable(username: string): Promise<UserRow> {
    const user = await this.byUsername(username);
    return this.db
      .updateTable('users')
      .set({ disabled_at: null })
      .where('id', '=', user.id)
      .returningAll()
      .executeTakeFirstOrThrow();
  }
}
