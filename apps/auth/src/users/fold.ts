/**
 * An address or name with A–Z lowered and nothing else. PostgreSQL's `lower()`, which the lookups and
 * unique indexes use, folds at least those under any locale (under the C locale, only those), so two
 * spellings this calls the same are the same account's to the database too, never two accounts'.
 * Wherever auth compares addresses itself (did the email change, is it an admin's, which address a code
 * was mailed to), it folds no more than this.
 */
export const foldAscii = (text: string) => text.replace(/[A-Z]+/g, (c) => c.toLowerCase());
