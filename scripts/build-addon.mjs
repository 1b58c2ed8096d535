#!/usr/bin/env node
// Builds addon/ with node-gyp against the headers of the Node that runs this
// script, so `npm install` never downloads anything. node-gyp's own default is
// to fetch a header tarball, which fails on an offline machine and builds
// against the wrong ABI when several Nodes are installed.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

function findNodeGyp() {
  const candidates = [
    process.env.npm_config_node_gyp,
    join(dirname(process.execPath), '../lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js'),
    join(root, 'node_modules/node-gyp/bin/node-gyp.js'),
  ];
  for (const c of candidates) if (c && existsSync(c)) return c;
  return null;
}

// A Node installed from a distribution package or an official tarball keeps
// its headers in <prefix>/include/node; that prefix is what --nodedir wants.
function findNodeDir() {
  const fromEnv = process.env.npm_config_nodedir;
  const prefix = resolve(dirname(process.execPath), '..');
  for (const dir of [fromEnv, prefix]) {
    if (dir && existsSync(join(dir, 'include/node/node_api.h'))) return dir;
  }
  return null;
}

const gyp = findNodeGyp();
if (!gyp) {
  console.error('brig: cannot find node-gyp (looked beside npm and in node_modules); install npm or node-gyp');
  process.exit(1);
}
const args = [gyp, 'rebuild', '--directory', root];
const nodedir = findNodeDir();
if (nodedir) args.push(`--nodedir=${nodedir}`);
else console.error('brig: no Node headers under the node prefix; node-gyp will try its header cache');
if (process.env.BRIG_DEBUG_BUILD) args.push('--debug');
const r = spawnSync(process.execPath, args, { stdio: 'inherit' });
process.exit(r.status ?? 1);
