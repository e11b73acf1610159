// A real OpenID Connect provider (panva's oidc-provider) for gate-control's UI sign-in tests.
//
// Listens on a free 127.0.0.1 port and prints {"issuer": "..."} on stdout; then reads one JSON
// line on stdin, {"redirect_uri": "...", "client_id": "...", "client_secret": "..."}, registers
// that client and starts answering. Test users (the login form takes a user name; any password):
//   alice: groups gate-admins, staff    bob: groups staff    mallory: groups outsiders
// node_modules come from GATE_TEST_NPM (scripts/test-npm.sh installs them there).
import http from 'node:http';
import path from 'node:path';
import readline from 'node:readline';
import { pathToFileURL } from 'node:url';

const modules = process.env.GATE_TEST_NPM
  || path.join(process.env.HOME || '/root', '.cache', 'gate', 'test-npm');
const entry = path.join(modules, 'node_modules', 'oidc-provider', 'lib', 'index.js');
const { default: Provider } = await import(pathToFileURL(entry).href);

const USERS = {
  alice: { email: 'alice@example.test', name: 'Alice Admin', groups: ['gate-admins', 'staff'] },
  bob: { email: 'bob@example.test', name: 'Bob Reader', groups: ['staff'] },
  mallory: { email: 'mallory@example.test', name: 'Mallory', groups: ['outsiders'] },
};

let handler = (req, res) => { res.writeHead(503); res.end('not configured yet'); };
const server = http.createServer((req, res) => handler(req, res));
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;
process.stdout.write(`${JSON.stringify({ issuer })}\n`);

const lines = readline.createInterface({ input: process.stdin });
const first = await new Promise((resolve) => lines.once('line', resolve));
const client = JSON.parse(first);

const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const provider = new Provider(issuer, {
  clients: [{
    client_id: client.client_id,
    client_secret: client.client_secret,
    redirect_uris: [client.redirect_uri],
    response_types: ['code'],
    grant_types: ['authorization_code'],
  }],
  pkce: { required: () => true },
  scopes: ['openid', 'profile', 'email', 'groups'],
  claims: { openid: ['sub'], profile: ['name'], email: ['email'], groups: ['groups'] },
  conformIdTokenClaims: false,
  features: { devInteractions: { enabled: false } },
  cookies: { keys: ['gate-test-cookie-key-0123456789'] },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  async findAccount(ctx, id) {
    if (!USERS[id]) return undefined;
    return { accountId: id, async claims() { return { sub: id, ...USERS[id] }; } };
  },
});

// The login page: a user name and a password; consent is granted with the login.
async function interaction(req, res) {
  const url = new URL(req.url, issuer);
  const uid = url.pathname.split('/')[2];
  if (req.method === 'GET') {
    await provider.interactionDetails(req, res);
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(`<!doctype html><title>Test IdP sign-in</title><h1>Test IdP</h1>
<form method="post" action="/interaction/${escape(uid)}/login">
<label>User <input id="idp-login" name="login" autofocus></label>
<label>Password <input id="idp-password" name="password" type="password"></label>
<button id="idp-submit" type="submit">Sign in to the IdP</button></form>`);
    return;
  }
  let body = '';
  for await (const chunk of req) body += chunk;
  const login = new URLSearchParams(body).get('login') || '';
  if (!USERS[login]) {
    res.writeHead(401, { 'content-type': 'text/plain' });
    res.end(`unknown user ${login}`);
    return;
  }
  const details = await provider.interactionDetails(req, res);
  const grant = new provider.Grant({ accountId: login, clientId: details.params.client_id });
  grant.addOIDCScope(details.params.scope);
  const grantId = await grant.save();
  await provider.interactionFinished(req, res, {
    login: { accountId: login },
    consent: { grantId },
  }, { mergeWithLastSubmission: false });
}

const callback = provider.callback();
handler = (req, res) => {
  if (req.url.startsWith('/interaction/')) {
    interaction(req, res).catch((e) => {
      res.writeHead(400, { 'content-type': 'text/plain' });
      res.end(String(e && e.message));
    });
  } else {
    callback(req, res);
  }
};
process.stdout.write(`${JSON.stringify({ ready: true })}\n`);
lines.on('close', () => process.exit(0));
