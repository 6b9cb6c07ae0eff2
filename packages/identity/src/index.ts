export {
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
export { default as identityPlugin, type IdentityPluginOptions, requireIdentity } from './plugin.ts';
