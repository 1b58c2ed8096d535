// Events: what changed in the containers' records, as Docker's event
// objects. The monitors (other processes) write the records, so the
// service looks at them: one shared poll while anyone listens.
import { allIds, readRecord, type ContainerRecord } from '../container/state.js';

export interface EngineEvent {
  Type: 'container';
  Action: string;
  Actor: { ID: string; Attributes: Record<string, string> };
  scope: 'local';
  time: number;
  timeNano: number;
  status: string;
  id: string;
  from: string;
}

type Listener = (e: EngineEvent) => void;
const listeners = new Set<Listener>();
let timer: NodeJS.Timeout | undefined;
let seen = new Map<string, { started: string; finished: string; status: string; paused: boolean; name: string; image: string; labels: Record<string, string> }>();

const POLL_MS = 100;

function event(action: string, r: { id: string; name: string; image: string; labels: Record<string, string> }, extra: Record<string, string> = {}): EngineEvent {
  const ns = BigInt(Date.now()) * 1_000_000n;
  return {
    Type: 'container',
    Action: action,
    Actor: { ID: r.id, Attributes: { ...r.labels, image: r.image, name: r.name, ...extra } },
    scope: 'local',
    time: Math.floor(Date.now() / 1000),
    timeNano: Number(ns),
    status: action,
    id: r.id,
    from: r.image,
  };
}

function snapshot(): Map<string, ContainerRecord> {
  const out = new Map<string, ContainerRecord>();
  // Records only read (no lock): a record is replaced whole by rename, never half-written.
  for (const id of allIds()) {
    const r = readRecord(id);
    if (r) out.set(id, r);
  }
  return out;
}

function look(emit: (e: EngineEvent) => void): void {
  const now = snapshot();
  const next: typeof seen = new Map();
  for (const [id, r] of now) {
    const cur = { started: r.State.StartedAt, finished: r.State.FinishedAt, status: r.State.Status, paused: r.State.Paused, name: r.Name, image: r.Config.Image, labels: r.Config.Labels };
    next.set(id, cur);
    const who = { id, name: r.Name, image: r.Config.Image, labels: r.Config.Labels };
    const was = seen.get(id);
    if (!was) {
      emit(event('create', who));
      if (r.State.StartedAt !== '0001-01-01T00:00:00Z') emit(event('start', who));
      if (r.State.Status === 'exited') emit(event('die', who, { exitCode: String(r.State.ExitCode) }));
      continue;
    }
    if (was.name !== r.Name) emit(event('rename', who, { oldName: `/${was.name}` }));
    if (cur.started !== was.started) emit(event('start', who));
    if (cur.paused && !was.paused) emit(event('pause', who));
    if (!cur.paused && was.paused) emit(event('unpause', who));
    if (cur.finished !== was.finished && cur.status !== 'running') emit(event('die', who, { exitCode: String(r.State.ExitCode) }));
  }
  for (const [id, was] of seen) {
    if (now.has(id)) continue;
    const who = { id, name: was.name, image: was.image, labels: was.labels };
    // Gone between two looks: it may have started and died in between (an --rm container).
    if (was.status === 'created') {
      emit(event('start', who));
      emit(event('die', who, { exitCode: '0' }));
    } else if (was.status === 'running' || was.status === 'restarting') emit(event('die', who));
    emit(event('destroy', who));
  }
  seen = next;
}

/** Calls fn with each event from now on; returns the unsubscribe. */
export function watchEvents(fn: Listener): () => void {
  if (listeners.size === 0) {
    // The first look is the baseline: what exists now is not news.
    look(() => {});
    timer = setInterval(() => look((e) => listeners.forEach((l) => l(e))), POLL_MS);
    timer.unref();
  }
  listeners.add(fn);
  return () => {
    listeners.delete(fn);
    if (listeners.size === 0 && timer) {
      clearInterval(timer);
      timer = undefined;
    }
  };
}
