// User networks come from src/net/networks.ts (branch i24c's contract):
// loaded when there, so that compose builds and runs on a tree without
// them, and says so instead of pretending that services can reach each other.

export interface NetworkApi {
  createNetwork(o: { name: string; subnet?: string; internal?: boolean; labels?: Record<string, string> }): { Name: string; Id: string; Labels?: Record<string, string> };
  listNetworks(): { Name: string; Id: string; Labels?: Record<string, string>; Containers?: Record<string, unknown> }[];
  getNetwork(ref: string): { Name: string; Id: string; Labels?: Record<string, string> };
  removeNetwork(ref: string): void;
  connectNetwork(containerRef: string, network: string, o?: { aliases?: string[] }): Promise<void>;
}

let cached: NetworkApi | null | undefined;

/** The network library, or null when this build has none. */
export async function networkApi(): Promise<NetworkApi | null> {
  if (cached !== undefined) return cached;
  // A variable specifier: the module may not exist in this tree.
  const spec = '../net/networks.js';
  try {
    cached = (await import(spec)) as NetworkApi;
    if (typeof cached.createNetwork !== 'function') cached = null;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ERR_MODULE_NOT_FOUND') throw e;
    cached = null;
  }
  return cached;
}

/**
 * Whether containers on a user network get an interface in it yet: branch
 * i24c committed the records first and the data path after. Until the
 * container's monitor joins a network (it passes prepareNet/netJoin to the sandbox),
 * compose makes the networks (so labels, ps and down are right) but runs
 * each service in a network namespace of its own, and says so.
 */
export async function networksCarryTraffic(): Promise<boolean> {
  if (process.env.BRIG_COMPOSE_NO_NETWORKS === '1') return false;
  const { MONITOR_SCRIPT } = await import('../container/monitor.js');
  const { readFileSync } = await import('node:fs');
  try {
    return /prepareNet|netJoin/.test(readFileSync(MONITOR_SCRIPT, 'utf8'));
  } catch {
    return false;
  }
}

export const NO_DATA_PATH = "user networks carry no traffic yet in this build (their records are made; containers get no interface in them): each service runs in a network namespace of its own, reachable only through its published ports, and services cannot reach each other by name";

export const NO_NETWORKS = 'user networks are not in this build of brig (src/net/networks.ts): each service runs in a network namespace of its own and services cannot reach each other by name';
