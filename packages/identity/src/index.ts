export {
  ASSERTION_TTL_SECONDS,
  CLOCK_SKEW_SECONDS,
  IDENTITY_HEADER,
  type Identity,
  INTERNAL_HEADER_PREFIX,
  type RequestContext,
  SESSION_UNAVAILABLE_HEADER,
  type SignOptions,
  signIdentity,
  type VerifyFailure,
  type VerifyOptions,
  verifyIdentity,
} from './assertion.ts';
export {
  default as identityPlugin,
  type IdentityPluginOptions,
  ReplayGuard,
  requireIdentity,
} from './plugin.ts';
