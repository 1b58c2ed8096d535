// Node's heavier built-in modules, loaded the first time a run needs them.
// A plain `brig run` from a shell needs none of them: node:net brings
// Node's whole stream machinery, node:child_process brings net and dgram,
// node:crypto is large of its own; with perf_hooks they cost about 25 ms of
// CPU here, where `node -e 0` takes about 90 (docs/performance.md). Imported
// statically, every CLI start paid for them.
import { createRequire } from 'node:module';

// Made on first use: a plain run needs none of these, and making it turns
// this file's URL into a path and back (node:url's parser, warm for nothing).
let requireHere: NodeRequire | undefined;
const require = (id: string): unknown => (requireHere ??= createRequire(import.meta.url))(id);

let netModule: typeof import('node:net') | undefined;
let childProcessModule: typeof import('node:child_process') | undefined;
let dgramModule: typeof import('node:dgram') | undefined;
let cryptoModule: typeof import('node:crypto') | undefined;

/** node:net: sockets on a pipe's fd, servers, isIP. */
export function net(): typeof import('node:net') {
  return (netModule ??= require('node:net') as typeof import('node:net'));
}

/** node:child_process: the id-map helpers, pasta. */
export function childProcess(): typeof import('node:child_process') {
  return (childProcessModule ??= require('node:child_process') as typeof import('node:child_process'));
}

/** node:dgram: probing a UDP port before publishing it. */
export function dgram(): typeof import('node:dgram') {
  return (dgramModule ??= require('node:dgram') as typeof import('node:dgram'));
}

/** node:crypto: a compiled seccomp program's id (the shipped policies come precompiled). */
export function crypto(): typeof import('node:crypto') {
  return (cryptoModule ??= require('node:crypto') as typeof import('node:crypto'));
}
