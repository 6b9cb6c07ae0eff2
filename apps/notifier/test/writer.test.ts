/**
 * The notification writer on a real PostgreSQL: rows that concurrent jobs ask for at once are written in
 * one statement, each job gets its own row, and a second attempt of a job gets the row the first wrote.
 */
import { randomUUID } from 'node:crypto';
import { createDb, type Kysely, migrateDatabase } from '@atoll/db';
import { type TestDatabase, testDatabase } from '@atoll/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NotifierDatabase } from '../src/db.ts';
import { migrations, SCHEMA } from '../src/migrations/index.ts';
import { NotificationWriter } from '../src/notifications/notification.writer.ts';

describe('NotificationWriter', () => {
  let database: TestDatabase;
  let db: Kysely<NotifierDatabase>;
  let statements = 0;

  beforeAll(async () => {
    database = await testDatabase('writer');
    await migrateDatabase(database.url, SCHEMA, migrations);
    db = createDb<NotifierDatabase>({
      url: database.url,
      schema: SCHEMA,
      onQuery: () => {
        statements += 1;
      },
    });
  });
  afterAll(async () => {
    await db.destroy();
    await database.drop();
  });

  const notification = (key: string, recipientId = randomUUID()) => ({
    recipientId,
    type: 'follow' as const,
    payload: { actorUsername: 'ann', actorId: randomUUID(), occurredAt: new Date().toISOString() },
    key,
  });

  it('writes the rows of 50 concurrent jobs in a few statements, each job getting its own row', async () => {
    const writer = new NotificationWriter(db);
    const inputs = Array.from({ length: 50 }, (_, i) => notification(`job-${i}`));
    statements = 0;
    const written = await Promise.all(inputs.map((input) => writer.insertOnce(input)));
    expect(statements).toBeLessThanOrEqual(2);
    expect(written.every((w) => w.created)).toBe(true);
    expect(new Set(written.map((w) => w.row.id)).size).toBe(50);
    for (const [i, w] of written.entries()) expect(w.row.recipient_id).toBe(inputs[i]?.recipientId);
  });

  it('gives a retried job the row its first attempt wrote, and one row for a key asked twice at once', async () => {
    const writer = new NotificationWriter(db);
    const first = await writer.insertOnce(notification('job-retried'));
    const [again, twin1, twin2] = await Promise.all([
      writer.insertOnce(notification('job-retried')),
      writer.insertOnce(notification('job-twin')),
      writer.insertOnce(notification('job-twin')),
    ]);
    expect(again).toMatchObject({ created: false, row: { id: first.row.id } });
    expect(twin1?.row.id).toBe(twin2?.row.id);
    const rows = await db
      .selectFrom('notifications')
      .select('id')
      .where('idempotency_key', 'in', ['job-retried', 'job-twin'])
      .execute();
    expect(rows).toHaveLength(2);
  });

  it('rejects every job of a group whose statement fails, and keeps working after', async () => {
    const writer = new NotificationWriter(db);
    const bad = { ...notification('job-bad'), recipientId: 'not-a-uuid' };
    await expect(writer.insertOnce(bad)).rejects.toThrow();
    expect((await writer.insertOnce(notification('job-after'))).created).toBe(true);
  });
});
