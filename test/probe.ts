// Builds test/fixtures/probe.c once into build/probe/ (not a temp dir: it is
// a build product, like the addon) and says where it is.
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '../..');

export function probe(): string {
  const src = join(root, 'test/fixtures/probe.c');
  const dir = join(root, 'build/probe');
  const bin = join(dir, 'probe');
  if (!existsSync(bin) || statSync(bin).mtimeMs < statSync(src).mtimeMs) {
    mkdirSync(dir, { recursive: true });
    const tmp = `${bin}.${process.pid}`;
    execFileSync(process.env.CC || 'cc', ['-O2', '-pthread', '-o', tmp, src]);
    execFileSync('mv', ['-f', tmp, bin]);
  }
  // The sandbox's user must be able to reach it through a bind mount.
  if ((statSync(dir).mode & 0o755) !== 0o755) chmodSync(dir, 0o755);
  return bin;
}

/** Mount options that show the probe at /probe inside a sandbox. */
export function probeMount() {
  return { source: probe(), target: '/probe' };
}
