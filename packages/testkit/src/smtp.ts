/**
 * A real SMTP server on loopback (the `smtp-server` package) that receives mail and parses it
 * (`mailparser`): the tests' mailbox and the local stack's mail sink. Tests can make it refuse
 * connections (as a provider that is down) and hold a message before accepting it (to kill a sender
 * mid-send). A message counts as received only once the server has accepted it (250 after DATA), as on
 * a real provider; one whose sender went away before that is not delivered.
 */
import { once } from 'node:events';
import { type AddressObject, type ParsedMail, simpleParser } from 'mailparser';
import { SMTPServer } from 'smtp-server';
import { freePort } from './ports.ts';

export interface ReceivedMail {
  to: string[];
  subject: string;
  text: string;
  html: string;
  messageId: string;
  headers: ParsedMail['headers'];
}

export interface SmtpServerOptions {
  /** Called with every accepted message (the local stack logs them). */
  onMessage?: (mail: ReceivedMail) => void;
}

const addresses = (field: AddressObject | AddressObject[] | undefined): string[] =>
  (Array.isArray(field) ? field : field ? [field] : []).flatMap((a) => a.value.map((v) => v.address ?? ''));

export class SmtpTestServer {
  readonly url: string;
  /** Every accepted message, in order. */
  readonly received: ReceivedMail[] = [];
  /** Connections refused (while `refuse` was on) and messages whose sender left before acceptance. */
  refusedConnections = 0;
  abandoned = 0;
  /** Messages whose DATA arrived while `hold` was on (each waits for the release before acceptance). */
  held = 0;
  /** Client connections that have ended (a sender that quit or was killed). */
  sessionsClosed = 0;
  private refusing = false;
  private holding: Promise<void> | null = null;
  private readonly server: SMTPServer;

  private constructor(server: SMTPServer, port: number) {
    this.server = server;
    this.url = `smtp://127.0.0.1:${port}`;
  }

  static async start(opts: SmtpServerOptions = {}): Promise<SmtpTestServer> {
    const port = await freePort();
    let self: SmtpTestServer | undefined;
    const server = new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS'],
      logger: false,
      closeTimeout: 1000,
      onConnect(_session, callback) {
        if (self?.refusing) {
          self.refusedConnections += 1;
          return callback(
            Object.assign(new Error('service not available, try later'), { responseCode: 421 }),
          );
        }
        callback();
      },
      onData(stream, session, callback) {
        void (async () => {
          const raw = Buffer.concat(await stream.toArray());
          if (self?.holding) {
            self.held += 1;
            await self.holding;
          }
          // The sender gave up (or was killed) while we held the message: it was never accepted.
          if ((session as unknown as { closed?: boolean }).closed) {
            if (self) self.abandoned += 1;
            return;
          }
          const parsed = await simpleParser(raw);
          const mail: ReceivedMail = {
            to: addresses(parsed.to),
            subject: parsed.subject ?? '',
            text: parsed.text ?? '',
            html: typeof parsed.html === 'string' ? parsed.html : '',
            messageId: parsed.messageId ?? '',
            headers: parsed.headers,
          };
          self?.received.push(mail);
          opts.onMessage?.(mail);
          callback();
        })().catch((err: Error) => callback(err));
      },
      onClose(session) {
        (session as unknown as { closed?: boolean }).closed = true;
        if (self) self.sessionsClosed += 1;
      },
    });
    // A sender killed or stopped mid-connection resets its socket; that is the sender's business, not a
    // failure of the test process (without a listener, smtp-server's 'error' would be uncaught).
    server.on('error', () => undefined);
    self = new SmtpTestServer(server, port);
    server.listen(port, '127.0.0.1');
    await once(server.server, 'listening');
    return self;
  }

  /** While on, every new connection is answered 421 (a provider that is down). */
  refuse(on: boolean): void {
    this.refusing = on;
  }

  /** Holds every message after its DATA until the returned function is called. */
  hold(): () => void {
    let release = () => {};
    this.holding = new Promise<void>((resolve) => {
      release = () => {
        this.holding = null;
        resolve();
      };
    });
    return release;
  }

  /** The accepted messages to `address`. */
  to(address: string): ReceivedMail[] {
    return this.received.filter((m) => m.to.includes(address));
  }

  /** Waits until `count` messages to `address` have arrived (or the time is up); returns them. */
  async waitFor(address: string, count = 1, timeoutMs = 15_000): Promise<ReceivedMail[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.to(address).length < count && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    return this.to(address);
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
