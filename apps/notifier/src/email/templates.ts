/**
 * The text and HTML of every email, one function per job of the email queue. Plain template strings:
 * few emails, no layout engine needed. Everything that comes from users is HTML-escaped.
 *
 * The welcome and the security emails (code, reset link, email changed) go to addresses nobody may have
 * proved: anyone can sign up with someone else's address. They greet nobody by name, because a username
 * is whatever the account chose, up to 64 characters of any text ("Your account is suspended, log in
 * at …"), and must not reach a stranger's mailbox in atoll's name. Notification and digest emails go only
 * to verified addresses (notifications/mail-rules.ts), so there the name is the owner's own.
 */
import type { JobPayloads } from '@atoll/jobs';

export interface Rendered {
  subject: string;
  text: string;
  html: string;
}

type Email = JobPayloads['email'];
type Security = JobPayloads['security-email'];
type Item = Email['digest']['items'][number];

const escapeHtml = (value: string) => value.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** One paragraph per line of text, with the link (if any) as an anchor. */
function page(lines: string[], link?: { href: string; label: string }): string {
  const body = lines.map((l) => `<p>${escapeHtml(l)}</p>`).join('\n');
  const anchor = link ? `\n<p><a href="${escapeHtml(link.href)}">${escapeHtml(link.label)}</a></p>` : '';
  return `<!doctype html>\n<html><body>\n${body}${anchor}\n</body></html>\n`;
}

function render(subject: string, lines: string[], link?: { href: string; label: string }): Rendered {
  const text = [...lines, ...(link ? [`${link.label}: ${link.href}`] : [])].join('\n\n');
  return { subject, text: `${text}\n`, html: page(lines, link) };
}

/** What a notification says, in one sentence. */
export function describe(item: Item): string {
  const title = item.articleTitle ? `"${item.articleTitle}"` : 'your article';
  switch (item.type) {
    case 'follow':
      return `${item.actorUsername} started following you.`;
    case 'favorite':
      return `${item.actorUsername} favorited ${title}.`;
    case 'comment':
      return `${item.actorUsername} commented on ${title}: ${item.excerpt ?? ''}`.trim();
    case 'mention':
      return `${item.actorUsername} mentioned you in ${title}: ${item.excerpt ?? ''}`.trim();
  }
}

const articleLink = (publicUrl: string, item: Item) =>
  item.articleSlug
    ? { href: `${publicUrl}/article/${encodeURIComponent(item.articleSlug)}`, label: 'Open the article' }
    : { href: `${publicUrl}/profile/${encodeURIComponent(item.actorUsername)}`, label: 'See their profile' };

export const templates = {
  welcome: (_p: Email['welcome'], publicUrl: string) =>
    render(
      'Welcome to atoll',
      ['Hello,', 'welcome to atoll. Write your first article, or follow people whose work you like.'],
      { href: publicUrl, label: 'Start here' },
    ),
  'email-changed': (p: Email['email-changed']) => emailChanged(p),
  notification: (p: Email['notification'], publicUrl: string) =>
    render(
      `atoll: ${describe(p).split(':')[0]}`,
      [`Hi ${p.username},`, describe(p)],
      articleLink(publicUrl, p),
    ),
  digest: (p: Email['digest'], publicUrl: string) => {
    const more = p.total > p.items.length ? [`…and ${p.total - p.items.length} more.`] : [];
    return render(
      `Your ${p.period} atoll digest: ${p.total} new notification${p.total === 1 ? '' : 's'}`,
      [`Hi ${p.username}, here is what happened since your last digest:`, ...p.items.map(describe), ...more],
      { href: `${publicUrl}/notifications`, label: 'See all notifications' },
    );
  },
} satisfies { [J in keyof Email]: (payload: Email[J], publicUrl: string) => Rendered };

function emailChanged(p: Security['email-changed']): Rendered {
  return render('Your atoll email address was changed', [
    'Hello,',
    `the email address of your atoll account was changed to ${p.newEmailMasked} on ${p.changedAt}. This address will get no more email about the account.`,
    'If you made this change, there is nothing to do.',
    'If you did not, someone else may be using your account: contact atoll support from this address at once.',
  ]);
}

/**
 * The security emails. The code or reset token is not in the job: it is given by the worker, which read
 * it from its short-lived record (`keys.mailSecret`); `email-changed` carries none.
 */
export const securityTemplates = {
  'verification-code': (p: Security['verification-code'], _publicUrl: string, code: string) =>
    render(`Your atoll verification code: ${code}`, [
      'Hello,',
      `your verification code is ${code}. It is valid until ${p.expiresAt}.`,
      'If you did not ask for it, you can ignore this email.',
    ]),
  'password-reset': (p: Security['password-reset'], publicUrl: string, token: string) =>
    render(
      'Reset your atoll password',
      [
        'Hello,',
        `someone asked to reset your atoll password. The link is valid until ${p.expiresAt}.`,
        'If it was not you, ignore this email: your password stays as it is.',
      ],
      {
        href: `${publicUrl}/reset-password?token=${encodeURIComponent(token)}`,
        label: 'Choose a new password',
      },
    ),
  'email-changed': (p: Security['email-changed']) => emailChanged(p),
};
