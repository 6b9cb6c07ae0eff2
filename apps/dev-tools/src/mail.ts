/**
 * The dev mail inbox: an SMTP server that accepts every message (SMTP_PORT, 1025) and keeps the last
 * MAIL_KEEP (200) in memory, and an HTTP port (HTTP_PORT, 8025) to read them:
 *
 *   GET /api/messages   [{ to, from, subject, text, date }], newest last
 *   GET /               the same as a plain HTML list
 *   GET /readyz         200 once both ports listen
 *
 * For local stacks only: it authenticates no one and relays nothing.
 */
import { createServer } from 'node:http';
import { type AddressObject, simpleParser } from 'mailparser';
import { SMTPServer } from 'smtp-server';
import { envPort, onStop } from './env.ts';

interface Message {
  to: string[];
  from: string;
  subject: string;
  text: string;
  date: string;
}

const keep = envPort('MAIL_KEEP', 200);
const messages: Message[] = [];

const addresses = (field: AddressObject | AddressObject[] | undefined): string[] =>
  (Array.isArray(field) ? field : field ? [field] : []).flatMap((a) => a.value.map((v) => v.address ?? ''));

const smtp = new SMTPServer({
  authOptional: true,
  disabledCommands: ['STARTTLS'],
  banner: 'atoll dev mail inbox',
  onData(stream, _session, done) {
    simpleParser(stream)
      .then((mail) => {
        messages.push({
          to: addresses(mail.to),
          from: addresses(mail.from)[0] ?? '',
          subject: mail.subject ?? '',
          text: mail.text ?? '',
          date: new Date().toISOString(),
        });
        if (messages.length > keep) messages.splice(0, messages.length - keep);
        done();
      })
      .catch((err: Error) => done(err));
  },
});

const html = (s: string) => s.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);

const http = createServer((req, res) => {
  if (req.method !== 'GET') {
    res.writeHead(405).end();
  } else if (req.url === '/api/messages') {
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(messages));
  } else if (req.url === '/readyz') {
    res.writeHead(200).end('ok');
  } else if (req.url === '/') {
    const rows = messages
      .toReversed()
      .map((m) => `<li><b>${html(m.subject)}</b> to ${html(m.to.join(', '))}<pre>${html(m.text)}</pre></li>`);
    res
      .writeHead(200, {
        'content-type': 'text/html; charset=utf-8',
        'content-security-policy': "default-src 'none'",
      })
      .end(`<!doctype html><title>atoll dev inbox</title><h1>atoll dev inbox</h1><ul>${rows.join('')}</ul>`);
  } else {
    res.writeHead(404).end();
  }
});

smtp.listen(envPort('SMTP_PORT', 1025), '0.0.0.0');
http.listen(envPort('HTTP_PORT', 8025), '0.0.0.0');
onStop(() => {
  http.close();
  smtp.close(() => process.exit(0));
});
