// brig's default seccomp policy: what ordinary programs in C, C++, Python,
// Node, Java and Go need, and nothing that reaches the kernel's rarely used
// or privileged corners. Unlisted calls fail with ENOSYS, the answer runtimes
// already handle ("this kernel lacks it"), so a newer libc or runtime falls
// back instead of breaking.
//
// Every denial is a refusal with an errno, as Docker's default profile
// answers: ordinary software probes privileged calls and expects an error
// (test suites check that clock_settime gives EPERM, package managers try
// mount, libraries feel for open_by_handle_at). Two kinds:
// - refused quietly, in the filter: calls runtimes probe on every start or in
//   hot paths (clone3, io_uring, NUMA placement), whose report would be noise
//   or cost;
// - refused and reported (report: true): privileged calls a program has no
//   business making in a sandbox. brig answers them itself through a seccomp
//   user notification and lists them in RunResult.seccompDenials; allowed
//   calls never pay for it.
// JUDGE_POLICY (the judge profile) turns the worst of the reported set
// (forbid: mounts, kernel modules, the clock, ...) into kill-process, so a
// submission making such a call ends as a seccomp-violation naming it, and
// refuses the rest in the filter: no notification there but for the kills.
import type { SeccompPolicy, SeccompRule } from './policy.js';

const EPERM = 1;
const ENOSYS = 38;
const EAFNOSUPPORT = 97;
const EACCES = 13;

// Namespace flags of clone(2): a new namespace is a new kernel attack surface
// (user namespaces above all) and a way around the sandbox's own.
const CLONE_NEWNS = 0x00020000;
const CLONE_NEWCGROUP = 0x02000000;
const CLONE_NEWUTS = 0x04000000;
const CLONE_NEWIPC = 0x08000000;
const CLONE_NEWUSER = 0x10000000;
const CLONE_NEWPID = 0x20000000;
const CLONE_NEWNET = 0x40000000;
const CLONE_NEWTIME = 0x00000080;
export const CLONE_NAMESPACE_FLAGS = CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWTIME;

const TIOCSTI = 0x5412;
const TIOCLINUX = 0x541c;

const AF_UNIX = 1;
const AF_INET = 2;
const AF_INET6 = 10;
const AF_NETLINK = 16;
const NETLINK_ROUTE = 0;

// personality(2) values that change nothing a sandbox cares about: Linux,
// 32-bit uname, UNAME26 and the query value. Not ADDR_NO_RANDOMIZE and the
// like, which switch off protections for the exploit that follows.
const PERSONALITY_SAFE = [0x0, 0x8, 0x20000, 0x20008, 0xffffffff];

/** Calls ordinary programs make. Names an architecture lacks are skipped. */
const ALLOWED = [
  // files and descriptors
  'read', 'write', 'open', 'openat', 'openat2', 'close', 'close_range', 'creat', 'lseek', '_llseek', 'pread64', 'pwrite64',
  'readv', 'writev', 'preadv', 'pwritev', 'preadv2', 'pwritev2', 'sendfile', 'splice', 'tee', 'vmsplice', 'copy_file_range',
  'stat', 'fstat', 'lstat', 'newfstatat', 'statx', 'statfs', 'fstatfs', 'access', 'faccessat', 'faccessat2',
  'dup', 'dup2', 'dup3', 'pipe', 'pipe2', 'fcntl', 'flock', 'fsync', 'fdatasync', 'sync', 'syncfs', 'sync_file_range',
  'truncate', 'ftruncate', 'fallocate', 'fadvise64', 'readahead', 'getdents', 'getdents64', 'getcwd', 'chdir', 'fchdir',
  'rename', 'renameat', 'renameat2', 'mkdir', 'mkdirat', 'rmdir', 'link', 'linkat', 'unlink', 'unlinkat', 'symlink', 'symlinkat',
  'readlink', 'readlinkat', 'chmod', 'fchmod', 'fchmodat', 'chown', 'fchown', 'lchown', 'fchownat', 'umask',
  'utime', 'utimes', 'futimesat', 'utimensat', 'mknod', 'mknodat',
  'setxattr', 'lsetxattr', 'fsetxattr', 'getxattr', 'lgetxattr', 'fgetxattr', 'listxattr', 'llistxattr', 'flistxattr',
  'removexattr', 'lremovexattr', 'fremovexattr',
  'inotify_init', 'inotify_init1', 'inotify_add_watch', 'inotify_rm_watch', 'memfd_create',
  // polling and events
  'select', 'pselect6', 'poll', 'ppoll', 'epoll_create', 'epoll_create1', 'epoll_ctl', 'epoll_wait', 'epoll_pwait', 'epoll_pwait2',
  'eventfd', 'eventfd2', 'signalfd', 'signalfd4', 'timerfd_create', 'timerfd_settime', 'timerfd_gettime',
  'io_setup', 'io_destroy', 'io_getevents', 'io_pgetevents', 'io_submit', 'io_cancel',
  // memory
  'brk', 'mmap', 'mmap2', 'munmap', 'mremap', 'mprotect', 'msync', 'mincore', 'madvise', 'mlock', 'mlock2', 'munlock',
  'mlockall', 'munlockall', 'membarrier', 'get_mempolicy', 'set_mempolicy', 'pkey_mprotect', 'pkey_alloc', 'pkey_free',
  'remap_file_pages', 'process_mrelease',
  // processes, threads, signals
  'fork', 'vfork', 'execve', 'execveat', 'exit', 'exit_group', 'wait4', 'waitid', 'getpid', 'getppid', 'gettid',
  'set_tid_address', 'set_robust_list', 'get_robust_list', 'rseq', 'futex', 'futex_waitv', 'arch_prctl', 'prctl',
  'kill', 'tkill', 'tgkill', 'rt_sigaction', 'rt_sigprocmask', 'rt_sigreturn', 'rt_sigpending', 'rt_sigtimedwait',
  'rt_sigqueueinfo', 'rt_tgsigqueueinfo', 'rt_sigsuspend', 'sigaltstack', 'pause', 'restart_syscall',
  'pidfd_open', 'pidfd_send_signal', 'getpgid', 'setpgid', 'getpgrp', 'getsid', 'setsid',
  'sched_yield', 'sched_getaffinity', 'sched_setaffinity', 'sched_getparam', 'sched_setparam', 'sched_getscheduler',
  'sched_setscheduler', 'sched_get_priority_max', 'sched_get_priority_min', 'sched_rr_get_interval', 'sched_getattr',
  'sched_setattr', 'getpriority', 'setpriority', 'ioprio_get', 'ioprio_set', 'getcpu',
  // identity (inside the user namespace, without capabilities: can only lower)
  'getuid', 'geteuid', 'getgid', 'getegid', 'getresuid', 'getresgid', 'getgroups', 'setuid', 'setgid', 'setreuid',
  'setregid', 'setresuid', 'setresgid', 'setfsuid', 'setfsgid', 'setgroups', 'capget', 'capset',
  // time
  'clock_gettime', 'clock_getres', 'clock_nanosleep', 'gettimeofday', 'time', 'nanosleep', 'times', 'alarm',
  'getitimer', 'setitimer', 'timer_create', 'timer_settime', 'timer_gettime', 'timer_getoverrun', 'timer_delete',
  // limits and system information
  'getrlimit', 'setrlimit', 'prlimit64', 'getrusage', 'sysinfo', 'uname', 'getrandom',
  // sockets (families are checked below)
  'socketpair', 'connect', 'accept', 'accept4', 'bind', 'listen', 'sendto', 'recvfrom', 'sendmsg', 'recvmsg', 'sendmmsg',
  'recvmmsg', 'shutdown', 'getsockname', 'getpeername', 'setsockopt', 'getsockopt',
  // System V and POSIX IPC (the sandbox has its own ipc namespace)
  'shmget', 'shmat', 'shmdt', 'shmctl', 'semget', 'semop', 'semtimedop', 'semctl', 'msgget', 'msgsnd', 'msgrcv', 'msgctl',
  'mq_open', 'mq_unlink', 'mq_timedsend', 'mq_timedreceive', 'mq_notify', 'mq_getsetattr',
  // a program may confine itself further
  'seccomp', 'landlock_create_ruleset', 'landlock_add_rule', 'landlock_restrict_self',
];

/** Refused and reported in seccompDenials; JUDGE_POLICY refuses them in the filter. */
function deny(syscalls: string[], errno: number, reason: string): SeccompRule {
  return { syscalls, action: 'errno', errno, report: true, reason };
}
/** The rules JUDGE_POLICY turns into kill-process. */
const judgeKills = new Set<SeccompRule>();
/** Refused and reported; under JUDGE_POLICY the run ends as a seccomp-violation. */
function forbid(syscalls: string[], errno: number, reason: string): SeccompRule {
  const r = deny(syscalls, errno, reason);
  judgeKills.add(r);
  return r;
}
/** Refused in the filter, silently: probed often, or on a hot path. */
function refuse(syscalls: string[], errno: number, reason: string): SeccompRule {
  return { syscalls, action: 'errno', errno, reason };
}

export const DEFAULT_POLICY: SeccompPolicy = {
  defaultAction: 'errno',
  defaultErrno: ENOSYS,
  rules: [
    // ---- arguments checked ----
    {
      syscalls: ['clone'],
      action: 'allow',
      args: [{ index: 0, op: 'masked-eq', mask: CLONE_NAMESPACE_FLAGS, value: 0 }],
      reason: 'threads and processes, but no new namespace',
    },
    refuse(['clone'], EPERM, 'clone with namespace flags: new namespaces expose kernel code no sandboxed program needs'),
    refuse(['clone3'], ENOSYS, 'its flags live in memory seccomp cannot read; ENOSYS makes libc fall back to clone, which is checked'),
    {
      syscalls: ['ioctl'],
      action: 'errno',
      errno: EPERM,
      args: [{ index: 1, op: 'eq', value: TIOCSTI, width: 32 }],
      reason: 'TIOCSTI pushes input into a terminal: keystrokes into the session that ran brig',
    },
    {
      syscalls: ['ioctl'],
      action: 'errno',
      errno: EPERM,
      args: [{ index: 1, op: 'eq', value: TIOCLINUX, width: 32 }],
      reason: 'TIOCLINUX reads and injects console contents',
    },
    { syscalls: ['ioctl'], action: 'allow', reason: 'terminal and file ioctls (the dangerous commands are refused above)' },
    ...[AF_UNIX, AF_INET, AF_INET6].map(
      (family): SeccompRule => ({ syscalls: ['socket'], action: 'allow', args: [{ index: 0, op: 'eq', value: family, width: 32 }], reason: 'unix, IPv4 and IPv6 sockets' }),
    ),
    {
      syscalls: ['socket'],
      action: 'allow',
      args: [
        { index: 0, op: 'eq', value: AF_NETLINK, width: 32 },
        { index: 2, op: 'eq', value: NETLINK_ROUTE, width: 32 },
      ],
      reason: 'route netlink: getifaddrs() and getaddrinfo(AI_ADDRCONFIG) use it',
    },
    refuse(['socket'], EAFNOSUPPORT, 'AF_PACKET, AF_ALG, AF_VSOCK, AF_KEY, other netlink families and the rest: raw network and kernel interfaces a sandbox has no business with'),
    ...PERSONALITY_SAFE.map(
      (v): SeccompRule => ({ syscalls: ['personality'], action: 'allow', args: [{ index: 0, op: 'eq', value: v, width: 32 }], reason: 'harmless personalities and the query' }),
    ),
    refuse(['personality'], EPERM, 'ADDR_NO_RANDOMIZE and other personalities switch off exploit mitigations'),

    // ---- refused quietly: probed on every start or on hot paths ----
    refuse(['io_uring_setup', 'io_uring_enter', 'io_uring_register'], ENOSYS, 'io_uring bypasses seccomp for the operations it performs; libuv and others fall back on ENOSYS (libuv probes it in every Node process)'),
    refuse(['mbind', 'migrate_pages', 'move_pages', 'set_mempolicy_home_node'], EPERM, 'NUMA placement of memory across the host (NUMA-aware allocators call it per allocation)'),
    refuse(['memfd_secret'], ENOSYS, 'memory hidden from the kernel: unneeded, and hard to account'),

    // ---- refused and reported: privileged calls (judge: the run ends) ----
    deny(['unshare', 'setns'], EPERM, 'new or foreign namespaces: kernel attack surface, and a way around the sandbox'),
    deny(['ptrace'], EPERM, "debugging other processes; the sandbox's init holds the host's memory"),
    deny(['process_vm_readv', 'process_vm_writev', 'pidfd_getfd', 'kcmp', 'process_madvise'], EPERM, "reaching into other processes' memory and files"),
    deny(['perf_event_open'], EACCES, 'performance counters: a rich source of kernel bugs and side channels'),
    deny(['bpf'], EPERM, 'eBPF: kernel programs and maps'),
    deny(['userfaultfd'], EPERM, 'page-fault handling in user space: the tool of choice for widening kernel races'),
    deny(['keyctl', 'add_key', 'request_key'], EPERM, 'kernel keyrings are not namespaced: keys would outlive the run'),
    deny(['name_to_handle_at'], EPERM, 'file handles are the first half of an open_by_handle_at escape'),
    deny(['quotactl', 'quotactl_fd'], EPERM, 'disk quota administration'),
    deny(['chroot'], EPERM, 'changing root: nothing to gain without capabilities, refused for clarity'),
    deny(['sethostname', 'setdomainname'], EPERM, "the sandbox's identity is set by brig"),
    deny(['adjtimex', 'clock_adjtime'], EPERM, 'adjusting the clock (the query form is refused too)'),
    deny(['syslog'], EPERM, 'the kernel log belongs to the host'),
    deny(['vhangup'], EPERM, 'hangs up the terminal'),
    deny(['fanotify_init', 'fanotify_mark'], EPERM, 'filesystem-wide monitoring'),
    deny(['modify_ldt'], EPERM, 'x86 segment descriptors: 16-bit code and old exploits'),
    deny(['iopl', 'ioperm'], EPERM, 'direct hardware port access'),
    // Docker's profile answers these with EPERM too; brig used to end the run.
    forbid(['mount', 'umount2', 'pivot_root', 'mount_setattr', 'open_tree', 'move_mount', 'fsopen', 'fsconfig', 'fsmount', 'fspick'], EPERM, 'changing the mount table: the sandbox is its mounts (package managers and test suites try mount and expect EPERM)'),
    forbid(['open_by_handle_at'], EPERM, 'opens files by handle around every path check (the shocker container escape)'),
    forbid(['kexec_load', 'kexec_file_load', 'reboot'], EPERM, 'replacing or restarting the host kernel'),
    forbid(['init_module', 'finit_module', 'delete_module', 'create_module'], EPERM, 'loading code into the kernel'),
    forbid(['swapon', 'swapoff'], EPERM, "the host's swap"),
    forbid(['settimeofday', 'clock_settime', 'stime'], EPERM, "setting the host's clock (date -s, CPython's test_time expect EPERM)"),
    forbid(['acct'], EPERM, 'process accounting to a file'),
    // The kernel itself answers ENOSYS for most of these (removed or never
    // implemented): the same answer, now also reported.
    forbid(['lookup_dcookie', 'nfsservctl', 'uselib', '_sysctl', 'sysfs', 'ustat', 'vserver', 'get_kernel_syms', 'query_module', 'afs_syscall', 'tuxcall', 'security', 'putpmsg', 'getpmsg'], ENOSYS, 'obsolete or unimplemented interfaces, called only by exploits'),

    { syscalls: ALLOWED, action: 'allow', reason: 'what ordinary programs need' },
  ],
};


/**
 * The default policy for contest grading: the calls the default policy
 * forbids (mounts, modules, the clock, reboot, ...) end the run as a
 * seccomp-violation naming the call; a submission has no reason to try
 * them, and a verdict beats a program carrying on after an error it never
 * expected. The other reported refusals are refused in the filter, quietly.
 */
export const JUDGE_POLICY: SeccompPolicy = {
  ...DEFAULT_POLICY,
  rules: DEFAULT_POLICY.rules.map((r): SeccompRule => {
    if (judgeKills.has(r)) return { syscalls: r.syscalls, action: 'kill-process', reason: r.reason };
    if (r.report) return { syscalls: r.syscalls, action: 'errno', errno: r.errno, reason: r.reason };
    return r;
  }),
};
