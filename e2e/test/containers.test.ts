/**
 * `docker compose up --build` for real, as a user runs it (`npm run compose -- up --build`), under Podman
 * with Debian's docker-compose where there is no Docker engine: the compose file users run, with no
 * override; only the public base images are local stand-ins where no registry is reachable
 * (deploy/standins/build, cached by content hash). Every image is built from this checkout, each service
 * on its own (a pruned build). Against the containerized gateway: the RealWorld client flow, a
 * notification email in the dev inbox, Google sign-in through the dev OpenID provider, /metrics with its
 * token; writes that need new PostgreSQL connections while Podman's DNS server answers nothing (the
 * stack's containers reach each other by fixed addresses); then restarts of redis-session, redis-queue
 * and PostgreSQL keep sessions, queued jobs and rows; SIGTERM to content with writes in flight (held by
 * a table lock) lets them finish; `down -v` leaves nothing behind.
 *
 * The project gets its own name, free ports and its own BACKEND_NET, so it never meets a stack the
 * developer runs.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, repoRoot } from '@atoll/testkit';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { apiClient } from './api.ts';
import { eventually } from './helpers.ts';
import { BACKEND_ADDRESSES, freeBackendNet, must, podmanSkipReason, run } from './podman.ts';

const skipReason = podmanSkipReason();
if (skipReason) console.warn(`containers.test.ts skipped: ${skipReason}`);

const project = `atollct${process.pid}`;
const envFile = join(repoRoot, '.atoll/compose/dev.env');
const CODE_SUBJECT = 'Your atoll verification code: ';

interface Ports {
  gateway: number;
  mail: number;
  oidc: number;
}

function readEnv(file: string): Record<string, string> {
  const text = spawnSync('cat', [file], { encoding: 'utf8' }).stdout;
  return Object.fromEntries(
    text
      .split('\n')
      .filter((l) => l.includes('='))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
}

describe.skipIf(skipReason !== '')('docker compose up --build, under Podman', () => {
  let ports: Ports;
  let env: NodeJS.ProcessEnv;
  let gateway: string;
  let inbox: string;
  const api = (method: string, path: string, opts?: Parameters<ReturnType<typeof apiClient>>[2]) =>
    apiClient(gateway)(method, path, opts);
  const compose = (args: string[], timeoutMs?: number) =>
    must(
      run('docker-compose', ['--env-file', envFile, '-p', project, ...args], env, timeoutMs),
      `compose ${args.join(' ')}`,
    );
  const container = (service: string) => `${project}_${service}_1`;
  const podman = (args: string[]) => must(run('podman', args, env), `podman ${args.join(' ')}`);
  /** `podman exec` arguments for psql in the PostgreSQL container, as its superuser (`-i`: over stdin). */
  const psqlArgs = (stdin: boolean) => [
    'exec',
    ...(stdin ? ['-i'] : []),
    '-e',
    `PGPASSWORD=${readEnv(envFile).POSTGRES_PASSWORD}`,
    container('postgres'),
    'psql',
    '-h',
    '127.0.0.1',
    '-U',
    'atoll',
    '-d',
    'atoll',
    '-qtA',
  ];
  const figures: string[] = [];

  const messages = async (): Promise<{ to: string[]; subject: string }[]> => {
    const res = await fetch(`${inbox}/api/messages`).catch(() => null);
    return res?.ok ? ((await res.json()) as { to: string[]; subject: string }[]) : [];
  };
  const codeFor = async (email: string, after = 0): Promise<string | undefined> => {
    const codes = (await messages()).filter(
      (m) => m.to.includes(email) && m.subject.startsWith(CODE_SUBJECT),
    );
    return codes.length > after ? codes.at(-1)?.subject.slice(CODE_SUBJECT.length) : undefined;
  };
  const codesFor = async (email: string) =>
    (await messages()).filter((m) => m.to.includes(email) && m.subject.startsWith(CODE_SUBJECT)).length;
  const healthy = (service: string) =>
    eventually(async () => {
      const r = run('podman', ['inspect', '--format', '{{.State.Health.Status}}', container(service)], env);
      return r.stdout.trim() === 'healthy';
    }, 120_000);
  const gatewayReady = () =>
    eventually(async () => (await fetch(`${gateway}/health/ready`).catch(() => null))?.ok === true, 120_000);

  beforeAll(async () => {
    // Below the ephemeral range (freePort): nothing else takes them during compose's minutes of builds.
    ports = {
      gateway: await freePort(),
      mail: await freePort(),
      oidc: await freePort(),
    };
    gateway = `http://127.0.0.1:${ports.gateway}`;
    inbox = `http://127.0.0.1:${ports.mail}`;
    const base = { ...process.env };
    delete base.DOCKER_HOST;
    // Stand-ins for node, postgres and redis (seconds when cached, about 3 min cold).
    let started = Date.now();
    must(run('bash', ['deploy/standins/build'], base, 600_000), 'deploy/standins/build');
    figures.push(`stand-ins ${((Date.now() - started) / 1000).toFixed(0)} s`);
    env = {
      ...base,
      // Its own /24 on the backend network, where the data stores and services have fixed addresses.
      BACKEND_NET: freeBackendNet(),
      GATEWAY_PUBLISH: `127.0.0.1:${ports.gateway}`,
      MAIL_UI_PORT: String(ports.mail),
      OIDC_PORT: String(ports.oidc),
    };
    // The README's command, with this test's project name.
    started = Date.now();
    const up = run(
      'bash',
      ['scripts/atoll', 'compose', '-p', project, 'up', '--build', '-d'],
      env,
      1_500_000,
    );
    env.DOCKER_HOST = must(run('bash', ['scripts/podman-engine'], base), 'podman-engine').trim();
    if (up.status !== 0) {
      const logs = run('docker-compose', ['--env-file', envFile, '-p', project, 'logs', '--tail', '40'], env);
      throw new Error(`compose up failed:\n${up.stderr.slice(-4000)}\n${logs.stdout.slice(-8000)}`);
    }
    if (!(await gatewayReady()))
      throw new Error(`the gateway never became ready:\n${compose(['logs', '--tail', '40'])}`);
    // Warm: on a loaded machine a new container's first PostgreSQL connections (a backend forked, SCRAM)
    // can take seconds, and a client would see a 503 to try again. The flow starts once four writes
    // through content at once have worked, so that content's pool holds several connections: the flow's
    // writes run beside the profile projection's transactions.
    const warm = await api('POST', '/api/users', {
      body: {
        user: {
          username: `warm${process.pid}`,
          email: `warm-${process.pid}@example.com`,
          password: 'a long enough password',
        },
      },
    });
    const warmed = await eventually(
      async () =>
        (
          await Promise.all(
            [1, 2, 3, 4].map((n) =>
              api('POST', '/api/articles', {
                token: warm.body?.user?.token,
                body: { article: { title: `Warm ${process.pid} ${n}`, description: 'd', body: 'b' } },
              }),
            ),
          )
        ).every((created) => created.status === 201),
      120_000,
    );
    if (!warmed) throw new Error(`no write through content worked:\n${compose(['logs', '--tail', '40'])}`);
    figures.push(`up --build ${((Date.now() - started) / 1000).toFixed(0)} s`);
    for (const image of ['gateway', 'auth', 'content', 'notifier', 'dev-tools']) {
      const size = Number(podman(['image', 'inspect', '--format', '{{.Size}}', `atoll/${image}:dev`]).trim());
      figures.push(`atoll/${image} ${(size / 1e6).toFixed(0)} MB`);
    }
  }, 1_800_000);

  /** aardvark-dns processes a test stopped: resumed whatever happens (SIGCONT to a running one is a no-op). */
  const stoppedDns: number[] = [];
  const resumeDns = () => {
    for (const pid of stoppedDns.splice(0)) {
      try {
        process.kill(pid, 'SIGCONT');
      } catch {
        // Gone already: nothing to resume.
      }
    }
  };

  afterAll(() => {
    resumeDns();
    if (!env) return;
    console.log(`containers: ${figures.join(', ')}`);
    if (existsSync(envFile))
      run('docker-compose', ['--env-file', envFile, '-p', project, 'down', '-v', '-t', '20'], env);
  }, 180_000);

  let token = '';
  let slug = '';

  // On a failure, what the services said.
  afterEach((context) => {
    if (context.task.result?.state === 'fail' && env?.DOCKER_HOST) {
      console.log(
        run(
          'docker-compose',
          ['--env-file', envFile, '-p', project, 'logs', '--no-color', '--tail', '30'],
          env,
        ).stdout,
      );
    }
  });

  it('serves the RealWorld client flow through the containerized gateway', async () => {
    const email = `ct-${process.pid}@example.com`;
    const reg = await api('POST', '/api/users', {
      body: { user: { username: `ct${process.pid}`, email, password: 'a long enough password' } },
    });
    expect(reg.status, JSON.stringify(reg.body)).toBe(201);
    const other = await api('POST', '/api/users', {
      body: {
        user: {
          username: `ct${process.pid}b`,
          email: `ctb-${process.pid}@example.com`,
          password: 'another long password',
        },
      },
    });
    expect(other.status).toBe(201);
    const login = await api('POST', '/api/users/login', {
      body: { user: { email, password: 'a long enough password' } },
    });
    expect(login.status).toBe(200);
    token = login.body.user.token;
    const otherToken = other.body.user.token as string;
    expect((await api('GET', '/api/user', { token })).body.user.email).toBe(email);

    const created = await api('POST', '/api/articles', {
      token: otherToken,
      body: {
        article: { title: `Containers ${process.pid}`, description: 'd', body: 'b', tagList: ['podman'] },
      },
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    slug = created.body.article.slug;
    const favorited = await api('POST', `/api/articles/${slug}/favorite`, { token });
    expect(favorited.status, JSON.stringify(favorited.body)).toBe(200);
    expect(favorited.body.article.favoritesCount).toBe(1);
    const comment = await api('POST', `/api/articles/${slug}/comments`, {
      token,
      body: { comment: { body: 'hi' } },
    });
    expect(comment.status).toBe(201);
    expect((await api('GET', `/api/articles/${slug}/comments`)).body.comments).toHaveLength(1);
    expect(
      (await api('POST', `/api/profiles/ct${process.pid}b/follow`, { token })).body.profile.following,
    ).toBe(true);
    expect(
      await eventually(
        async () => (await api('GET', '/api/articles/feed', { token })).body.articles?.[0]?.slug === slug,
      ),
    ).toBe(true);
    expect(await eventually(async () => (await api('GET', '/api/tags')).body.tags?.includes('podman'))).toBe(
      true,
    );
    expect(
      (await api('DELETE', `/api/articles/${slug}/comments/${comment.body.comment.id}`, { token })).status,
    ).toBe(204);
    const extra = await api('POST', '/api/articles', {
      token: otherToken,
      body: { article: { title: `Gone ${process.pid}`, description: 'd', body: 'b' } },
    });
    expect(
      (await api('DELETE', `/api/articles/${extra.body.article.slug}`, { token: otherToken })).status,
    ).toBe(204);
    expect((await api('GET', `/api/articles/${extra.body.article.slug}`)).status).toBe(404);
  });

  it('mails a verification code to the dev inbox, and the code verifies the address', async () => {
    const email = `ct-${process.pid}@example.com`;
    expect((await api('POST', '/api/user/verification', { token })).status).toBe(202);
    expect(await eventually(async () => (await codeFor(email)) !== undefined, 30_000)).toBe(true);
    const confirmed = await api('POST', '/api/user/verification/confirm', {
      token,
      body: { verification: { code: await codeFor(email) } },
    });
    expect(confirmed.status).toBe(200);
  });

  it('signs in with Google through the dev OpenID provider', async () => {
    const get = (url: string, cookie?: string) =>
      fetch(url, { redirect: 'manual', headers: cookie ? { cookie } : {} });
    const started = await get(`${gateway}/api/auth/google?returnTo=%2F`);
    expect(started.status).toBe(302);
    const binding = /atoll_oauth_binding=([^;]+)/.exec(started.headers.get('set-cookie') ?? '')?.[1] ?? '';
    // The browser reaches the provider at http://oidc:8080 (an /etc/hosts line), here its published port.
    const authorize = new URL(started.headers.get('location') ?? '');
    expect(authorize.origin).toBe('http://oidc:8080');
    const authorized = await get(`http://127.0.0.1:${ports.oidc}${authorize.pathname}${authorize.search}`);
    const callback = new URL(authorized.headers.get('location') ?? '');
    expect(callback.pathname).toBe('/api/auth/google/callback');
    const res = await get(
      `${gateway}${callback.pathname}${callback.search}`,
      `atoll_oauth_binding=${binding}`,
    );
    expect(res.status).toBe(302);
    const session = /atoll_session=([^;]+)/.exec(res.headers.get('set-cookie') ?? '')?.[1];
    expect(session).toBeTruthy();
    const me = await api('GET', '/api/user', { token: session });
    expect(me.body.user.email).toBe('google.user@example.com');
  });

  it('serves /metrics to its token only', async () => {
    const { METRICS_TOKEN } = readEnv(envFile);
    expect((await fetch(`${gateway}/metrics`)).status).toBeGreaterThanOrEqual(400);
    const res = await fetch(`${gateway}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
    expect(res.status).toBe(200);
    expect(await res.text()).toMatch(/^# HELP /m);
  });

  it('has each service ask its resolver again after 1 s (Podman drops DNS queries while it reloads)', () => {
    for (const service of ['gateway', 'auth', 'content', 'notifier']) {
      const conf = podman(['exec', container(service), 'cat', '/etc/resolv.conf']);
      expect(conf, service).toMatch(/^options .*timeout:1 attempts:5/m);
    }
    // Redis resolves on its only thread: it keeps glibc's defaults.
    expect(podman(['exec', container('redis-session'), 'cat', '/etc/resolv.conf'])).not.toMatch(/attempts:5/);
  });

  it("reaches its data stores and services by their fixed addresses: writes go on while Podman's DNS answers nothing", async () => {
    // Each at its address in the test's BACKEND_NET (docker-compose.yml).
    for (const [service, n] of Object.entries(BACKEND_ADDRESSES)) {
      const addresses = podman([
        'inspect',
        '--format',
        '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}',
        container(service),
      ]);
      expect(addresses.split(' '), service).toContain(`${env.BACKEND_NET}.${n}`);
    }
    // Podman's DNS server, stopped (SIGSTOP): every lookup goes unanswered, as while it reloads. It serves
    // every container on the host, so it is resumed in `finally`, and again in afterAll should the test
    // be cut off before.
    const dns = run('pgrep', ['-x', 'aardvark-dns'], env).stdout.split('\n').filter(Boolean).map(Number);
    stoppedDns.push(...dns);
    expect(dns.length, 'aardvark-dns runs').toBeGreaterThan(0);
    const lookup = () =>
      run(
        'podman',
        [
          'exec',
          container('content'),
          'node',
          '-e',
          "require('node:dns').lookup('postgres',(e,a)=>console.log(e?e.code:a))",
        ],
        env,
        60_000,
      ).stdout.trim();
    expect(lookup()).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
    for (const pid of dns) process.kill(pid, 'SIGSTOP');
    try {
      expect(lookup(), 'a lookup while DNS is stopped').not.toMatch(/^\d/);
      // Every connection auth and content hold to PostgreSQL, closed by the server: what they do next
      // needs a new one, as after a restart or when a pool grows.
      const closed = podman([
        ...psqlArgs(false),
        '-c',
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename IN ('atoll_auth', 'atoll_content')",
      ]);
      expect(Number(closed.trim())).toBeGreaterThan(0);
      // A sign-up (auth), an article and a comment (content), each in a new connection, no name looked up.
      const started = Date.now();
      const user = `dns${process.pid}`;
      const signedUp = await api('POST', '/api/users', {
        body: { user: { username: user, email: `${user}@example.com`, password: 'a long enough password' } },
      });
      expect(signedUp.status, JSON.stringify(signedUp.body)).toBe(201);
      const article = await api('POST', '/api/articles', {
        token: signedUp.body.user.token,
        body: { article: { title: `No lookup ${process.pid}`, description: 'd', body: 'b' } },
      });
      expect(article.status, JSON.stringify(article.body)).toBe(201);
      const comment = await api('POST', `/api/articles/${article.body.article.slug}/comments`, {
        token: signedUp.body.user.token,
        body: { comment: { body: 'no lookup' } },
      });
      expect(comment.status, JSON.stringify(comment.body)).toBe(201);
      figures.push(`three writes with DNS stopped ${Date.now() - started} ms`);
    } finally {
      resumeDns();
    }
  }, 120_000);

  it('keeps sessions, queued jobs and rows across restarts of redis-session, redis-queue and PostgreSQL', async () => {
    const email = `ctb-${process.pid}@example.com`;
    const login = await api('POST', '/api/users/login', {
      body: { user: { email, password: 'another long password' } },
    });
    const queuedToken = login.body.user.token as string;
    // With the notifier stopped, the code's mail job waits in redis-queue.
    compose(['stop', 'notifier']);
    const before = await codesFor(email);
    expect((await api('POST', '/api/user/verification', { token: queuedToken })).status).toBe(202);
    compose(['restart', '-t', '20', 'redis-session', 'redis-queue', 'postgres'], 180_000);
    for (const service of ['redis-session', 'redis-queue', 'postgres'])
      expect(await healthy(service)).toBe(true);
    // Sessions: both tokens still sign in; rows: the article is still there, read from PostgreSQL (the
    // comments of an article are not cached); writes work again once the services reconnect.
    expect(
      await eventually(async () => (await api('GET', '/api/user', { token })).status === 200, 60_000),
    ).toBe(true);
    expect((await api('GET', '/api/user', { token: queuedToken })).status).toBe(200);
    expect(
      await eventually(
        async () => (await api('GET', `/api/articles/${slug}/comments`)).status === 200,
        60_000,
      ),
    ).toBe(true);
    expect(
      await eventually(
        async () =>
          (
            await api('POST', `/api/articles/${slug}/comments`, {
              token,
              body: { comment: { body: 'back' } },
            })
          ).status === 201,
        60_000,
      ),
    ).toBe(true);
    expect((await api('GET', `/api/articles/${slug}`)).body.article.title).toBe(`Containers ${process.pid}`);
    // The queued job: delivered once the notifier is back.
    expect(await codesFor(email)).toBe(before);
    compose(['start', 'notifier']);
    expect(await eventually(async () => (await codesFor(email)) > before, 90_000)).toBe(true);
  }, 400_000);

  it('lets requests in flight finish when content gets SIGTERM', async () => {
    // Writes held in flight inside content: a transaction in PostgreSQL locks the articles table against
    // writes (reads go on; content's statement timeout is 5 s) until all six writes wait on it, content is
    // told to stop while they wait, and then the lock is let go. One psql session over stdin holds the
    // lock and counts the writes waiting for it (pg_locks: content's sessions are another role's, whose
    // queries pg_stat_activity does not show), so no fixed delay decides whether a write got there in time.
    const psql = spawn('podman', [...psqlArgs(true), '-v', 'ON_ERROR_STOP=1'], {
      env,
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    const exited = new Promise<number | null>((resolve) => psql.once('exit', resolve));
    let printed = '';
    psql.stdout.on('data', (chunk: Buffer) => {
      printed += chunk.toString();
    });
    /** Sends `statement` and waits for the line it prints that starts with `tag`; that line's rest. */
    const ask = async (statement: string, tag: string): Promise<string> => {
      const from = printed.length;
      psql.stdin.write(`${statement}\n`);
      for (const until = Date.now() + 20_000; Date.now() < until; ) {
        const line = printed
          .slice(from)
          .split('\n')
          .find((l) => l.startsWith(tag));
        if (line !== undefined) return line.slice(tag.length);
        await new Promise((r) => setTimeout(r, 20));
      }
      throw new Error(`psql printed no ${tag} line: ${printed}`);
    };
    /** Six writes held by the lock: sent, then counted until all six wait on it (at most 4 s). */
    const heldWrites = async (round: string) => {
      await ask("BEGIN; LOCK TABLE content.articles IN EXCLUSIVE MODE; SELECT 'locked:';", 'locked:');
      const writes = Array.from({ length: 6 }, (_, i) =>
        api('POST', '/api/articles', {
          token,
          body: { article: { title: `${round} ${process.pid} ${i}`, description: 'd', body: 'b' } },
        }),
      );
      let waiting = 0;
      for (const until = Date.now() + 4_000; waiting < 6 && Date.now() < until; ) {
        waiting = Number(
          await ask(
            "SELECT 'waiting:' || count(*) FROM pg_locks WHERE relation = 'content.articles'::regclass AND NOT granted;",
            'waiting:',
          ),
        );
      }
      return { writes, waiting };
    };
    // A first round opens six connections in content's pool (an idle one is kept for 30 s):
    // opening one to PostgreSQL in a container on a busy machine can take seconds, and a write that
    // cannot get one within 5 s is a 503 by design. Its answers are not what this test is about.
    const warm = await heldWrites('Warm-up');
    await ask("COMMIT; SELECT 'committed:';", 'committed:');
    await Promise.all(warm.writes);
    const { writes, waiting } = await heldWrites('In flight');
    podman(['kill', '--signal', 'TERM', container('content')]);
    await new Promise((r) => setTimeout(r, 300));
    const state = podman(['inspect', '--format', '{{.State.Status}}', container('content')]).trim();
    psql.stdin.end('COMMIT;\n');
    expect(waiting, 'writes waiting on the lock when content was told to stop').toBe(6);
    const answers = await Promise.all(writes);
    expect(await exited).toBe(0);
    expect(state).toBe('running'); // still draining, not gone
    expect(
      answers.map((a) => a.status),
      JSON.stringify(answers.map((a) => a.body)),
    ).toEqual(answers.map(() => 201));
    // It stopped by itself once drained (exit 0), and its restart policy brings it back.
    expect(
      await eventually(async () => {
        const exits = run(
          'podman',
          ['inspect', '--format', '{{.State.ExitCode}} {{.RestartCount}}', container('content')],
          env,
        );
        return /^0 [1-9]/.test(exits.stdout.trim());
      }, 60_000),
    ).toBe(true);
    expect(await healthy('content')).toBe(true);
  }, 240_000);

  it('compose down -v leaves nothing running and nothing behind', () => {
    compose(['down', '-v', '-t', '20'], 180_000);
    const left = [
      run('podman', ['ps', '-a', '--format', '{{.Names}}'], env).stdout,
      run('podman', ['network', 'ls', '--format', '{{.Name}}'], env).stdout,
      run('podman', ['volume', 'ls', '--format', '{{.Name}}'], env).stdout,
    ]
      .join('\n')
      .split('\n')
      .filter((name) => name.startsWith(`${project}_`));
    expect(left).toEqual([]);
  }, 200_000);
});
