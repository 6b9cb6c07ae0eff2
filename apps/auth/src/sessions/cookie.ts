import type { FastifyReply } from 'fastify';

export interface CookieSettings {
  name: string;
  /** Secure cookies are sent over HTTPS only; off only for plain-HTTP local development. */
  secure: boolean;
  maxAgeSeconds: number;
}

/**
 * The browser's session cookie: HttpOnly (no script reads it), SameSite=Lax, Path=/, and Secure outside
 * local development. With the default name's `__Host-` prefix, browsers also refuse it unless it is
 * Secure, host-only and for the whole path.
 */
export function setSessionCookie(reply: FastifyReply, settings: CookieSettings, token: string): void {
  reply.header('set-cookie', serialize(settings, token, settings.maxAgeSeconds));
}

export function clearSessionCookie(reply: FastifyReply, settings: CookieSettings): void {
  reply.header('set-cookie', serialize(settings, '', 0));
}

function serialize(settings: CookieSettings, value: string, maxAge: number): string {
  return [
    `${settings.name}=${value}`,
    'Path=/',
    `Max-Age=${maxAge}`,
    'HttpOnly',
    'SameSite=Lax',
    ...(settings.secure ? ['Secure'] : []),
  ].join('; ');
}
