/**
 * Who may be mailed a notification, and whose actions may cause one (N7). Pure functions: the fan-out
 * (instant mail) and the digest both ask them, so the two paths cannot disagree.
 *
 * - `mailableRecipient`: notification mail (instant or digest) goes only to a verified address. An
 *   address nobody proved may belong to someone who never asked for atoll's mail (a throwaway registers
 *   it); a recipient whose verification is unknown (last described by a v1 event) counts as unverified.
 * - `trustedActor`: an actor whose address is verified and whose account is older than
 *   NOTIFY_MAIL_MIN_ACCOUNT_AGE_MS. Only a trusted actor's actions are mailed, whatever the type: every
 *   notification carries text the actor chose (a comment's or mention's excerpt, the article title of
 *   a mention, and for every type the username, up to 64 characters of anything), and a throwaway must
 *   not be able to put that text into anyone's mailbox through atoll's sender. An untrusted actor's
 *   notifications are in-app (and live) only.
 */

export interface Standing {
  emailVerified: boolean | null;
  registeredAt: Date | null;
}

/** Whether notification mail may go to this recipient's address (verified; unknown is not). */
export function mailableRecipient(recipient: { emailVerified: boolean | null } | undefined): boolean {
  return recipient?.emailVerified === true;
}

/** Whether this actor's notifications may be mailed (verified, and the account old enough). */
export function trustedActor(actor: Standing | undefined, minAgeMs: number, now: Date): boolean {
  if (actor?.emailVerified !== true || actor.registeredAt === null) return false;
  return now.getTime() - actor.registeredAt.getTime() >= minAgeMs;
}
