// Layers whose files belong to many owners. An unprivileged user cannot give
// a host file to another uid, but a process in a user namespace with a
// multi-id map can: inside it, the caller is root (uid 0) and ids 1..N are
// the caller's subordinate range (/etc/subuid, written by newuidmap). So the
// store unpacks as the caller, then a short-lived init in such a namespace,
// with every capability there, chowns the files the layer gave other owners
// (a plan of lchown steps and an exit; no program runs). Image runs then use
// the same map, and the files show their owners inside. Without newuidmap
// or a range, every file stays the caller's (root inside), and brig says so
// once. Kept containers of such images hold files the caller cannot read or
// remove on the host; ownersHelper runs brig's own Node helper inside the
// same map to pack or remove them.
import { closeSync, openSync, readFileSync, rmSync } from 'node:fs';
import { constants as osConstants, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { log } from '../log.js';
import { native, ReportKind, StepKind, type NativeExit, type NativeStep } from '../native.js';
import { planMultiMap, writeMultiMap, type MultiMapPlan } from '../launch/idmap.js';
import { errnoName } from '../errors.js';
import { AUDIT_ARCH, hostArch } from '../seccomp/index.js';
import { ImageError } from './store.js';

/** [path, uid, gid]: a host path and the owner it has inside an image (0 is the caller). */
export type Owner = [string, number, number];

let plan: MultiMapPlan | { error: { message: string } } | undefined;
let warned = false;

/** The multi-id map for uid/gid 0 (caller) and up, or why there is none. */
export function ownersMap(): MultiMapPlan | { error: { message: string } } {
  return (plan ??= planMultiMap(0, 0));
}

/** Whether ids up to `maxId` can be given owners here; if not, says so once. */
export function canKeepOwners(maxId: number): boolean {
  const p = ownersMap();
  const range = 'error' in p ? 0 : Math.min(p.uid.reduce((a, [inside, , count]) => Math.max(a, inside + count), 0), p.gid.reduce((a, [inside, , count]) => Math.max(a, inside + count), 0));
  if (!('error' in p) && maxId < range) return true;
  if (!warned) {
    warned = true;
    log().warn({ why: 'error' in p ? p.error.message : `ids up to ${maxId} are beyond the subordinate range (${range})` }, 'image layers: files of other owners are kept as yours (root inside); a multi-id map needs newuidmap and /etc/subuid, /etc/subgid ranges');
  }
  return false;
}

const CLONE_NEWUSER = 0x10000000;

/**
 * Runs `steps` as init of a fresh user namespace with the multi-id map and
 * every capability there (no other namespace: paths are the host's).
 * Resolves with init's exit status; a failed step is an ImageError naming it.
 */
async function inOwnersNamespace(what: string, steps: NativeStep[], command: { argv: string[]; execPaths: string[]; stdio: [number, number, number] } = { argv: ['/'], execPaths: [], stdio: [-1, -1, -1] }): Promise<NativeExit> {
  const p = ownersMap();
  if ('error' in p) throw new ImageError(`${what}: ${p.error.message}`);
  let done!: (e: NativeExit) => void;
  const exited = new Promise<NativeExit>((r) => (done = r));
  const info = native.launch(
    {
      steps,
      ...command,
      envp: [],
      namespaces: CLONE_NEWUSER,
      uidMap: '',
      gidMap: '',
      deferRelease: true,
      initName: 'brig-owners',
      noClone3: process.env.BRIG_NO_CLONE3 === '1',
      timings: false,
      notify: 0,
      auditArch: AUDIT_ARCH[hostArch()],
    },
    (e) => done(e),
  );
  try {
    await writeMultiMap(info.pid, p);
  } catch (e) {
    native.kill(info.pidfd, osConstants.signals.SIGKILL);
    await exited;
    throw new ImageError(`${what}: ${(e as Error).message}`);
  }
  native.release(info.pidfd);
  const ex = await exited;
  const failed = ex.reports.find((r) => r.kind === ReportKind.StepFailed);
  if (failed) throw new ImageError(`${what}: ${steps[failed.step]?.name ?? '?'} ${steps[failed.step]?.path ?? ''} failed: ${errnoName(failed.errno)}`);
  return ex;
}

/**
 * Gives each path its owner, as the multi-id map sees it: uid 0 is the
 * caller, uid k the k-th id of the subordinate range. Paths are host paths.
 */
export async function chownInNamespace(owners: Owner[]): Promise<void> {
  if (!owners.length) return;
  const steps: NativeStep[] = owners.map(([path, uid, gid]) => ({ kind: StepKind.Lchown, name: 'chown', path, a: path, arg0: uid, arg1: gid }));
  steps.push({ kind: StepKind.Exit, name: 'exit' });
  const ex = await inOwnersNamespace('layer owners', steps);
  if (ex.initCode !== 0) throw new ImageError(`layer owners: the helper ended with ${ex.initCode < 0 ? `signal ${ex.initSignal}` : `status ${ex.initCode}`}`);
}

const HELPER = join(dirname(fileURLToPath(import.meta.url)), 'owners-helper.js');

/**
 * Runs brig's owners helper (owners-helper.ts) under Node, as root of the
 * multi-id map: files the sandbox's other users made (a container's upper
 * directory of an image with owners) are then readable and removable, and
 * show the owners they have inside, which is what a layer records. Throws
 * with the helper's stderr when it fails.
 */
export async function ownersHelper(what: string, args: string[]): Promise<void> {
  const errFile = join(tmpdir(), `brig-owners-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}`);
  const err = openSync(errFile, 'w+', 0o600);
  const devnull = openSync('/dev/null', 'r+');
  try {
    const steps: NativeStep[] = [
      { kind: StepKind.Stdio, name: 'stdio' },
      { kind: StepKind.CloseFds, name: 'close-fds' },
      { kind: StepKind.ResetSignals, name: 'reset-signals' },
      { kind: StepKind.Exec, name: 'exec' },
    ];
    const ex = await inOwnersNamespace(what, steps, { argv: [process.execPath, HELPER, ...args], execPaths: [process.execPath], stdio: [devnull, devnull, err] });
    if (ex.initCode !== 0) {
      const text = readFileSync(errFile, 'utf8').trim().split('\n').pop() ?? '';
      throw new ImageError(`${what}: ${text || (ex.initCode < 0 ? `the helper ended by signal ${ex.initSignal}` : `the helper ended with status ${ex.initCode}`)}`);
    }
  } finally {
    closeSync(err);
    closeSync(devnull);
    rmSync(errFile, { force: true });
  }
}
