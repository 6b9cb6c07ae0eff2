/**
 * What a request is to the gateway (classify.ts), decided once at the door: a pure function of method,
 * URL as sent and client address, checked here on a table of cases, odd paths included.
 */
import { describe, expect, it } from 'vitest';
import { type Classification, classifier } from '../src/classify.ts';
import { ROUTE_TABLE } from '../src/routes/table.ts';

const classify = classifier({
  routeTimeouts: [
    { prefix: '/api/users/login', timeoutMs: 3000 },
    { prefix: '/api/articles', timeoutMs: 5000 },
  ],
  defaultTimeoutMs: 10_000,
});

const route = (prefix: string) => ROUTE_TABLE.find((r) => r.prefix === prefix);

type Case = [method: string, url: string, expected: Partial<Classification>];

const cases: Case[] = [
  // Proxied reads.
  [
    'GET',
    '/api/articles/how-to',
    {
      nonCanonical: null,
      hiddenDotSegment: false,
      path: '/api/articles/how-to',
      route: route('/api/articles'),
      upstream: 'content',
      expectsJson: true,
      signIn: false,
      limited: true,
      endpointTier: undefined,
      timeoutMs: 5000,
      target: '/api/articles/how-to',
    },
  ],
  ['GET', '/api/tags', { path: '/api/tags', upstream: 'content', timeoutMs: 10_000, target: '/api/tags' }],
  // The query string is not part of the path; the target keeps it.
  [
    'GET',
    '/api/articles?tag=a&limit=2',
    { path: '/api/articles', upstream: 'content', target: '/api/articles?tag=a&limit=2' },
  ],
  // A query the URL parser would drop as empty stays in the target.
  ['GET', '/api/articles?', { path: '/api/articles', target: '/api/articles?' }],
  // One trailing slash is the same path.
  ['POST', '/api/users/', { path: '/api/users', upstream: 'auth', signIn: true, endpointTier: 'auth' }],
  ['GET', '/', { path: '/', route: undefined, upstream: undefined, limited: true, target: '' }],
  // A prefix matches itself and below, not a longer word.
  ['GET', '/api/user', { route: route('/api/user'), upstream: 'auth' }],
  ['GET', '/api/userz', { route: undefined, upstream: undefined, expectsJson: false, target: '' }],
  ['GET', '/api/tagsx', { route: undefined }],
  // Sign-in and endpoint tiers, by method and path.
  ['POST', '/api/users/login', { signIn: true, endpointTier: 'auth', timeoutMs: 3000 }],
  ['POST', '/api/users/login?next=1', { signIn: true, endpointTier: 'auth' }],
  ['GET', '/api/users/login', { signIn: false, endpointTier: undefined }],
  ['POST', '/api/users/password-reset', { signIn: false, endpointTier: 'mail' }],
  ['POST', '/api/users/password-reset/confirm', { endpointTier: 'auth' }],
  ['POST', '/api/user/verification', { endpointTier: 'mail' }],
  ['GET', '/api/auth/google', { endpointTier: 'auth' }],
  // HEAD costs what GET costs.
  ['HEAD', '/api/auth/google', { endpointTier: 'auth' }],
  // Any body for the queue dashboard.
  ['POST', '/api/admin/queues/api/retry', { upstream: 'notifier', expectsJson: false }],
  ['GET', '/api/notifications/stream', { upstream: 'notifier', target: '/api/notifications/stream' }],
  // The gateway's own routes and unknown ones: not proxied; the probes are not limited.
  ['GET', '/health/live', { route: undefined, limited: false }],
  ['GET', '/health/ready/', { path: '/health/ready', limited: false }],
  ['GET', '/metrics?x=1', { limited: false }],
  ['GET', '/health/services', { limited: true, upstream: undefined }],
  ['GET', '/nope/at/all', { route: undefined, limited: true, endpointTier: undefined }],
  // Odd paths: not canonical, the door refuses them with the canonical spelling (and nothing is proxied).
  ['GET', '//api/tags', { nonCanonical: '/api/tags', target: '' }],
  ['GET', '/api//tags?x=1', { nonCanonical: '/api/tags' }],
  ['POST', '/api/users/./password-reset', { nonCanonical: '/api/users/password-reset', target: '' }],
  ['POST', '/api/users/%6cogin', { nonCanonical: '/api/users/login' }],
  ['GET', '/api\\tags', { nonCanonical: '/api/tags' }],
  // Encodings that mean something else stay, and are read as sent.
  [
    'GET',
    '/api/articles/a%20b',
    { nonCanonical: null, path: '/api/articles/a%20b', target: '/api/articles/a%20b' },
  ],
  ['GET', '/api/articles/caf%C3%A9', { nonCanonical: null, upstream: 'content' }],
  ['GET', '/api/profiles/a%2Fb', { nonCanonical: null, path: '/api/profiles/a%2Fb', upstream: 'content' }],
  ['GET', '/api/users%2Flogin', { nonCanonical: null, route: undefined }],
  // A dot segment hidden by %2F or %5C is refused; in a query it is data.
  ['GET', '/api/profiles/..%2F', { nonCanonical: null, hiddenDotSegment: true, target: '' }],
  ['GET', '/api/articles/a%2F..', { hiddenDotSegment: true, target: '' }],
  ['GET', '/api/articles/..%5Cx', { hiddenDotSegment: true }],
  ['GET', '/api/articles/a%2F..b', { hiddenDotSegment: true, target: '' }],
  ['GET', '/api/profiles/..%252F', { hiddenDotSegment: true }],
  ['GET', '/api/articles/x/..;/y', { hiddenDotSegment: true }],
  ['GET', '/api/articles/wait...', { hiddenDotSegment: false, target: '/api/articles/wait...' }],
  ['GET', '/api/articles?tag=..%2Fx', { hiddenDotSegment: false, target: '/api/articles?tag=..%2Fx' }],
  ['GET', '/api/articles?tag=../x', { hiddenDotSegment: false, target: '/api/articles?tag=../x' }],
  // Characters the URL parser encodes on the way to the service: the target is what it receives.
  ['GET', '/api/articles/a"b', { path: '/api/articles/a"b', target: '/api/articles/a%22b' }],
  ['GET', "/api/articles?q='", { path: '/api/articles', target: '/api/articles?q=%27' }],
];

describe('classify', () => {
  it.each(cases)('%s %s', (method, url, expected) => {
    expect(classify(method, url, '127.0.0.1')).toMatchObject(expected);
  });

  it('keeps the client address as the limits count it', () => {
    expect(classify('GET', '/api/tags', '10.0.0.1').address).toBe('10.0.0.1');
    expect(classify('GET', '/api/tags', '::ffff:10.0.0.1').address).toBe('10.0.0.1');
    expect(classify('GET', '/api/tags', '2001:db8:1:1::77').address).toBe('2001:db8:1:1::');
  });

  it('a route timeout of `/` applies to every proxied path', () => {
    const all = classifier({ routeTimeouts: [{ prefix: '', timeoutMs: 1234 }], defaultTimeoutMs: 9 });
    expect(all('GET', '/api/tags', '127.0.0.1').timeoutMs).toBe(1234);
  });
});
