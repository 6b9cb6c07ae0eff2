/**
 * The email worker's handlers: render the job's template and send it, once per job (the job id is the
 * idempotency key, see mailer.ts). Producers give every email job a stable id (auth: per code or reset
 * token; the notifier: per notification, per user and digest run, per account for the welcome).
 */
import type { Handlers, JobPayloads } from '@atoll/jobs';
import type { Mailer } from './mailer.ts';
import { templates } from './templates.ts';

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
    'verification-code': send('verification-code'),
    'password-reset': send('password-reset'),
    'email-changed': send('email-changed'),
    notification: send('notification'),
    digest: send('digest'),
  };
}
