/**
 * Nothing behind the gateway trusts the network (docs/security.md, "Trust behind the gateway: Redis and
 * PostgreSQL"). A process on the machine that knows every address but holds no credential gets nothing
 * from any Redis role or from PostgreSQL; with one service's own credentials it gets only what that
 * service needs: the blast-radius rows of docs/security.md, each tested here by name.
 */
import { createKeys } from '@atoll/redis-keys';
import {
  createDatabase,
  ensureServiceRoles,
  randomPassword,
  rawRedis,
  roleNames,
  SCHEMA_SERVICES,
  type SchemaService,
  type Stack,
} from '@atoll/testkit';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiClient } from './api.ts';
import { aclRefusals, redisOf, startTestStack } from './helpers.ts';

type Role = 'cache' | 'session' | 'queue';
const ROLES: Role[] = ['cache', 'session', 'queue'];
const VAR: Record<Role, string> = {
  cache: 'REDIS_CACHE_URL',
  session: 'REDIS_SESSION_URL',
  queue: 'REDIS_QUEUE_URL',
};
/** The PostgreSQL error codes of a refusal: insufficient privilege, or a failed sign-in. */
const DENIED = /^(42501|28P01|28000)$/;

describe('least privilege behind the gateway', () => {
  let stack: Stack;
  let dispose: () => Promise<void>;
  let keys: ReturnType<typeof createKeys>;
  let sessionKey: string;
  /** One table of each schema, found by the admin. */
  const tableOf = {} as Record<SchemaService, string>;

  beforeAll(async () => {
    ({ stack, dispose } = await startTestStack('least-privilege'));
    keys = createKeys(stack.envOf('gateway').REDIS_KEY_PREFIX);
    const api = apiClient(stack.gatewayUrl);
    const res = await api('POST', '/api/users', {
      body: { user: { username: 'victim', email: 'victim@example.com', password: 'long password' } },
    });
    expect(res.status).toBe(201);
    const admin = await redisOf(stack, 'session');
    [sessionKey] = (await admin.scan('0', 'MATCH', `${keys.prefix}:sess:*`, 'COUNT', 1000))[1] as [string];
    admin.disconnect();
    expect(sessionKey).toBeTruthy();
    const db = new pg.Client({ connectionString: stack.databaseUrl });
    await db.connect();
    for (const schema of SCHEMA_SERVICES) {
      const { rows } = await db.query(
        "select table_name from information_schema.tables where table_schema = $1 and table_name not like 'kysely%' order by 1 limit 1",
        [schema],
      );
      tableOf[schema] = `${schema}.${rows[0].table_name}`;
    }
    await db.end();
  }, 90_000);
  afterAll(async () => {
    // The refusals below are on purpose; the helper's check is for the services'.
    for (const role of ROLES) {
      const admin = await redisOf(stack, role);
      await admin.call('ACL', 'LOG', 'RESET');
      admin.disconnect();
    }
    await dispose();
  });

  /** Runs commands as the service's own Redis user on `role`; each reply's first line. */
  const asService = async (service: string, role: Role, commands: string[][]) => {
    const url = stack.envOf(service as never)[VAR[role]];
    if (!url) throw new Error(`${service} has no ${VAR[role]}`);
    const { username, password } = new URL(url);
    return rawRedis(stack.redis[role].port, [
      ['AUTH', decodeURIComponent(username), decodeURIComponent(password)],
      ...commands,
    ]).then((replies) => {
      expect(replies[0], `${service} signs in to redis-${role}`).toBe('+OK');
      return replies.slice(1);
    });
  };
  const noperm = expect.stringMatching(/^-NOPERM/);
  const ADMIN_COMMANDS = [
    ['FLUSHALL'],
    ['FLUSHDB'],
    ['CONFIG', 'GET', '*'],
    ['CONFIG', 'SET', 'appendonly', 'no'],
    ['KEYS', '*'],
    ['DEBUG', 'SLEEP', '0'],
    ['SHUTDOWN', 'NOSAVE'],
    ['ACL', 'LIST'],
    ['MODULE', 'LIST'],
    ['SCRIPT', 'FLUSH'],
    ['CLIENT', 'LIST'],
    ['MONITOR'],
  ];

  describe('without a credential', () => {
    it('redis-cache, redis-session and redis-queue refuse every command: read a session, FLUSHALL, PUBLISH, enqueue', async () => {
      for (const role of ROLES) {
        const replies = await rawRedis(stack.redis[role].port, [
          ['HGETALL', sessionKey],
          ['FLUSHALL'],
          ['PUBLISH', keys.liveNotifications(), '{}'],
          ['HSET', `${keys.bullPrefix()}:email:forged`, 'name', 'welcome', 'data', '{}'],
          ['XADD', keys.userEvents(), '*', 'type', 'user.registered'],
          ['CONFIG', 'GET', 'requirepass'],
        ]);
        expect(replies, `redis-${role}`).toEqual(replies.map(() => expect.stringMatching(/^-NOAUTH/)));
      }
      // The data is still there.
      const admin = await redisOf(stack, 'session');
      expect(await admin.exists(sessionKey)).toBe(1);
      admin.disconnect();
    });

    it.skipIf(Boolean(process.env.DATABASE_URL))(
      "PostgreSQL refuses every service's role without its password, and the superuser's guess",
      async () => {
        const { hostname, port } = new URL(stack.databaseUrl);
        const database = new URL(stack.databaseUrl).pathname.slice(1);
        const roles = SCHEMA_SERVICES.flatMap((s) => [stack.databases[s].role, stack.databases[s].ownerRole]);
        for (const user of [...roles, 'postgres']) {
          for (const password of ['', 'postgres', 'password', user]) {
            const client = new pg.Client({ host: hostname, port: Number(port), database, user, password });
            const err = await client.connect().then(
              () => client.end().then(() => null),
              (e: { code?: string; message: string }) => e,
            );
            // An empty password is refused by the client itself (SCRAM needs one), the rest by the server.
            const refusal = err?.code ?? (err && /SCRAM/.test(err.message) ? '28P01' : 'signed in');
            expect(refusal, `${user} with ${JSON.stringify(password)}`).toMatch(DENIED);
            await client.end().catch(() => undefined);
          }
        }
      },
    );
  });

  describe("with one service's own Redis user", () => {
    it('no service can FLUSHALL, CONFIG, KEYS, DEBUG, SHUTDOWN, ACL, MODULE, SCRIPT FLUSH, CLIENT LIST or MONITOR anywhere', async () => {
      for (const service of ['gateway', 'auth', 'content', 'notifier'] as const)
        for (const role of ROLES) {
          if (!stack.envOf(service)[VAR[role]]) continue;
          const replies = await asService(service, role, ADMIN_COMMANDS);
          // DEBUG is refused before the ACL is even asked (enable-debug-command no): NOPERM or that.
          expect(replies, `${service} on redis-${role}`).toEqual(
            ADMIN_COMMANDS.map(([name]) =>
              name === 'DEBUG' ? expect.stringMatching(/^-(NOPERM|ERR DEBUG command not allowed)/) : noperm,
            ),
          );
        }
    });

    it("a service holds no user on a role it does not use: another's credentials are wrong there", async () => {
      const pairs: Array<[string, Role, Role]> = [
        ['gateway', 'session', 'queue'],
        ['gateway', 'session', 'cache'],
        ['content', 'cache', 'session'],
        ['auth', 'session', 'cache'],
        ['notifier', 'queue', 'cache'],
      ];
      for (const [service, has, other] of pairs) {
        const { username, password } = new URL(stack.envOf(service as never)[VAR[has]] as string);
        const [reply] = await rawRedis(stack.redis[other].port, [
          ['AUTH', decodeURIComponent(username), decodeURIComponent(password)],
        ]);
        expect(reply, `${service}'s ${has} user on redis-${other}`).toMatch(/^-WRONGPASS/);
      }
    });

    it('the gateway reads and refreshes sessions and counts rates, but cannot touch codes, resets, mail secrets, session indexes, device cookies, or publish', async () => {
      const replies = await asService('gateway', 'session', [
        ['HGET', sessionKey, 'userId'],
        ['INCR', keys.rateLimit('address', '192.0.2.1')],
        ['HGETALL', keys.verificationCode('1')],
        ['GET', keys.passwordReset('x')],
        ['GET', keys.mailSecret('x')],
        ['SMEMBERS', keys.userSessions('1')],
        ['SET', keys.oauthState('x'), '{}'],
        ['ZADD', keys.devices('1'), '1', 'forged'],
        ['INCR', keys.signups('192.0.2.1')],
        ['DEL', keys.passwordChanges('1')],
        ['PUBLISH', keys.liveNotifications(), '{}'],
      ]);
      expect(replies.slice(0, 2)).toEqual([expect.stringMatching(/^\$/), ':1']);
      expect(replies.slice(2)).toEqual(replies.slice(2).map(() => noperm));
    });

    it('content cannot read sessions or enqueue email jobs, and touches only its own queues and the user events', async () => {
      const queue = await asService('content', 'queue', [
        ['HSET', `${keys.bullPrefix()}:email:forged`, 'name', 'welcome'],
        ['HSET', `${keys.bullPrefix()}:security-email:forged`, 'name', 'password-reset'],
        ['LPUSH', `${keys.bullPrefix()}:digests:wait`, 'forged'],
        ['SET', keys.lock('digest'), 'stolen'],
        ['GET', keys.notifyMailCap('recipient', '1')],
        ['EXISTS', `${keys.bullPrefix()}:notifications:meta`],
      ]);
      expect(queue.slice(0, 5)).toEqual(queue.slice(0, 5).map(() => noperm));
      expect(queue[5]).toMatch(/^:/);
      // Sessions live on redis-session, where content has no user at all.
      const { username, password } = new URL(stack.envOf('content').REDIS_CACHE_URL as string);
      const [auth] = await rawRedis(stack.redis.session.port, [['AUTH', username, password]]);
      expect(auth).toMatch(/^-WRONGPASS/);
    });

    it('the notifier cannot read or write sessions, codes or rate limits; it reads mail secrets and publishes live notifications', async () => {
      const replies = await asService('notifier', 'session', [
        ['HGETALL', sessionKey],
        ['HSET', sessionKey, 'roles', '["user","admin"]'],
        ['HSET', keys.session('forged'), 'userId', '1'],
        ['HGETALL', keys.verificationCode('1')],
        ['DEL', keys.rateLimit('address', '192.0.2.1')],
        ['ZRANGE', keys.devices('1'), '0', '-1'],
        ['INCR', keys.signups('192.0.2.1')],
        ['DEL', keys.passwordChanges('1')],
        ['SUBSCRIBE', keys.liveNotifications()],
      ]);
      expect(replies).toEqual(replies.map(() => noperm));
      const allowed = await asService('notifier', 'session', [
        ['GET', keys.mailSecret('x')],
        ['PUBLISH', keys.liveNotifications(), 'not-json'],
      ]);
      expect(allowed).toEqual(['$-1', ':0'].map((r) => (r === ':0' ? expect.stringMatching(/^:\d+$/) : r)));
    });

    it('auth appends user events but cannot read them back, and cannot touch the notifications, rankings or digests queues', async () => {
      const replies = await asService('auth', 'queue', [
        ['XRANGE', keys.userEvents(), '-', '+', 'COUNT', '1'],
        ['HSET', `${keys.bullPrefix()}:notifications:forged`, 'name', 'follow'],
        ['LPUSH', `${keys.bullPrefix()}:rankings:wait`, 'x'],
        ['LPUSH', `${keys.bullPrefix()}:digests:wait`, 'x'],
        ['SET', keys.lock('digest'), 'stolen'],
      ]);
      expect(replies).toEqual(replies.map(() => noperm));
    });

    it('records each refusal, so a service that lacks a permission it needs is seen at once', async () => {
      await asService('content', 'queue', [['GET', keys.lock('x')]]);
      const refused = await aclRefusals(stack);
      expect(refused.some((r) => r.startsWith('queue content: key') && r.includes(keys.lock('x')))).toBe(
        true,
      );
    });
  });

  describe("with one service's own PostgreSQL role", () => {
    const asRole = async <T>(url: string, run: (db: pg.Client) => Promise<T>) => {
      const db = new pg.Client({ connectionString: url });
      await db.connect();
      try {
        return await run(db);
      } finally {
        await db.end();
      }
    };
    const refusal = (db: pg.Client, sql: string) =>
      db.query(sql).then(
        () => 'allowed',
        (e: { code?: string }) => e.code ?? 'unknown',
      );

    it("each service reads its own schema and gets permission denied on every other's (content cannot read auth.users)", async () => {
      for (const service of SCHEMA_SERVICES) {
        await asRole(stack.databases[service].url, async (db) => {
          await db.query(`select * from ${tableOf[service]} limit 1`);
          for (const other of SCHEMA_SERVICES.filter((s) => s !== service)) {
            expect(
              await refusal(db, `select * from ${tableOf[other]} limit 1`),
              `${service} → ${other}`,
            ).toBe('42501');
          }
          if (service !== 'auth')
            expect(await refusal(db, 'select password_hash from auth.users'), service).toBe('42501');
        });
      }
    });

    it('no service role or migration role can COPY TO PROGRAM, CREATE ROLE, create a database or schema, or use public', async () => {
      for (const service of SCHEMA_SERVICES) {
        for (const url of [stack.databases[service].url, stack.databases[service].migrateUrl]) {
          await asRole(url, async (db) => {
            const who = (await db.query('select current_user as u')).rows[0].u as string;
            expect(await refusal(db, "copy (select 1) to program 'true'"), who).toBe('42501');
            expect(await refusal(db, 'create role intruder'), who).toBe('42501');
            expect(await refusal(db, 'create database intruder'), who).toBe('42501');
            expect(await refusal(db, 'create schema intruder'), who).toBe('42501');
            expect(await refusal(db, 'create table public.intruder (id int)'), who).toBe('42501');
            expect(await refusal(db, "select pg_read_file('/etc/passwd')"), who).toBe('42501');
            const { rows } = await db.query(
              'select rolsuper, rolcreaterole, rolcreatedb from pg_roles where rolname = current_user',
            );
            expect(rows[0], who).toEqual({ rolsuper: false, rolcreaterole: false, rolcreatedb: false });
          });
        }
      }
    });

    it("a service's runtime role has data rights only: no DDL in its own schema, no DROP of its tables", async () => {
      for (const service of SCHEMA_SERVICES) {
        await asRole(stack.databases[service].url, async (db) => {
          expect(await refusal(db, `create table ${service}.intruder (id int)`), service).toBe('42501');
          expect(await refusal(db, `drop table ${tableOf[service]}`), service).toBe('42501');
          expect(await refusal(db, `truncate ${tableOf[service]}`), service).toBe('42501');
        });
      }
    });

    it("a stack's roles cannot connect to another stack's database on the same server", async () => {
      const server = new URL(stack.databaseUrl);
      server.pathname = '/postgres';
      const other = await createDatabase(server.toString(), 'other-stack');
      try {
        const otherAdmin = new URL(stack.databaseUrl);
        otherAdmin.pathname = `/${other.name}`;
        const passwords = Object.fromEntries(
          SCHEMA_SERVICES.flatMap((s) => Object.values(roleNames(other.name, s))).map((r) => [
            r,
            randomPassword(),
          ]),
        );
        await ensureServiceRoles(otherAdmin.toString(), passwords);
        const intruder = new URL(stack.databases.content.url);
        intruder.pathname = `/${other.name}`;
        const err = await asRole(intruder.toString(), async () => null).catch((e: { code?: string }) => e);
        expect(err?.code).toBe('42501');
      } finally {
        await other.drop();
      }
    });
  });

  it('keeps the admin client able to do what no service can (the checks above are not vacuous)', async () => {
    const admin = new Redis(stack.redis.queue.url);
    expect(await admin.call('ACL', 'WHOAMI')).toBe('default');
    expect(((await admin.call('CONFIG', 'GET', 'appendonly')) as string[])[1]).toBe('yes');
    admin.disconnect();
  });
});
