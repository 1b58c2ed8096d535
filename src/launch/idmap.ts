// User and group id maps. The default is a single-id map the parent writes
// itself (the caller's id becomes the sandbox's id). A multi-id map, needed
// for images whose files belong to many owners, can only be written by the
// distribution's setuid newuidmap/newgidmap, within the subordinate ranges an
// administrator granted the user in /etc/subuid and /etc/subgid.
import { accessSync, constants as fsConstants, readFileSync } from 'node:fs';
import { constants as osConstants, userInfo } from 'node:os';
import { setupErrorInfo, type SetupErrorInfo } from '../errors.js';
import { childProcess } from '../builtins.js';

export interface SubIdRange {
  start: number;
  count: number;
}

/** The caller's ranges in an /etc/subuid-format file (entries name the user or its number). */
export function subIdRanges(file: string, user: string, id: number): SubIdRange[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  const out: SubIdRange[] = [];
  for (const line of text.split('\n')) {
    const [who, start, count] = line.trim().split(':');
    if (who !== user && who !== String(id)) continue;
    const s = Number(start);
    const c = Number(count);
    if (Number.isSafeInteger(s) && Number.isSafeInteger(c) && c > 0) out.push({ start: s, count: c });
  }
  return out;
}

/**
 * Map lines (inside, outside, count): the sandbox's id is the caller's own,
 * and ids 0..count around it come from the subordinate range, so every id a
 * layer may use below `count` has an owner.
 */
export function multiMap(sandboxId: number, callerId: number, range: SubIdRange): [number, number, number][] {
  const lines: [number, number, number][] = [];
  const below = Math.min(sandboxId, range.count);
  if (below > 0) lines.push([0, range.start, below]);
  lines.push([sandboxId, callerId, 1]);
  const above = range.count - below;
  if (above > 0 && sandboxId < range.count) lines.push([sandboxId + 1, range.start + below, above]);
  return lines;
}

function findTool(name: string): string | null {
  for (const dir of ['/usr/bin', '/bin', '/usr/sbin', '/sbin', '/usr/local/bin']) {
    try {
      accessSync(`${dir}/${name}`, fsConstants.X_OK);
      return `${dir}/${name}`;
    } catch {
      // not here
    }
  }
  return null;
}

export interface MultiMapPlan {
  uid: [number, number, number][];
  gid: [number, number, number][];
  newuidmap: string;
  newgidmap: string;
}

/** What a multi-id map needs, or the setup error saying what is missing and how to get it. */
export function planMultiMap(sandboxUid: number, sandboxGid: number, files = { subuid: '/etc/subuid', subgid: '/etc/subgid' }): MultiMapPlan | { error: SetupErrorInfo } {
  const newuidmap = findTool('newuidmap');
  const newgidmap = findTool('newgidmap');
  if (!newuidmap || !newgidmap) return { error: setupErrorInfo('id-map', osConstants.errno.ENOENT, 'newuidmap', 'a multi-id map needs newuidmap and newgidmap: apt-get install uidmap') };
  // A uid with no passwd entry has no name: its ranges are found by number.
  let username = String(process.getuid!());
  try {
    username = userInfo().username;
  } catch {
    // no entry
  }
  const me = { username, uid: process.getuid!(), gid: process.getgid!() };
  const uids = subIdRanges(files.subuid, me.username, me.uid);
  const gids = subIdRanges(files.subgid, me.username, me.uid);
  if (!uids.length) return { error: setupErrorInfo('id-map', osConstants.errno.ENOENT, files.subuid, `no subordinate uids for ${me.username}: ask an admin for a range (usermod --add-subuids FIRST-LAST ${me.username})`) };
  if (!gids.length) return { error: setupErrorInfo('id-map', osConstants.errno.ENOENT, files.subgid, `no subordinate gids for ${me.username}: ask an admin for a range (usermod --add-subgids FIRST-LAST ${me.username})`) };
  return { uid: multiMap(sandboxUid, me.uid, uids[0]), gid: multiMap(sandboxGid, me.gid, gids[0]), newuidmap, newgidmap };
}

// Whether a multi-id map can be had (tools and both ranges), for idMap
// 'auto'; the answer is kept a few seconds (a run would read /etc/subuid,
// /etc/subgid and /etc/passwd for it).
let available: { at: number; yes: boolean } | undefined;
export function multiMapAvailable(): boolean {
  const now = Date.now();
  if (!available || now - available.at > 5000) available = { at: now, yes: !('error' in planMultiMap(0, 0)) };
  return available.yes;
}

function runTool(tool: string, pid: number, lines: [number, number, number][]): Promise<void> {
  return new Promise((resolve, reject) => {
    childProcess().execFile(tool, [String(pid), ...lines.flat().map(String)], { timeout: 10000 }, (err, _out, stderr) => {
      if (err) reject(new Error(`${tool}: ${stderr.trim() || err.message}`));
      else resolve();
    });
  });
}

/** Writes both maps of the waiting child `pid`. */
export async function writeMultiMap(pid: number, plan: MultiMapPlan): Promise<void> {
  await Promise.all([runTool(plan.newuidmap, pid, plan.uid), runTool(plan.newgidmap, pid, plan.gid)]);
}
