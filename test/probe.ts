// Builds the C fixtures (test/fixtures/*.c) once into build/probe/ (not a
// temp dir: they are build products, like the addon) and says where they are.
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '../..');

/** test/fixtures/NAME.c built once into build/probe/NAME (a build product, like the addon). */
export function fixture(name: string): string {
  const src = join(root, `test/fixtures/${name}.c`);
  const dir = join(root, 'build/probe');
  const bin = join(dir, name);
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

export function probe(): string {
  return fixture('probe');
}

/** Mount options that show the probe at /probe inside a sandbox. */
export function probeMount() {
  return { source: probe(), target: '/probe' };
}
