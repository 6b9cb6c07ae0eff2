/**
 * Google sign-in as a browser does it against the stack's OpenID provider: start at the gateway, let the
 * provider send the browser back with a code, finish at the callback with the binding cookie. The ID
 * token carries the given claims (the provider has no login page: the claims stand for whoever signs in).
 */
import type { Stack } from '@atoll/testkit';
import { Events } from 'oauth2-mock-server';

export interface GoogleClaims {
  sub: string;
  email: string;
  name: string;
  email_verified?: boolean;
}

/** The callback's response, and the session token from its cookie when the sign-in worked. */
export async function googleSignIn(
  stack: Stack,
  claims: GoogleClaims,
  returnTo = '/',
): Promise<{ res: Response; token: string | undefined }> {
  const hook = (token: { payload: Record<string, unknown> }) => {
    if (token.payload.nonce === undefined) return;
    Object.assign(token.payload, { email_verified: true, ...claims });
    stack.oidc.service.off(Events.BeforeTokenSigning, hook);
  };
  stack.oidc.service.on(Events.BeforeTokenSigning, hook);
  const get = (url: string, cookie?: string) =>
    fetch(url, { redirect: 'manual', headers: cookie ? { cookie } : {} });
  try {
    const started = await get(`${stack.gatewayUrl}/api/auth/google?returnTo=${encodeURIComponent(returnTo)}`);
    const binding = /atoll_oauth_binding=([^;]+)/.exec(started.headers.get('set-cookie') ?? '')?.[1] ?? '';
    const authorized = await get(started.headers.get('location') ?? '');
    const res = await get(authorized.headers.get('location') ?? '', `atoll_oauth_binding=${binding}`);
    const token = /atoll_session=([^;]+)/.exec(res.headers.get('set-cookie') ?? '')?.[1];
    return { res, token };
  } finally {
    stack.oidc.service.off(Events.BeforeTokenSigning, hook);
  }
}
