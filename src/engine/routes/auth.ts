// POST /auth: checks credentials against the registry, as brig login does
// (a /v2/ request answered with them). As Docker's daemon, it stores
// nothing: the client keeps the credentials and sends them with each pull
// or push (X-Registry-Auth).
import type { FastifyInstance } from 'fastify';
import { login, RegistryError } from '../../image/registry.js';
import { EngineError } from '../errors.js';
import { oneLine } from '../progress-stream.js';
import { authConfigCredentials, registryOptions } from '../registry-auth.js';

/** Docker Hub's names for itself, as clients send serveraddress. */
function registryHost(server: string): string {
  const host = server.replace(/^https?:\/\//, '').replace(/\/v[12]\/?$/, '').replace(/\/+$/, '');
  return ['index.docker.io', 'registry-1.docker.io', 'docker.io', ''].includes(host) ? 'docker.io' : host;
}

export default async function authRoutes(app: FastifyInstance): Promise<void> {
  app.post('/auth', async (req) => {
    const body = req.body as { username?: unknown; password?: unknown; serveraddress?: unknown; auth?: unknown } | null;
    if (!body || typeof body !== 'object') throw new EngineError(400, 'the body is a JSON AuthConfig: {"username", "password", "serveraddress"}');
    const credentials = authConfigCredentials(body as Parameters<typeof authConfigCredentials>[0]);
    if (!credentials) throw new EngineError(400, 'username and password are required');
    const registry = registryHost(typeof body.serveraddress === 'string' ? body.serveraddress : '');
    try {
      await login(registry, credentials, registryOptions(registry, credentials));
    } catch (e) {
      // 401 is the CLI's "wrong credentials"; a registry it cannot reach is brig's failure to say.
      if (e instanceof RegistryError && /unauthorized|HTTP 401|wrong credentials|HTTP 403/i.test(e.message)) throw new EngineError(401, `login to ${registry}: unauthorized: ${oneLine(e)}`);
      throw new EngineError(500, oneLine(e));
    }
    return { Status: 'Login Succeeded', IdentityToken: '' };
  });
}
