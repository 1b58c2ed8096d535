// brig completion bash|zsh|fish: the verbs and each verb's flags, read from
// the verbs' own --help (so a verb added later completes without an edit here).
import { formatHelp, helpSpec, parseArgs, positionals, UsageError } from './args.js';
import { verbs } from './main.js';

interface VerbFlags {
  verb: string;
  summary: string;
  flags: { long: string; short?: string; value: boolean }[];
}

async function helpOf(verb: string): Promise<string> {
  const write = process.stdout.write.bind(process.stdout);
  let text = '';
  process.stdout.write = ((chunk: string | Uint8Array) => {
    text += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString();
    return true;
  }) as typeof process.stdout.write;
  try {
    await verbs[verb].main(['--help']);
  } catch {
    // a verb whose help fails completes with no flags
  } finally {
    process.stdout.write = write;
  }
  return text;
}

async function collect(): Promise<VerbFlags[]> {
  const out: VerbFlags[] = [];
  for (const [verb, v] of Object.entries(verbs)) {
    if (v.hidden) continue;
    const text = await helpOf(verb);
    const flags = [...text.matchAll(/^ {2}(?:-(\w), )? *--([\w-]+)( [A-Z])?/gm)].map((m) => ({ long: m[2], short: m[1], value: Boolean(m[3]) }));
    out.push({ verb, summary: v.summary, flags });
  }
  return out;
}

const IMAGE_VERBS = ['run', 'rmi', 'inspect', 'save', 'push', 'tag', 'commit'];

function bash(all: VerbFlags[]): string {
  const cases = all.map((v) => `    ${v.verb}) opts="${v.flags.flatMap((f) => [`--${f.long}`, ...(f.short ? [`-${f.short}`] : [])]).join(' ')}" ;;`).join('\n');
  return `# brig completion for bash: source it, or put it in ~/.local/share/bash-completion/completions/brig
_brig() {
  local cur=\${COMP_WORDS[COMP_CWORD]} verb=\${COMP_WORDS[1]} opts=""
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=($(compgen -W "${all.map((v) => v.verb).join(' ')}" -- "$cur"))
    return
  fi
  case "$verb" in
${cases}
  esac
  if [[ "$cur" == -* ]]; then
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
    return
  fi
  case "$verb" in
    ${IMAGE_VERBS.join('|')}) COMPREPLY=($(compgen -W "$(brig images --format '{{.Repository}}:{{.Tag}}' 2>/dev/null)" -- "$cur") $(compgen -f -- "$cur")) ;;
    *) COMPREPLY=($(compgen -f -- "$cur")) ;;
  esac
}
complete -F _brig brig
`;
}

function zsh(all: VerbFlags[]): string {
  return `#compdef brig
# brig completion for zsh: source it (it uses zsh's bash completion layer)
autoload -U +X bashcompinit && bashcompinit
${bash(all).split('\n').slice(1).join('\n')}`;
}

function fish(all: VerbFlags[]): string {
  const q = (s: string) => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
  const lines = [`# brig completion for fish: save as ~/.config/fish/completions/brig.fish`, 'complete -c brig -f'];
  for (const v of all) lines.push(`complete -c brig -n __fish_use_subcommand -a ${v.verb} -d ${q(v.summary)}`);
  for (const v of all)
    for (const f of v.flags) lines.push(`complete -c brig -n '__fish_seen_subcommand_from ${v.verb}' -l ${f.long}${f.short ? ` -s ${f.short}` : ''}${f.value ? ' -r' : ''}`);
  lines.push(`complete -c brig -n '__fish_seen_subcommand_from ${IMAGE_VERBS.join(' ')}' -a '(brig images --format "{{.Repository}}:{{.Tag}}" 2>/dev/null)'`);
  return lines.join('\n') + '\n';
}

export const completionHelp = formatHelp('brig completion bash|zsh|fish', 'A completion script for your shell, e.g. brig completion bash > ~/.local/share/bash-completion/completions/brig', [helpSpec]);

export async function completionCommand(argv: string[]): Promise<number> {
  const p = parseArgs(argv, [helpSpec]);
  if (p.flags.has('help')) {
    process.stdout.write(completionHelp);
    return 0;
  }
  const [shell] = positionals(p, 'brig completion bash|zsh|fish', 1);
  const make = { bash, zsh, fish }[shell];
  if (!make) throw new UsageError(`no completion for ${JSON.stringify(shell)}: bash, zsh or fish`);
  process.stdout.write(make(await collect()));
  return 0;
}
