// Registry credentials as the Engine API carries them (X-Registry-Auth: a
// base64url JSON AuthConfig), and which registries are spoken to in plain HTTP.
import { isIP } from 'node:net';
import type { Credentials, RegistryOptions } from '../image/registry.js';
import { EngineError } from './errors.js';

interface AuthConfig {
  username?: string;
  password?: string;
  auth?: string;
  serveraddress?: string;
  identitytoken?: string;
}

/** The credentials in an X-Registry-Auth header; undefined when it carries none (the CLI sends "e30=", {}). */
export function registryAuthHeader(header: unknown): Credentials | undefined {
  if (typeof header !== 'string' || header.trim() === '') return undefined;
  let cfg: AuthConfig;
  try {
    // base64url as Docker documents it; clients also send standard base64, which Buffer reads the same way.
    cfg = JSON.parse(Buffer.from(header.trim(), 'base64url').toString('utf8')) as AuthConfig;
  } catch {
    throw new EngineError(400, 'X-Registry-Auth: not base64-encoded JSON');
  }
  return authConfigCredentials(cfg);
}

/** A user and password from an AuthConfig (username/password, or auth: base64 of user:password). */
export function authConfigCredentials(cfg: AuthConfig | null | undefined): Credentials | undefined {
  if (!cfg || typeof cfg !== 'object') return undefined;
  if (typeof cfg.username === 'string' && cfg.username && typeof cfg.password === 'string') return { username: cfg.username, password: cfg.password };
  if (typeof cfg.auth === 'string' && cfg.auth) {
    const plain = Buffer.from(cfg.auth, 'base64').toString('utf8');
    const colon = plain.indexOf(':');
    if (colon > 0) return { username: plain.slice(0, colon), password: plain.slice(colon + 1) };
  }
  if (cfg.identitytoken) throw new EngineError(400, 'X-Registry-Auth: identity tokens are not supported by brig; log in with a user and password');
  return undefined;
}

/**
 * Docker's default insecure registries are 127.0.0.0/8 (and so localhost):
 * a registry on a loopback address is spoken to in plain HTTP, any other in
 * HTTPS only.
 */
export function isLoopbackRegistry(host: string): boolean {
  const h = host.startsWith('[') ? host.slice(1, host.indexOf(']')) : host.replace(/:\d+$/, '');
  if (h === 'localhost' || h === '::1') return true;
  return isIP(h) === 4 && h.startsWith('127.');
}

export function registryOptions(registry: string, credentials?: Credentials): RegistryOptions {
  return { ...(isLoopbackRegistry(registry) ? { insecure: [registry] } : {}), ...(credentials ? { credentials } : {}) };
}
