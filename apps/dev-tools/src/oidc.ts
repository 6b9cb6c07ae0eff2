/**
 * The dev OpenID provider standing in for Google: oauth2-mock-server on PORT (8080), issuer ISSUER
 * (default http://localhost:8080; it must be the URL both the services and the browser use), a fresh
 * RS256 key per start. It has no login page: every authorization succeeds at once, and every ID token
 * describes one user with a verified address (OIDC_SUBJECT, OIDC_EMAIL, OIDC_NAME).
 * For local stacks only.
 */
import { Events, OAuth2Server } from 'oauth2-mock-server';
import { envPort, onStop } from './env.ts';

const port = envPort('PORT', 8080);
const server = new OAuth2Server();
await server.issuer.keys.generate('RS256');
server.service.on(Events.BeforeTokenSigning, (token) => {
  Object.assign(token.payload, {
    sub: process.env.OIDC_SUBJECT || 'local-google-user',
    email: process.env.OIDC_EMAIL || 'google.user@example.com',
    email_verified: true,
    name: process.env.OIDC_NAME || 'Google User',
  });
});
await server.start(port, '0.0.0.0');
server.issuer.url = process.env.ISSUER || `http://localhost:${port}`;
console.log(`OpenID provider ${server.issuer.url} listening on ${port}`);
onStop(() => void server.stop().then(() => process.exit(0)));
