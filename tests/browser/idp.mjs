// The company's identity provider for the console's browser test: oidc-provider with its
// development sign-in form (any password), authorization code flow with PKCE, and an ID token
// that carries e-mail and roles. Usage: node idp.mjs (env CLIENT_SECRET, REDIRECT_URI);
// prints "READY <port>" once listening on 127.0.0.1.
import http from 'node:http';
import Provider from 'oidc-provider';

const { CLIENT_SECRET, REDIRECT_URI } = process.env;
if (!CLIENT_SECRET || !REDIRECT_URI) {
  console.error('CLIENT_SECRET and REDIRECT_URI are required');
  process.exit(2);
}
// The directory: who may sign in, with which roles.
const people = {
  'ana@example.com': ['secops'],
  'ben@example.com': ['secops'],
  'vic@example.com': ['viewer'],
};

const server = http.createServer();
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  const provider = new Provider(`http://127.0.0.1:${port}`, {
    clients: [{
      client_id: 'lockout-console',
      client_secret: CLIENT_SECRET,
      redirect_uris: [REDIRECT_URI],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    }],
    pkce: { required: () => true },
    // Claims in the ID token itself, as Okta, Entra ID and Keycloak can be set up to do.
    conformIdTokenClaims: false,
    claims: { openid: ['sub', 'roles'], email: ['email', 'email_verified'], profile: ['name'] },
    async findAccount(ctx, sub) {
      const roles = people[sub];
      if (!roles) return undefined;
      return {
        accountId: sub,
        async claims() {
          return { sub, email: sub, email_verified: true, name: sub.split('@')[0], roles };
        },
      };
    },
    features: { devInteractions: { enabled: true } },
    cookies: { keys: ['browser-test-cookie-key'] },
  });
  provider.on('server_error', (ctx, err) => console.error('server_error', err));
  server.on('request', provider.callback());
  console.log(`READY ${port}`);
});
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
