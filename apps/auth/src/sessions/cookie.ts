import type { FastifyReply, FastifyRequest } from 'fastify';

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
 *
 * It is set only for a browser: a request that carries `Sec-Fetch-Site`, which every current browser
 * sends to a secure origin (HTTPS, or localhost) and API clients (Postman, Bruno, curl, SDKs; Node's
 * fetch sends `Sec-Fetch-Mode` only) do not. API clients use the token in the body; a cookie they never
 * asked for would sit in their cookie jar and authenticate requests they meant to send without
 * credentials.
 */
export function setSessionCookie(
  reply: FastifyReply,
  settings: CookieSettings,
  token: string,
  /** false where only a browser can be calling (the end of the Google redirect). */
  onlyForBrowsers = true,
): void {
  if (onlyForBrowsers && !fromBrowser(reply.request)) return;
  reply.header('set-cookie', serialize(settings, token, settings.maxAgeSeconds));
}

export function fromBrowser(request: FastifyRequest): boolean {
  return request.headers['sec-fetch-site'] !== undefined;
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
