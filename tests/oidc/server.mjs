// A real OAuth 2.0 / OpenID provider (oidc-provider) for lockout's integration tests.
// Usage: node server.mjs  (env OIDC_CLIENT_SECRET); prints "READY <port>" once listening on
// 127.0.0.1. Two clients share the secret: one authenticates with client_secret_basic, one
// with client_secret_post. Tokens are opaque and live 900 s, like 1Password's.
import Provider from 'oidc-provider';

const secret = process.env.OIDC_CLIENT_SECRET;
if (!secret) {
  console.error('OIDC_CLIENT_SECRET is required');
  process.exit(2);
}
const common = {
  client_secret: secret,
  grant_types: ['client_credentials'],
  response_types: [],
  redirect_uris: [],
  scope: 'openid',
};
const provider = new Provider('http://127.0.0.1', {
  clients: [
    { ...common, client_id: 'lockout-basic', token_endpoint_auth_method: 'client_secret_basic' },
    { ...common, client_id: 'lockout-post', token_endpoint_auth_method: 'client_secret_post' },
  ],
  features: {
    clientCredentials: { enabled: true },
    revocation: { enabled: true },
    devInteractions: { enabled: false },
  },
  scopes: ['openid'],
  ttl: { ClientCredentials: 900 },
});
provider.on('server_error', (ctx, err) => console.error('server_error', err));
const server = provider.listen(0, '127.0.0.1', () => {
  console.log(`READY ${server.address().port}`);
});
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
