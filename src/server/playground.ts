// GET /: one static page to try the service: pick a runtime, edit code and
// stdin, run it through the Piston API, see the output, verdict, time and
// memory. No framework, no external resources: it works offline and its
// Content-Security-Policy lets it talk only to this server.
import type { FastifyInstance } from 'fastify';

const SAMPLES: Record<string, string> = {
  python: 'import sys\nname = sys.stdin.readline().strip() or "world"\nprint(f"hello, {name}")\n',
  c: '#include <stdio.h>\n\nint main(void) {\n  char name[64] = "world";\n  scanf("%63s", name);\n  printf("hello, %s\\n", name);\n  return 0;\n}\n',
  'c++': '#include <iostream>\n#include <string>\n\nint main() {\n  std::string name = "world";\n  std::cin >> name;\n  std::cout << "hello, " << name << "\\n";\n}\n',
  javascript: 'const name = require("fs").readFileSync(0, "utf8").trim() || "world";\nconsole.log(`hello, ${name}`);\n',
  java: 'import java.util.Scanner;\n\npublic class Main {\n  public static void main(String[] args) {\n    Scanner in = new Scanner(System.in);\n    String name = in.hasNext() ? in.next() : "world";\n    System.out.println("hello, " + name);\n  }\n}\n',
  bash: 'read -r name\necho "hello, ${name:-world}"\n',
};

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>brig playground</title>
<style>
  :root { font-family: system-ui, sans-serif; color: #1b1f24; background: #f6f7f9; }
  body { margin: 0 auto; max-width: 1100px; padding: 16px; }
  h1 { font-size: 20px; margin: 0 0 12px; }
  h1 small { font-weight: normal; color: #57606a; font-size: 14px; }
  .bar { display: flex; gap: 8px; align-items: center; margin-bottom: 8px; flex-wrap: wrap; }
  select, input, button { font: inherit; padding: 4px 8px; }
  button { background: #1f6feb; color: white; border: 0; border-radius: 4px; padding: 6px 16px; cursor: pointer; }
  button:disabled { background: #8c959f; }
  .grid { display: grid; grid-template-columns: 3fr 2fr; gap: 12px; }
  textarea { width: 100%; box-sizing: border-box; font: 13px/1.4 ui-monospace, monospace; border: 1px solid #d0d7de; border-radius: 4px; padding: 8px; }
  #code { height: 340px; }
  #stdin { height: 80px; }
  pre { background: #fff; border: 1px solid #d0d7de; border-radius: 4px; padding: 8px; min-height: 40px; margin: 4px 0 10px; white-space: pre-wrap; font: 13px/1.4 ui-monospace, monospace; }
  label { font-size: 13px; color: #57606a; }
  #verdict { font-weight: bold; }
  #verdict.ok { color: #1a7f37; }
  #verdict.bad { color: #cf222e; }
</style>
</head>
<body>
<h1>brig playground <small>rootless sandboxes behind Piston- and Judge0-compatible APIs</small></h1>
<div class="bar">
  <label for="runtime">Runtime</label> <select id="runtime"></select>
  <label for="token">X-Auth-Token</label> <input id="token" type="password" size="14" placeholder="(if required)">
  <button id="run">Run</button>
  <span id="verdict"></span>
</div>
<div class="grid">
  <div>
    <label for="code">Code</label>
    <textarea id="code" spellcheck="false"></textarea>
    <label for="stdin">stdin</label>
    <textarea id="stdin" spellcheck="false">brig</textarea>
  </div>
  <div>
    <label>stdout</label><pre id="stdout"></pre>
    <label>stderr</label><pre id="stderr"></pre>
    <label>compile output</label><pre id="compile"></pre>
    <label>time / memory</label><pre id="stats"></pre>
  </div>
</div>
<script>
const SAMPLES = ${JSON.stringify(SAMPLES)};
const $ = (id) => document.getElementById(id);
let runtimes = [];
function headers() {
  const h = { 'content-type': 'application/json' };
  if ($('token').value) h['X-Auth-Token'] = $('token').value;
  return h;
}
async function load() {
  const res = await fetch('/api/v2/runtimes', { headers: headers() });
  runtimes = res.ok ? await res.json() : [];
  $('runtime').innerHTML = runtimes.map((r, i) => '<option value="' + i + '">' + r.language + ' ' + r.version + '</option>').join('');
  const py = runtimes.findIndex((r) => r.language === 'python');
  if (py >= 0) $('runtime').value = String(py);
  pick();
}
function pick() {
  const r = runtimes[Number($('runtime').value)];
  if (r) $('code').value = SAMPLES[r.language] || '';
}
async function run() {
  const r = runtimes[Number($('runtime').value)];
  if (!r) return;
  $('run').disabled = true;
  $('verdict').textContent = 'running…';
  $('verdict').className = '';
  try {
    const res = await fetch('/api/v2/execute', { method: 'POST', headers: headers(), body: JSON.stringify({ language: r.language, version: r.version, files: [{ content: $('code').value }], stdin: $('stdin').value }) });
    const out = await res.json();
    if (!res.ok) throw new Error(out.message || res.statusText);
    const stage = out.run;
    $('stdout').textContent = stage.stdout;
    $('stderr').textContent = stage.stderr;
    $('compile').textContent = out.compile ? (out.compile.stdout + out.compile.stderr) : '';
    const failed = stage.status !== null || (out.compile && out.compile.status !== null);
    $('verdict').textContent = failed ? (stage.status || 'compile') + ': ' + (stage.message || 'failed') : 'OK (exit ' + stage.code + ')';
    $('verdict').className = failed ? 'bad' : 'ok';
    $('stats').textContent = 'cpu ' + stage.cpu_time + ' ms, wall ' + stage.wall_time + ' ms, memory ' + (stage.memory / 1048576).toFixed(1) + ' MiB';
  } catch (e) {
    $('verdict').textContent = 'error: ' + e.message;
    $('verdict').className = 'bad';
  } finally {
    $('run').disabled = false;
  }
}
$('runtime').addEventListener('change', pick);
$('run').addEventListener('click', run);
load();
</script>
</body>
</html>
`;

export async function playgroundRoutes(app: FastifyInstance): Promise<void> {
  app.get('/', async (_req, reply) =>
    reply
      .type('text/html; charset=utf-8')
      .header('Content-Security-Policy', "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'")
      .header('X-Content-Type-Options', 'nosniff')
      .send(PAGE),
  );
}
