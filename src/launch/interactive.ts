// Interactive pairs (ICPC/Codeforces interactive problems): a solution and
// an interactor in two sandboxes, each one's stdout the other's stdin, each
// with its own limits.
import { native } from '../native.js';
import type { SandboxOptions } from './options.js';
import { makePipe, spawn, type RunResult, type SandboxProcess } from './sandbox.js';

export interface Party {
  argv: string[];
  /** Its own sandbox and limits; stdin and stdout are the pair's. */
  options?: Omit<SandboxOptions, 'stdin' | 'stdout'>;
}

export interface InteractiveResult {
  solution: RunResult;
  interactor: RunResult;
  /** Which ended first; its status says why. */
  first: 'solution' | 'interactor';
}

export async function runInteractive(solution: Party, interactor: Party): Promise<InteractiveResult> {
  const [toInteractorR, toInteractorW] = makePipe('interactive-pipe');
  let toSolution: [number, number];
  try {
    toSolution = makePipe('interactive-pipe');
  } catch (e) {
    native.close(toInteractorR);
    native.close(toInteractorW);
    throw e;
  }
  const [toSolutionR, toSolutionW] = toSolution;
  const ours = [toInteractorR, toInteractorW, toSolutionR, toSolutionW];
  let sol: SandboxProcess | undefined;
  let inter: SandboxProcess;
  try {
    sol = spawn(solution.argv, { stderr: 'capture', ...solution.options, stdin: { fd: toSolutionR }, stdout: { fd: toInteractorW } });
    inter = spawn(interactor.argv, { stderr: 'capture', ...interactor.options, stdin: { fd: toInteractorR }, stdout: { fd: toSolutionW } });
  } catch (e) {
    sol?.kill();
    throw e;
  } finally {
    // The sandboxes hold their own copies: ours would keep EOF from coming.
    for (const fd of ours) native.close(fd);
  }
  let first: InteractiveResult['first'] | undefined;
  const [s, i] = await Promise.all([
    sol.wait().then((r) => ((first ??= 'solution'), r)),
    inter.wait().then((r) => ((first ??= 'interactor'), r)),
  ]);
  // Which ended first, by the clock inside each sandbox; delivery order only
  // when a sandbox could not say (its init was killed).
  if (s.endedNs !== undefined && i.endedNs !== undefined) first = s.endedNs <= i.endedNs ? 'solution' : 'interactor';
  return { solution: s, interactor: i, first: first! };
}
