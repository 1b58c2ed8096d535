// brig doctor: what this host gives a rootless user, checked for real where
// a check can be made (a sandbox is started, an overlay is mounted), and for
// each missing piece the fix.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { release, tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { chooseBackend, discover } from './cgroup/hierarchy.js';
import { kernelAtLeast } from './kernel.js';
import { planMultiMap } from './launch/idmap.js';
import { native } from './native.js';
import { spawn } from './launch/sandbox.js';
import { findPasta, pastaVersion } from './net/pasta.js';

export type CheckState = 'ok' | 'warn' | 'fail';

export interface Check {
  name: string;
  state: CheckState;
  detail: string;
  fix?: string;
}

function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** A user systemd brig can ask for a delegated scope: its runtime directory answers. */
function userSystemd(): boolean {
  const uid = process.getuid?.() ?? 0;
  const dir = process.env.XDG_RUNTIME_DIR || `/run/user/${uid}`;
  return existsSync(join(dir, 'systemd', 'private')) || existsSync(join(dir, 'bus'));
}

/**
 * The fix that works on this host: a user systemd's delegated scope where
 * there is one; else the admin makes a subtree in each hierarchy brig
 * needs, gives it to the user, and BRIG_CGROUP_PARENT names it.
 */
export function cgroupFix(h: ReturnType<typeof discover>, missing: string[], why: string): string {
  const user = userInfo().username;
  const uid = process.getuid?.() ?? 0;
  if (uid === 0) return why.replace(/^.*?\)\. /, '');
  if (userSystemd()) return `run brig in a delegated scope of your user systemd: systemd-run --user --scope -p Delegate=yes -- brig ...`;
  const name = `brig-${user}`;
  const dirs = new Set<string>();
  if (h.v2 && !h.v1.size) dirs.add(join(h.v2.mount, name));
  for (const c of missing) {
    const place = h.v1.get(c);
    if (place) dirs.add(join(place.mount, name));
  }
  if (missing.includes('cpu') && h.v1.get('cpuacct')) dirs.add(join(h.v1.get('cpuacct')!.mount, name));
  if (!dirs.size) return 'this host mounts no cgroup hierarchy for these controllers; an admin has to mount one';
  const list = [...dirs].join(' ');
  // A new v1 cpuset cgroup starts with no CPUs and no memory nodes: nothing can
  // join it or its children (brig's cgroup-create fails) until they are copied in.
  const cpuset = h.v1.get('cpuset');
  const seed = cpuset && dirs.has(join(cpuset.mount, name))
    ? `; for f in cpuset.cpus cpuset.mems; do cat ${join(cpuset.mount, '$f')} > ${join(cpuset.mount, name, '$f')}; done`
    : '';
  return `no user systemd here: an admin runs  sudo sh -c 'for d in ${list}; do mkdir -p $d && chown -R ${user} $d; done${seed}'  and you set  export BRIG_CGROUP_PARENT=${name}`;
}

export async function doctor(): Promise<Check[]> {
  const checks: Check[] = [];
  const add = (c: Check) => checks.push(c);

  add(
    kernelAtLeast('5.12')
      ? { name: 'kernel', state: 'ok', detail: release() }
      : kernelAtLeast('5.6')
        ? { name: 'kernel', state: 'warn', detail: `${release()}: works; 5.12+ gives mount_setattr`, fix: 'a newer kernel' }
        : { name: 'kernel', state: 'fail', detail: `${release()}: brig needs 5.6+ (clone3, pidfd, openat2 to resolve paths inside an image)`, fix: 'a kernel from 5.6 on' },
  );

  // User namespaces: the knobs distributions use, then a real sandbox.
  const maxNs = Number(read('/proc/sys/user/max_user_namespaces') ?? '1');
  const debianKnob = read('/proc/sys/kernel/unprivileged_userns_clone');
  const apparmor = read('/proc/sys/kernel/apparmor_restrict_unprivileged_userns');
  const p = spawn(['/bin/true'], { stdout: 'ignore', stderr: 'ignore' });
  const r = await p.wait();
  if (r.status === 'ok') add({ name: 'user namespaces', state: 'ok', detail: 'a sandbox started and ran /bin/true (all namespaces, default seccomp policy)' });
  else {
    let fix = 'see the error';
    if (maxNs === 0) fix = 'sysctl -w user.max_user_namespaces=15000';
    else if (debianKnob === '0') fix = 'sysctl -w kernel.unprivileged_userns_clone=1';
    else if (apparmor === '1') fix = 'sysctl -w kernel.apparmor_restrict_unprivileged_userns=0, or an AppArmor profile allowing userns for node';
    add({ name: 'user namespaces', state: 'fail', detail: r.error?.message ?? r.status, fix });
  }
  add({ name: 'clone3 and pidfd', state: p.clone3 ? 'ok' : 'warn', detail: p.clone3 ? 'clone3 with CLONE_PIDFD' : 'no clone3: the clone fallback is used', ...(p.clone3 ? {} : { fix: 'a kernel from 5.3 on' }) });

  const actions = read('/proc/sys/kernel/seccomp/actions_avail') ?? '';
  add(
    actions.includes('user_notif')
      ? { name: 'seccomp', state: 'ok', detail: `filters with user notification (${actions})` }
      : { name: 'seccomp', state: 'fail', detail: `no user notification (${actions || 'seccomp unavailable'})`, fix: 'a kernel from 5.5 on with CONFIG_SECCOMP_FILTER' },
  );

  // cgroups: which layout, and which controllers brig could use.
  const h = discover(process.env.BRIG_CGROUP_PARENT || undefined);
  const layout = h.v2 && h.v1.size ? 'hybrid (v1 controllers, v2 beside them)' : h.v2 ? 'v2' : h.v1.size ? 'v1' : 'none';
  const usable: string[] = [];
  const missing: string[] = [];
  let why = '';
  for (const c of ['memory', 'pids', 'cpu', 'cpuset'] as const) {
    const b = chooseBackend(h, [c]);
    if (b.kind === 'none') {
      missing.push(c);
      why = b.why;
    } else usable.push(`${c} (${b.kind})`);
  }
  add(
    missing.length
      ? {
          name: 'cgroups',
          state: 'warn',
          detail: `layout ${layout}; usable: ${usable.join(', ') || 'none'}; not usable: ${missing.join(', ')}; limits for those fall back to rlimits (RunResult.enforcement says which)`,
          fix: cgroupFix(h, missing, why),
        }
      : { name: 'cgroups', state: 'ok', detail: `layout ${layout}; usable: ${usable.join(', ')}` },
  );

  // overlayfs inside a user namespace (images need it).
  let overlay: Check;
  const dir = mkdtempSync(join(tmpdir(), 'brig-doctor-'));
  try {
    const script = `cd "${dir}" && mkdir l u w m && echo x > l/f && mount -t overlay overlay -o lowerdir=l,upperdir=u,workdir=w m && cat m/f && umount m`;
    const out = execFileSync('unshare', ['-Urm', 'sh', '-c', script], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    overlay = out.trim() === 'x' ? { name: 'overlayfs in a user namespace', state: 'ok', detail: 'mounted and read' } : { name: 'overlayfs in a user namespace', state: 'fail', detail: out };
  } catch (e) {
    const msg = ((e as { stderr?: string }).stderr || (e as Error).message).trim().split('\n')[0];
    overlay = /ENOENT|not found/.test(msg)
      ? { name: 'overlayfs in a user namespace', state: 'warn', detail: 'not checked: no unshare(1) here', fix: 'apt-get install util-linux' }
      : { name: 'overlayfs in a user namespace', state: 'fail', detail: msg, fix: 'a kernel from 5.11 on (overlay in user namespaces), or fuse-overlayfs' };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  add(overlay);

  const ll = native.landlockAbi();
  add(ll > 0 ? { name: 'landlock', state: 'ok', detail: `ABI ${ll}` } : { name: 'landlock', state: 'warn', detail: ll === -95 ? 'disabled (not in the LSM list)' : `unavailable (errno ${-ll})`, fix: 'boot with lsm=...,landlock (kernel 5.13+)' });

  const m = planMultiMap(1000, 1000);
  add('error' in m ? { name: 'multi-id maps', state: 'warn', detail: m.error.message, fix: 'apt-get install uidmap, and subordinate ids in /etc/subuid and /etc/subgid' } : { name: 'multi-id maps', state: 'ok', detail: `newuidmap, uids ${m.uid.map((l) => l.join(':')).join(' ')}` });
  for (const c of networkChecks()) add(c);
  add(await outboundCheck());
  return checks;
}

/** pasta (network 'pasta', published ports) and what user networks will need: a bridge and a veth pair in a namespace of our own. */
function networkChecks(): Check[] {
  const path = findPasta();
  const pasta: Check = path
    ? { name: 'pasta', state: 'ok', detail: `${path}, ${pastaVersion(path)}` }
    : { name: 'pasta', state: 'warn', detail: "not found: network 'pasta' and published ports cannot work", fix: 'apt-get install passt' };
  let bridge: Check;
  try {
    execFileSync('unshare', ['-Urn', 'sh', '-c', 'ip link add brig-br0 type bridge && ip link add brig-v0 type veth peer name brig-v1 && ip link set brig-v1 master brig-br0'], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 5000 });
    bridge = { name: 'user networks', state: 'ok', detail: 'a bridge and a veth pair can be made in a user-owned network namespace' };
  } catch (e) {
    const msg = ((e as { stderr?: Buffer }).stderr?.toString() || (e as Error).message).trim().split('\n')[0];
    bridge = { name: 'user networks', state: 'warn', detail: `a bridge with a veth pair could not be made: ${msg}`, fix: 'unprivileged user namespaces, iproute2, and the bridge and veth kernel modules' };
  }
  return [pasta, bridge];
}

/** Whether containers on user networks (not --internal) get a way out: a real, throwaway holder with pasta. */
async function outboundCheck(): Promise<Check> {
  const { probeOutbound } = await import('./net/holder.js');
  const r = await probeOutbound();
  return r.ok
    ? { name: 'user networks: outbound', state: 'ok', detail: r.detail }
    : { name: 'user networks: outbound', state: 'warn', detail: `containers on user networks reach only their own network: ${r.detail}`, fix: 'apt-get install passt nftables util-linux' };
}
