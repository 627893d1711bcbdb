// A real, certified OpenID provider (panva's oidc-provider) for Keystead's tests.
//
//   node server.mjs [--port N] [--clients JSON]     (or env PORT, OIDC_CLIENTS)
//
// Listens on 127.0.0.1 (port 0 = any free port) and prints one stdout line
// `listening http://127.0.0.1:PORT`; that URL is also the issuer. Clients are a JSON
// array of oidc-provider client metadata, e.g.
//   [{"client_id":"app","token_endpoint_auth_method":"none","redirect_uris":["http://127.0.0.1/cb"]}]
// grant_types and response_types default to authorization_code / code.
// Logins go through oidc-provider's own development login page (devInteractions): any
// login name with any password signs in; the account's `sub` is the login name and its
// email is `<login>@example.test` (or the login itself when it contains an `@`).
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import Provider from 'oidc-provider';

const arg = (name) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const port = Number(arg('port') ?? process.env.PORT ?? 0);
const clients = JSON.parse(arg('clients') ?? process.env.OIDC_CLIENTS ?? '[]').map((c) => ({
  grant_types: ['authorization_code'],
  response_types: ['code'],
  ...c,
}));

// A FIXED test-only RSA key (generated once, committed, public knowledge: never trust it
// anywhere real), so tokens and cached JWKS survive a restart of this provider.
const signingKey = JSON.parse(readFileSync(new URL('./test-signing-key.jwk.json', import.meta.url)));

const server = createServer();
server.listen(port, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, {
    clients,
    jwks: { keys: [signingKey] },
    cookies: { keys: ['keystead-test-cookie-key-not-secret'] },
    scopes: ['openid', 'email'],
    claims: { openid: ['sub'], email: ['email', 'email_verified'] },
    conformIdTokenClaims: false, // email in the ID token, not only at userinfo
    pkce: { required: () => true }, // S256 only (the default methods)
    features: { devInteractions: { enabled: true } },
    // Seconds; set explicitly so the provider does not warn about its defaults.
    ttl: { Interaction: 600, Session: 3600, Grant: 3600, AccessToken: 3600, IdToken: 3600 },
    async findAccount(ctx, id) {
      return {
        accountId: id,
        async claims() {
          const email = id.includes('@') ? id : `${id}@example.test`;
          return { sub: id, email, email_verified: true };
        },
      };
    },
  });
  server.on('request', provider.callback());
  console.log(`listening ${issuer}`);
});
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => process.exit(0));
