export { run, spawn, SandboxProcess, type RunResult, type RunStatus, type RunTimings, type SeccompDenial } from './launch/sandbox.js';
export { type SandboxOptions, type BindMount, type TmpfsMount, type StdinOption, type OutputOption, type RlimitName, type RlimitValue, parseSize, DEFAULT_PATH, DEFAULT_UID, DEFAULT_GID } from './launch/options.js';
export { BrigError, OptionsError, ProfileError, SetupError, type ProfileProblem, type SetupErrorInfo } from './errors.js';
export {
  defineProfile,
  resolveProfile,
  validateProfile,
  listProfiles,
  profileSearchPath,
  SHIPPED_PROFILE_DIR,
  type Profile,
  type ProfileOption,
  type ResolvedProfile,
  type SandboxPolicy,
} from './profile/index.js';
export { checkProfile, type ProfileCheck } from './profile/check.js';
export { setLogLevel } from './log.js';
export { createBox, openBox, Box, boxRoot, type BoxOptions, type BoxRunResult } from './launch/box.js';
export { isolateMeta, reportJson } from './launch/report.js';
export { runInteractive, type InteractiveResult, type Party } from './launch/interactive.js';
export { createPool, Pool, PoolLease, type PoolOptions, type PoolRunOptions, type PoolSlot } from './launch/pool.js';
export { pull, push, login, parseRemoteRef, RegistryError, type PullOptions, type PullResult, type PushOptions, type PushResult, type LayerProgress, type RemoteRef, type Credentials } from './image/registry.js';
export { createServer, type BrigServer, type ServerOptions, type ServeConfig, type JobQueue } from './server/api.js';
export { listen, SandboxListener, type ListenOptions, type ConnectionEvent } from './net/listen.js';
export { parsePublish, DEFAULT_HOST_IP, type PublishedPort, type PublishOption, type NetworkInfo, type NetworkMode } from './net/index.js';
export { createContainer, listContainers, getContainer, startAll, Container, ContainerError, type ContainerOptions, type ContainerRecord, type ContainerStats, type LogEntry, type RestartPolicy } from './container/index.js';
