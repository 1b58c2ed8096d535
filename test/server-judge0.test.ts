// brig serve's Judge0 CE API through real HTTP on loopback: every status a
// program can earn, validation as 422 naming the field, base64, fields,
// batches, the reference endpoints, callbacks only to allowlisted hosts.
import assert from 'node:assert/strict';
import { createServer as httpServer, type IncomingMessage } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { crc32, deflateRawSync } from 'node:zlib';
import { guardLeaks } from './helpers.js';
import { startServer, testRuntimes, type Running } from './server-util.js';

const C = 50;
const CPP = 54;
const PY = 71;
const BASH = 46;

/** A zip archive of stored entries (what Judge0's additional_files holds). */
function zip(files: Record<string, string>, deflated: string[] = []): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const [name, text] of Object.entries(files)) {
    const raw = Buffer.from(text);
    const method = deflated.includes(name) ? 8 : 0;
    const data = method ? deflateRawSync(raw) : raw;
    const n = Buffer.from(name);
    const crc = crc32(raw);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(method, 8);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(data.length, 18);
    local.writeUInt32LE(raw.length, 22);
    local.writeUInt16LE(n.length, 26);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(method, 10);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(data.length, 20);
    central.writeUInt32LE(raw.length, 24);
    central.writeUInt16LE(n.length, 28);
    central.writeUInt32LE(offset, 42);
    locals.push(local, n, data);
    centrals.push(central, n);
    offset += 30 + n.length + data.length;
  }
  const cd = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(Object.keys(files).length, 8);
  end.writeUInt16LE(Object.keys(files).length, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, cd, end]);
}

describe('Judge0 CE API', () => {
  let s: Running;
  const extra = testRuntimes();
  let hook: ReturnType<typeof httpServer>;
  let hookPort = 0;
  const received: { method: string; body: any }[] = [];
  before(async () => {
    hook = httpServer((req: IncomingMessage, res) => {
      let body = '';
      req.on('data', (d) => (body += d));
      req.on('end', () => {
        received.push({ method: req.method!, body: JSON.parse(body) });
        res.end('ok');
      });
    });
    await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));
    hookPort = (hook.address() as { port: number }).port;
    s = await startServer({ runtimeDirs: [extra.dir], config: { judge0: { callback_allowlist: [`127.0.0.1:${hookPort}`] } } });
  });
  after(async () => {
    await s.close();
    await new Promise((r) => hook.close(r));
    extra.remove();
  });
  const submit = async (body: object, query = 'wait=true') => s.post(`/submissions?${query}`, body);
  const statusOf = async (body: object) => {
    const r = await submit(body);
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return r.body;
  };

  it('every status a program can earn', async () => {
    const cases: [string, object, number, RegExp?][] = [
      ['accepted (trailing whitespace per line ignored)', { language_id: PY, source_code: 'print("a  ")\nprint("b")\nprint()', expected_output: 'a\nb' }, 3],
      ['wrong answer', { language_id: PY, source_code: 'print(41)', expected_output: '42' }, 4],
      ['time limit', { language_id: PY, source_code: 'while True: pass', cpu_time_limit: 0.3, cpu_extra_time: 0 }, 5, /Time limit exceeded/],
      ['wall time limit', { language_id: BASH, source_code: 'sleep 10', wall_time_limit: 1 }, 5, /wall clock/],
      ['compilation error', { language_id: C, source_code: 'int main( { return 0; }' }, 6],
      ['SIGSEGV', { language_id: C, source_code: 'int main(void) { volatile int *p = 0; *p = 1; return 0; }' }, 7, /Caught fatal signal 11/],
      ['SIGXFSZ', { language_id: C, source_code: '#include <stdio.h>\nint main(void) { FILE *f = fopen("/tmp/big", "w"); for (int i = 0; i < 100000; i++) fputs("0123456789", f); fclose(f); return 0; }', max_file_size: 64 }, 8],
      ['output flood (Judge0: SIGXFSZ on its output file)', { language_id: PY, source_code: 'while True: print("x" * 1000)', max_file_size: 64 }, 8, /Output limit exceeded/],
      ['SIGFPE', { language_id: C, source_code: 'int main(int argc, char **argv) { (void)argv; return 100 / (argc - 1); }' }, 9, /Caught fatal signal 8/],
      ['SIGABRT', { language_id: CPP, source_code: '#include <cstdlib>\nint main() { std::abort(); }' }, 10, /Caught fatal signal 6/],
      ['NZEC', { language_id: PY, source_code: 'import sys\nsys.exit(3)' }, 11, /Exited with error status 3/],
      ['other signal', { language_id: PY, source_code: 'import os, signal\nos.kill(os.getpid(), signal.SIGUSR1)' }, 12, /Caught fatal signal 10/],
      ['exec format error', { language_id: 9002, source_code: 'this is not a program' }, 14],
      ['internal error (brig could not start the program)', { language_id: 9001, source_code: 'x' }, 13, /exec/],
    ];
    for (const [what, body, id, message] of cases) {
      const r = await statusOf(body);
      assert.equal(r.status.id, id, `${what}: ${JSON.stringify(r)}`);
      if (message) assert.match(r.message, message, what);
    }
  });

  it('a memory hog: a runtime error (Judge0 has no memory verdict), never accepted', async () => {
    const r = await statusOf({
      language_id: C,
      source_code: '#include <stdlib.h>\n#include <string.h>\nint main(void) { for (int i = 0; i < 64; i++) { char *p = malloc(8 << 20); if (!p) return 1; memset(p, 1, 8 << 20); } return 0; }',
      memory_limit: 32000,
    });
    assert.ok([7, 11, 12].includes(r.status.id), JSON.stringify(r));
  });

  it('compile output, stderr, exit code and signal in fields=*; the time and memory figures', async () => {
    const r = await submit({ language_id: C, source_code: '#include <stdio.h>\nint main(void) { fprintf(stderr, "warn\\n"); printf("%d\\n", 6 * 7); int unused; return 0; }', compiler_options: '-Wall' }, 'wait=true&fields=*');
    assert.equal(r.body.status_id, 3);
    assert.equal(r.body.stdout, '42\n');
    assert.equal(r.body.stderr, 'warn\n');
    assert.match(r.body.compile_output, /unused/);
    assert.equal(r.body.exit_code, 0);
    assert.equal(r.body.exit_signal, null);
    assert.equal(r.body.language_id, C);
    assert.equal(r.body.cpu_time_limit, 5);
    assert.equal(r.body.memory_limit, 128000);
    assert.match(r.body.time, /^\d+\.\d{3}$/);
    assert.ok(r.body.memory > 0);
    assert.ok(r.body.created_at && r.body.finished_at);
  });

  it('base64_encoded both ways; fields chosen; unknown fields refused', async () => {
    const r = await submit({ language_id: PY, source_code: Buffer.from('print(input()[::-1])').toString('base64'), stdin: Buffer.from('brig').toString('base64') }, 'wait=true&base64_encoded=true&fields=stdout,status_id');
    assert.deepEqual(r.body, { stdout: Buffer.from('girb\n').toString('base64'), status_id: 3 });
    const bad = await submit({ language_id: PY, source_code: 'print(1)' }, 'wait=true&fields=stdout,bogus');
    assert.equal(bad.status, 400);
    assert.match(bad.body.error, /bogus/);
  });

  it('without wait: a token at once, In Queue or Processing, then the result by GET', async () => {
    const r = await submit({ language_id: BASH, source_code: 'sleep 0.4; echo later' }, '');
    assert.equal(r.status, 201);
    assert.deepEqual(Object.keys(r.body), ['token']);
    const early = await s.get(`/submissions/${r.body.token}`);
    assert.ok([1, 2].includes(early.body.status.id), JSON.stringify(early.body));
    let done;
    for (let i = 0; i < 100; i++) {
      done = await s.get(`/submissions/${r.body.token}?fields=status,stdout`);
      if (done.body.status.id > 2) break;
      await new Promise((res) => setTimeout(res, 50));
    }
    assert.deepEqual(done!.body, { status: { id: 3, description: 'Accepted' }, stdout: 'later\n' });
    assert.equal((await s.get('/submissions/no-such-token')).status, 404);
  });

  it('redirect_stderr_to_stdout, command_line_arguments, number_of_runs, additional_files', async () => {
    const r = await statusOf({ language_id: BASH, source_code: 'echo out; echo err >&2; echo "$#:$1:$2"; cat data/x.txt data/y.txt', command_line_arguments: 'one "two words"', redirect_stderr_to_stdout: true, number_of_runs: 2, additional_files: zip({ 'data/x.txt': 'zipped\n', 'data/y.txt': 'deflated '.repeat(50) + '\n' }, ['data/y.txt']).toString('base64') });
    assert.equal(r.stdout, 'out\nerr\n2:one:two words\nzipped\n' + 'deflated '.repeat(50) + '\n');
    assert.equal(r.stderr, null);
    const evil = await submit({ language_id: BASH, source_code: 'true', additional_files: zip({ '../escape': 'x' }).toString('base64') });
    assert.equal(evil.status, 422);
    assert.match(evil.body.additional_files[0], /leaves the job's directory/);
    const bomb = await submit({ language_id: BASH, source_code: 'true', additional_files: zip({ big: 'x'.repeat(11 << 20) }, ['big']).toString('base64') });
    assert.equal(bomb.status, 422);
    assert.match(bomb.body.additional_files[0], /extracts to more than 10485760 bytes/);
  });

  it('422 with the field named: unknown language, limits out of range, bad base64, unknown fields, network', async () => {
    const r = await submit({ language_id: 9999, source_code: 'x', cpu_time_limit: 100, memory_limit: -5, wall_time_limit: 'soon', enable_network: true, colour: 'blue' });
    assert.equal(r.status, 422);
    assert.deepEqual(r.body.language_id, ["language with id 9999 doesn't exist"]);
    assert.deepEqual(r.body.cpu_time_limit, ['must be less than or equal to 15']);
    assert.deepEqual(r.body.memory_limit, ['must be greater than or equal to 2048']);
    assert.deepEqual(r.body.wall_time_limit, ['is not a number']);
    assert.deepEqual(r.body.enable_network, ['enabling network is not allowed']);
    assert.deepEqual(r.body.colour, ['is not a submission field']);
    const b64 = await submit({ language_id: PY, source_code: '!!!not base64' }, 'wait=true&base64_encoded=true');
    assert.equal(b64.status, 422);
    assert.deepEqual(b64.body.source_code, ['is not valid base64']);
    const blank = await submit({ language_id: PY });
    assert.deepEqual(blank.body.source_code, ["can't be blank"]);
    const json = await s.post('/submissions', '{"language_id": ');
    assert.equal(json.status, 400);
    assert.match(json.body.error, /body: not valid JSON/);
  });

  it('batches: up to max_submission_batch_size, errors per item; GET by tokens', async () => {
    const r = await s.post('/submissions/batch', { submissions: [{ language_id: PY, source_code: 'print(1)' }, { language_id: 12345, source_code: 'x' }, { language_id: BASH, source_code: 'echo 2' }] });
    assert.equal(r.status, 201);
    assert.ok(r.body[0].token && r.body[2].token);
    assert.deepEqual(r.body[1], { language_id: ["language with id 12345 doesn't exist"] });
    const tokens = [r.body[0].token, r.body[2].token].join(',');
    let got;
    for (let i = 0; i < 100; i++) {
      got = await s.get(`/submissions/batch?tokens=${tokens}&fields=stdout,status_id`);
      if (got.body.submissions.every((x: any) => x.status_id > 2)) break;
      await new Promise((res) => setTimeout(res, 50));
    }
    assert.deepEqual(got!.body.submissions, [{ stdout: '1\n', status_id: 3 }, { stdout: '2\n', status_id: 3 }]);
    const big = await s.post('/submissions/batch', { submissions: Array.from({ length: 21 }, () => ({ language_id: PY, source_code: 'x' })) });
    assert.equal(big.status, 422);
    assert.match(big.body.submissions[0], /less than or equal to 20/);
  });

  it('callbacks: a PUT to an allowlisted host when done; any other host refused with 422', async () => {
    const r = await submit({ language_id: BASH, source_code: 'echo called', callback_url: `http://127.0.0.1:${hookPort}/done` }, '');
    for (let i = 0; i < 100 && !received.length; i++) await new Promise((res) => setTimeout(res, 50));
    assert.equal(received.length, 1);
    assert.equal(received[0].method, 'PUT');
    assert.equal(received[0].body.token, r.body.token);
    assert.equal(received[0].body.stdout, 'called\n');
    const other = await submit({ language_id: BASH, source_code: 'true', callback_url: 'http://127.0.0.2:9/x' }, '');
    assert.equal(other.status, 422);
    assert.match(other.body.callback_url[0], /not on the callback allowlist/);
  });

  it('languages (Judge0 CE ids), statuses, about, config_info', async () => {
    const langs = await s.get('/languages');
    const ids = langs.body.map((l: any) => l.id);
    for (const id of [C, CPP, PY, BASH, 63]) assert.ok(ids.includes(id), `language ${id}`);
    assert.match(langs.body.find((l: any) => l.id === C).name, /^C \(GCC \d+\.\d+\.\d+\)$/);
    const one = await s.get(`/languages/${C}`);
    assert.equal(one.body.source_file, 'main.c');
    assert.match(one.body.compile_cmd, /^gcc /);
    assert.equal((await s.get('/languages/424242')).status, 404);
    const st = await s.get('/statuses');
    assert.equal(st.body.length, 14);
    assert.deepEqual(st.body[5], { id: 6, description: 'Compilation Error' });
    assert.ok((await s.get('/about')).body.version);
    const ci = await s.get('/config_info');
    assert.equal(ci.body.cpu_time_limit, 5);
    assert.equal(ci.body.max_cpu_time_limit, 15);
    assert.equal(ci.body.memory_limit, 128000);
    assert.equal(ci.body.max_queue_size, 100);
  });
});

guardLeaks();
