#!/bin/sh
# Start-up of brig's CLI against Node's own floor, with hyperfine (apt-get
# install hyperfine), for docs/agent.md's "lean start" figures. Prints mean
# wall time and CPU time (user+sys) per command: on a shared machine the CPU
# time is the steadier of the two. A user snapshot is built to show what
# --snapshot-blob costs by itself (Node 20 can't import ESM from a snapshot's
# main, so the CLI itself can't be in one without a bundler).
set -eu
cd "$(dirname "$0")/.."
runs=${RUNS:-15}
tmp=$(mktemp -d)
trap 'for p in $(grep -o "agent [0-9]*: listening" "$tmp/brig/agent.log" 2>/dev/null | cut -d" " -f2 | tr -d :); do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"' EXIT
printf '%s\n' "require('v8').startupSnapshot.setDeserializeMainFunction(() => {});" > "$tmp/trivial.cjs"
node --snapshot-blob "$tmp/trivial.blob" --build-snapshot "$tmp/trivial.cjs"
export XDG_RUNTIME_DIR="$tmp" BRIG_AGENT_IDLE=60
bin/brig run -- /bin/true # starts this measurement's own agent
hyperfine -N --warmup 2 --runs "$runs" --export-json "$tmp/h.json" \
  '/bin/true' \
  'node -e 0' \
  "node --snapshot-blob $tmp/trivial.blob" \
  'node bin/brig-node --version' \
  'env BRIG_NO_AGENT=1 bin/brig run -- /bin/true' \
  'node -- bin/brig-node run -- /bin/true' \
  'bin/brig run -- /bin/true' \
  'build/Release/brig-client run -- /bin/true' >/dev/null
node -e '
const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).results;
const base = r.find((x) => x.command === "node -e 0");
const cpu = (x) => (x.user + x.system) * 1000;
for (const x of r) console.log(`${x.command.replace(/\/tmp\/[^ ]*\//, "")}`.padEnd(48), `${(x.mean * 1000).toFixed(1).padStart(8)} ms wall ${(x.mean / base.mean).toFixed(2).padStart(6)}x`, `${cpu(x).toFixed(1).padStart(8)} ms cpu ${(cpu(x) / cpu(base)).toFixed(2).padStart(6)}x  (vs node -e 0)`);
' "$tmp/h.json"
