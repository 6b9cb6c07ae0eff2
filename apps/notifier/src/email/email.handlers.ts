/**
 * The email workers' handlers: render the job's template and send it, once per job (the job id is the
 * idempotency key, see mailer.ts). Producers give every email job a stable id (auth: per code or reset
 * token; the notifier: per notification, per user and digest run, per account for the welcome).
 */
import type { Handlers, JobPayloads } from '@atoll/jobs';
import type { RedisClient } from '@atoll/redis';
import type { Keys } from '@atoll/redis-keys';
import { UnrecoverableError } from 'bullmq';
import type { Mailer } from './mailer.ts';
import { securityTemplates, templates } from './templates.ts';

type EmailJob = keyof JobPayloads['email'];

export function emailHandlers(mailer: Mailer, publicUrl: string): Handlers<'email'> {
  const send =
    <J extends EmailJob>(job: J) =>
    async (payload: JobPayloads['email'][J], meta: { jobId: string }) => {
      const render = templates[job] as (
        p: JobPayloads['email'][J],
        url: string,
      ) => ReturnType<typeof templates.welcome>;
      await mailer.send(`email:${meta.jobId}`, payload.to, render(payload, publicUrl));
    };
  return {
    welcome: send('welcome'),
    'email-changed': send('email-changed'),
    notification: send('notification'),
    digest: send('digest'),
  };
}

/**
 * The security queue's handlers. A code or reset email takes its secret from the record auth wrote
 * for this job (`keys.mailSecret(jobId)` on redis-session) and deletes the record once the email is
 * sent. No record: either the email went out already (a repeated job; nothing to do) or the secret
 * expired before it could be sent (the job fails without retry: its owner asks again).
 */
export function securityEmailHandlers(deps: {
  mailer: Mailer;
  publicUrl: string;
  /** redis-session, where auth keeps the secrets until they are mailed. */
  redis: RedisClient;
  keys: Keys;
}): Handlers<'security-email'> {
  const { mailer, publicUrl, redis, keys } = deps;
  const withSecret =
    <J extends 'verification-code' | 'password-reset'>(job: J) =>
    async (payload: JobPayloads['security-email'][J], meta: { jobId: string }) => {
      const key = `email:${meta.jobId}`;
      const secretKey = keys.mailSecret(meta.jobId);
      const secret = await redis.get(secretKey);
      if (secret === null) {
        if (await mailer.wasSent(key)) return;
        throw new UnrecoverableError(`the secret of ${job} ${meta.jobId} expired before it was mailed`);
      }
      const render = securityTemplates[job] as (
        p: JobPayloads['security-email'][J],
        url: string,
        secret: string,
      ) => ReturnType<(typeof securityTemplates)['email-changed']>;
      await mailer.send(key, payload.to, render(payload, publicUrl, secret));
      await redis.del(secretKey);
    };
  return {
    'verification-code': withSecret('verification-code'),
    'password-reset': withSecret('password-reset'),
    'email-changed': async (payload, meta) => {
      await mailer.send(`email:${meta.jobId}`, payload.to, securityTemplates['email-changed'](payload));
    },
  };
}
