// A project's networks are brig's user networks (src/net/networks.ts):
// loaded with the lifecycle verbs, not with `compose config`.
import type * as Networks from '../net/networks.js';

export type NetworkApi = typeof Networks;

/** The user-network library. */
export async function networkApi(): Promise<NetworkApi> {
  return import('../net/networks.js');
}
