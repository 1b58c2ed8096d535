// Classic BPF as seccomp uses it: the instruction encoding, an interpreter
// that runs a program over a seccomp_data the way the kernel does (for tests
// and `brig seccomp test`), and a disassembler (`brig seccomp dump`).

// Instruction classes and fields (include/uapi/linux/filter.h, bpf_common.h).
export const BPF_LD = 0x00;
export const BPF_LDX = 0x01;
export const BPF_ST = 0x02;
export const BPF_STX = 0x03;
export const BPF_ALU = 0x04;
export const BPF_JMP = 0x05;
export const BPF_RET = 0x06;
export const BPF_MISC = 0x07;
export const BPF_W = 0x00;
export const BPF_ABS = 0x20;
export const BPF_IMM = 0x00;
export const BPF_MEM = 0x60;
export const BPF_LEN = 0x80;
export const BPF_ADD = 0x00;
export const BPF_SUB = 0x10;
export const BPF_MUL = 0x20;
export const BPF_DIV = 0x30;
export const BPF_OR = 0x40;
export const BPF_AND = 0x50;
export const BPF_LSH = 0x60;
export const BPF_RSH = 0x70;
export const BPF_NEG = 0x80;
export const BPF_MOD = 0x90;
export const BPF_XOR = 0xa0;
export const BPF_JA = 0x00;
export const BPF_JEQ = 0x10;
export const BPF_JGT = 0x20;
export const BPF_JGE = 0x30;
export const BPF_JSET = 0x40;
export const BPF_K = 0x00;
export const BPF_X = 0x08;
export const BPF_A = 0x10;
export const BPF_TAX = 0x00;
export const BPF_TXA = 0x80;

/** Kernel limit on a program's length (BPF_MAXINSNS). */
export const BPF_MAXINSNS = 4096;

// seccomp return values (include/uapi/linux/seccomp.h).
export const SECCOMP_RET_KILL_PROCESS = 0x80000000;
export const SECCOMP_RET_KILL_THREAD = 0x00000000;
export const SECCOMP_RET_TRAP = 0x00030000;
export const SECCOMP_RET_ERRNO = 0x00050000;
export const SECCOMP_RET_USER_NOTIF = 0x7fc00000;
export const SECCOMP_RET_TRACE = 0x7ff00000;
export const SECCOMP_RET_LOG = 0x7ffc0000;
export const SECCOMP_RET_ALLOW = 0x7fff0000;
export const SECCOMP_RET_ACTION_FULL = 0xffff0000;
export const SECCOMP_RET_DATA = 0x0000ffff;

/** struct seccomp_data: nr at 0, arch at 4, instruction_pointer at 8, args[i] at 16 + 8i (little-endian). */
export const OFF_NR = 0;
export const OFF_ARCH = 4;
export const OFF_IP = 8;
export const offArgLo = (i: number) => 16 + 8 * i;
export const offArgHi = (i: number) => 16 + 8 * i + 4;

export interface Insn {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

export interface SeccompData {
  nr: number;
  arch: number;
  ip?: bigint;
  args?: bigint[];
}

/** Encodes as struct sock_filter[] in host (little-endian) order, 8 bytes each. */
export function encode(prog: Insn[]): Buffer {
  const b = Buffer.alloc(prog.length * 8);
  prog.forEach((i, n) => {
    b.writeUInt16LE(i.code, n * 8);
    b.writeUInt8(i.jt, n * 8 + 2);
    b.writeUInt8(i.jf, n * 8 + 3);
    b.writeUInt32LE(i.k >>> 0, n * 8 + 4);
  });
  return b;
}

export function decode(b: Buffer): Insn[] {
  const out: Insn[] = [];
  for (let o = 0; o + 8 <= b.length; o += 8) out.push({ code: b.readUInt16LE(o), jt: b.readUInt8(o + 2), jf: b.readUInt8(o + 3), k: b.readUInt32LE(o + 4) });
  return out;
}

function dataWord(d: SeccompData, off: number): number {
  if (off === OFF_NR) return d.nr >>> 0;
  if (off === OFF_ARCH) return d.arch >>> 0;
  const word64 = (v: bigint | undefined, hi: boolean) => Number(((v ?? 0n) >> (hi ? 32n : 0n)) & 0xffffffffn);
  if (off === OFF_IP || off === OFF_IP + 4) return word64(d.ip, off === OFF_IP + 4);
  if (off >= 16 && off < 64 && off % 4 === 0) {
    const i = Math.floor((off - 16) / 8);
    return word64(d.args?.[i], (off - 16) % 8 === 4);
  }
  throw new Error(`load out of seccomp_data at offset ${off}`);
}

export interface RunTrace {
  ret: number;
  /** Instructions executed, the decision's depth. */
  steps: number;
}

/** Runs a program as the kernel's seccomp would; throws on what the kernel's checker would reject. */
export function interpret(prog: Insn[], d: SeccompData): RunTrace {
  let A = 0;
  let X = 0;
  const M = new Uint32Array(16);
  let pc = 0;
  let steps = 0;
  while (pc < prog.length) {
    const { code, jt, jf, k } = prog[pc];
    steps++;
    const cls = code & 0x07;
    switch (cls) {
      case BPF_LD:
        if (code === (BPF_LD | BPF_W | BPF_ABS)) A = dataWord(d, k);
        else if (code === (BPF_LD | BPF_W | BPF_LEN)) A = 64;
        else if (code === (BPF_LD | BPF_IMM)) A = k >>> 0;
        else if (code === (BPF_LD | BPF_MEM)) A = M[k];
        else throw new Error(`pc ${pc}: unsupported load ${code}`);
        break;
      case BPF_LDX:
        if (code === (BPF_LDX | BPF_W | BPF_LEN)) X = 64;
        else if (code === (BPF_LDX | BPF_IMM)) X = k >>> 0;
        else if (code === (BPF_LDX | BPF_MEM)) X = M[k];
        else throw new Error(`pc ${pc}: unsupported ldx ${code}`);
        break;
      case BPF_ST:
        M[k] = A;
        break;
      case BPF_STX:
        M[k] = X;
        break;
      case BPF_ALU: {
        const src = code & BPF_X ? X : k >>> 0;
        switch (code & 0xf0) {
          case BPF_ADD: A = (A + src) >>> 0; break;
          case BPF_SUB: A = (A - src) >>> 0; break;
          case BPF_MUL: A = Math.imul(A, src) >>> 0; break;
          case BPF_DIV: if (src === 0) return { ret: 0, steps }; A = Math.floor(A / src) >>> 0; break;
          case BPF_MOD: if (src === 0) return { ret: 0, steps }; A = (A % src) >>> 0; break;
          case BPF_OR: A = (A | src) >>> 0; break;
          case BPF_AND: A = (A & src) >>> 0; break;
          case BPF_XOR: A = (A ^ src) >>> 0; break;
          case BPF_LSH: A = src >= 32 ? 0 : (A << src) >>> 0; break;
          case BPF_RSH: A = src >= 32 ? 0 : A >>> src; break;
          case BPF_NEG: A = -A >>> 0; break;
          default: throw new Error(`pc ${pc}: unsupported alu ${code}`);
        }
        break;
      }
      case BPF_JMP: {
        const op = code & 0xf0;
        if (op === BPF_JA) {
          pc += 1 + (k >>> 0);
          continue;
        }
        const src = code & BPF_X ? X : k >>> 0;
        let taken: boolean;
        if (op === BPF_JEQ) taken = A === src;
        else if (op === BPF_JGT) taken = A > src;
        else if (op === BPF_JGE) taken = A >= src;
        else if (op === BPF_JSET) taken = (A & src) !== 0;
        else throw new Error(`pc ${pc}: unsupported jump ${code}`);
        pc += 1 + (taken ? jt : jf);
        continue;
      }
      case BPF_RET:
        return { ret: (code & BPF_A ? A : k) >>> 0, steps };
      case BPF_MISC:
        if ((code & 0xf8) === BPF_TAX) X = A;
        else A = X;
        break;
    }
    pc++;
  }
  throw new Error('program ran off its end');
}

const RET_NAMES: [number, string][] = [
  [SECCOMP_RET_KILL_PROCESS, 'KILL_PROCESS'],
  [SECCOMP_RET_KILL_THREAD, 'KILL_THREAD'],
  [SECCOMP_RET_TRAP, 'TRAP'],
  [SECCOMP_RET_ERRNO, 'ERRNO'],
  [SECCOMP_RET_USER_NOTIF, 'USER_NOTIF'],
  [SECCOMP_RET_TRACE, 'TRACE'],
  [SECCOMP_RET_LOG, 'LOG'],
  [SECCOMP_RET_ALLOW, 'ALLOW'],
];

export function retName(v: number): string {
  const action = (v & SECCOMP_RET_ACTION_FULL) >>> 0;
  const data = v & SECCOMP_RET_DATA;
  const name = RET_NAMES.find(([a]) => a === action)?.[1] ?? `0x${action.toString(16)}`;
  return data || name === 'ERRNO' || name === 'TRAP' || name === 'TRACE' ? `${name}(${data})` : name;
}

function hex(n: number): string {
  return '0x' + (n >>> 0).toString(16);
}

/** One line per instruction, with jump targets as absolute indices and seccomp_data fields named. */
export function disassemble(prog: Insn[], annotate?: (k: number, pc: number) => string | undefined): string {
  const field = (k: number) => {
    if (k === OFF_NR) return 'nr';
    if (k === OFF_ARCH) return 'arch';
    if (k === OFF_IP) return 'ip_lo';
    if (k === OFF_IP + 4) return 'ip_hi';
    if (k >= 16 && k < 64) return `args[${Math.floor((k - 16) / 8)}]_${(k - 16) % 8 ? 'hi' : 'lo'}`;
    return `[${k}]`;
  };
  const width = String(prog.length).length;
  return prog
    .map((ins, pc) => {
      const { code, jt, jf, k } = ins;
      const at = String(pc).padStart(width, '0');
      let text: string;
      const cls = code & 0x07;
      if (code === (BPF_LD | BPF_W | BPF_ABS)) text = `ld  ${field(k)}`;
      else if (cls === BPF_LD && (code & 0xe0) === BPF_IMM) text = `ld  #${hex(k)}`;
      else if (cls === BPF_ALU) text = `${['add', 'sub', 'mul', 'div', 'or', 'and', 'lsh', 'rsh', 'neg', 'mod', 'xor'][(code & 0xf0) >> 4] ?? 'alu?'} ${code & BPF_X ? 'x' : '#' + hex(k)}`;
      else if (cls === BPF_JMP && (code & 0xf0) === BPF_JA) text = `ja  ${pc + 1 + k}`;
      else if (cls === BPF_JMP) {
        const op = ['', 'jeq', 'jgt', 'jge', 'jset'][(code & 0xf0) >> 4] ?? 'j?';
        text = `${op} ${code & BPF_X ? 'x' : '#' + hex(k)}, ${pc + 1 + jt}, ${pc + 1 + jf}`;
      } else if (cls === BPF_RET) text = code & BPF_A ? 'ret a' : `ret ${retName(k)}`;
      else if (cls === BPF_MISC) text = (code & 0xf8) === BPF_TAX ? 'tax' : 'txa';
      else text = `.insn ${hex(code)} ${jt} ${jf} ${hex(k)}`;
      const note = annotate?.(k, pc);
      return `${at}: ${text}${note ? `    ; ${note}` : ''}`;
    })
    .join('\n');
}
