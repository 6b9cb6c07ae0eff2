/**
 * Sends email over SMTP (nodemailer), at most once per idempotency key.
 *
 * The key is claimed in `email_deliveries` inside a transaction that stays open while the SMTP server
 * receives the message, and commits only once the server has accepted it:
 * - a retried job, or a stalled job run again, finds the committed key and sends nothing;
 * - two attempts at once (a job taken for stalled while its first worker still runs): the second
 *   one's insert waits on the first one's row lock, then finds the key taken;
 * - a send that fails, or a process killed mid-send, rolls the claim back, so the retry sends.
 * What is left is the instant between the server's acceptance and the commit: a crash exactly there
 * sends the email again on retry. The Message-ID is derived from the key, so even then the copies are
 * recognisably one message. (No SMTP offers more: it has no way to ask whether a message arrived.)
 */
import { createHash } from 'node:crypto';
import type { Kysely } from 'kysely';
import nodemailer, { type Transporter } from 'nodemailer';
import type { NotifierDatabase } from '../db.ts';
import type { Rendered } from './templates.ts';

export type SendResult = 'sent' | 'already-sent';

export class Mailer {
  private readonly transport: Transporter;
  private readonly db: Kysely<NotifierDatabase>;
  private readonly from: string;

  constructor(opts: { smtpUrl: string; from: string; db: Kysely<NotifierDatabase> }) {
    // Pooled: the connection is kept between messages instead of a handshake per email.
    this.transport = nodemailer.createTransport(opts.smtpUrl, {
      pool: true,
      maxConnections: 5,
      connectionTimeout: 5000,
      greetingTimeout: 5000,
      socketTimeout: 20_000,
    } as never);
    this.db = opts.db;
    this.from = opts.from;
  }

  async send(key: string, to: string, message: Rendered): Promise<SendResult> {
    const messageId = `<${createHash('sha256').update(key).digest('hex').slice(0, 32)}@atoll>`;
    return this.db.transaction().execute(async (trx) => {
      const claimed = await trx
        .insertInto('email_deliveries')
        .values({ idempotency_key: key, recipient: to, message_id: messageId })
        .onConflict((oc) => oc.doNothing())
        .returning('idempotency_key')
        .executeTakeFirst();
      if (!claimed) return 'already-sent';
      await this.transport.sendMail({ from: this.from, to, messageId, ...message });
      return 'sent';
    });
  }

  /** Whether the email of this idempotency key went out (its claim committed). */
  async wasSent(key: string): Promise<boolean> {
    const row = await this.db
      .selectFrom('email_deliveries')
      .select('idempotency_key')
      .where('idempotency_key', '=', key)
      .executeTakeFirst();
    return row !== undefined;
  }

  close(): void {
    this.transport.close();
  }
}
