// Builds the C fixtures (test/fixtures/*.c) once into build/probe/ (not a
// temp dir: they are build products, like the addon) and says where they are.
import { execFileSync, spawnSync } from 'node:child_process';
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

let i386Entry: boolean | undefined;
/**
 * Whether this kernel takes i386 system calls through int 0x80 at all. Some
 * hypervisors' guest kernels (PVM) refuse the gate itself with SIGSEGV before
 * seccomp sees the call; asked once, on the host, with the harmless getpid.
 */
export function i386EntryWorks(): boolean {
  if (i386Entry === undefined) {
    if (process.arch !== 'x64') return (i386Entry = false);
    i386Entry = spawnSync(probe(), ['int80', '20']).signal !== 'SIGSEGV';
  }
  return i386Entry;
}
