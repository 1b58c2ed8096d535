// The launch plan: what TypeScript decided, flattened into plain C data the
// child can walk without allocating.
//
// The parent builds a Plan from the JS object (addon/launch.cc) and keeps it,
// with the stacks the sandbox runs on, until the sandbox's init is reaped:
// init shares the parent's memory (CLONE_VM, no page tables copied) and the
// program starts vfork-style from it (CLONE_VM|CLONE_VFORK). The child
// (addon/child.cc) runs the steps in order. Steps before FORK_PROGRAM run in
// the sandbox's init (pid 1 of the new pid namespace, with every capability of
// the new user namespace); steps after it run in the program's own process
// and end with EXEC. A failed step is reported as (index, errno); the TS side
// kept the list and turns the index back into the step's name and paths.
#pragma once
#include <stdint.h>

namespace brig {

enum StepKind : int32_t {
  STEP_MOUNT = 1,         // mount(a=source, b=target, c=fstype, flags, d=data)
  STEP_BIND = 2,          // bind a -> b; recursive; then read-only if arg0 != 0
  STEP_SET_READONLY = 3,  // make the mount at a read-only; recursive if arg0 != 0
  STEP_MKDIR = 4,         // mkdir(a, mode); an existing directory is fine
  STEP_TOUCH = 5,         // create an empty file a (mount target for a file bind)
  STEP_SYMLINK = 6,       // symlink(a=target, b=linkpath)
  STEP_WRITE_FILE = 7,    // create file a with mode, content d (length arg0)
  STEP_PIVOT_ROOT = 8,    // chdir(a); pivot_root(".", b); if b == "." detach old root; chdir("/")
  STEP_CHDIR = 9,         // chdir(a)
  STEP_SETHOSTNAME = 10,  // sethostname(a)
  STEP_LOOPBACK_UP = 11,  // bring lo up in the new network namespace
  STEP_FORK_PROGRAM = 12, // init forks the program; later steps run in the program
  STEP_SETSID = 13,       // new session: no controlling terminal shared with the host
  STEP_SETRLIMIT = 14,    // prlimit(resource=arg0, cur=arg1, max=arg2)
  STEP_DROP_CAPS = 15,    // securebits, bounding set, ambient, capset: no capability survives
  STEP_NO_NEW_PRIVS = 16, // PR_SET_NO_NEW_PRIVS
  STEP_SECCOMP = 17,      // install BPF program (d, arg0 instructions)
  STEP_STDIO = 18,        // dup the prepared fds onto 0, 1, 2
  STEP_CLOSE_FDS = 19,    // every fd above 2 closed at exec (close_range CLOEXEC)
  STEP_RESET_SIGNALS = 20,// default dispositions, empty mask (execve keeps SIG_IGN)
  STEP_EXEC = 21,         // execve each candidate path until one is not ENOENT
  STEP_PDEATHSIG = 22,    // PR_SET_PDEATHSIG arg0
  STEP_UMASK = 23,        // umask(arg0)
  STEP_NOTIFY_FD = 24,    // dup the listener handoff socket to fd arg0 (close-on-exec)
  STEP_CGROUP_JOIN = 25,  // the program moves itself into the run's cgroups (plan->cgroup_fds)
  STEP_AWAIT_COMMAND = 26,// pooled sandboxes: wait for the command (stdio fds) on plan->command_fd
  STEP_LCHOWN = 27,       // fchownat(a, uid=arg0, gid=arg1), the link itself: image layers' owners
  STEP_EXIT = 28,         // init ends here, status 0: plans that only change files (no program)
  STEP_SET_IDS = 29,      // setgroups(none), setresgid(arg1), setresuid(arg0): become the image's user
  STEP_LANDLOCK = 30,     // init: Landlock ruleset, handled fs access arg0, scoped arg2; rules for
                          // the NUL-separated paths in d, each marked W (directories get arg0,
                          // files arg1) or F (arg1); kept in plan->landlock_fd
  STEP_LANDLOCK_RESTRICT = 31,  // the program: a rule (arg1) for stdout and stderr unless pipes
                          // or sockets, then landlock_restrict_self
  STEP_SKELETON = 32,     // init: a clone of the skeleton (plan->skeleton_fd) mounted on a
  STEP_SKELETON_ROOT = 33,// skeleton maker: a fresh, detached tmpfs (options d) becomes the new root
  STEP_SKELETON_SEAL = 34,// skeleton maker: the tree private and its root read-only, down to its superblock
  STEP_CONTROLLING_TTY = 35,// the program: its stdin (a terminal) becomes its session's controlling terminal
  STEP_OWN_PTY = 36,      // init, in the new root: a pty of the sandbox's own devpts (/dev/pts/ptmx), size
                          // arg0 x arg1; the master goes to the parent over plan->pty_sock, the peer
                          // becomes the program's stdin, stdout and stderr
};

// STEP_SECCOMP flags (arg1)
static const int64_t SECCOMP_STEP_LISTENER = 1;  // ask for a listener, hand it over on arg2

struct Step {
  int32_t kind;
  uint32_t mode;
  uint64_t flags;
  const char* a;
  const char* b;
  const char* c;
  const char* d;
  int64_t arg0;
  int64_t arg1;
  int64_t arg2;
};

// Records the sandbox writes to the report pipe. Each is far below PIPE_BUF,
// so writes are atomic and the parent reads whole records.
enum ReportKind : int32_t {
  REPORT_STEP_FAILED = 1,  // step index + errno
  REPORT_EXIT = 2,         // the program's wait status, written by init
  REPORT_MARK = 3,         // step finished at `ns` (only when the plan asks for timings)
};

struct Report {
  uint32_t magic;   // 'BRIG'
  int32_t kind;
  int32_t step;
  int32_t err;      // positive errno
  int32_t wstatus;
  int32_t pid;      // the program's pid in the host's view (for diagnostics)
  int64_t ns;       // CLOCK_MONOTONIC: REPORT_MARK's step end, REPORT_EXIT's end of the run
  // REPORT_EXIT: getrusage(RUSAGE_CHILDREN) of init after it reaped the whole
  // sandbox: the program's tree without init, which runs in Node's memory and
  // would report Node's RSS as its own.
  int64_t utime_us, stime_us, maxrss_kb, minflt, majflt, nvcsw, nivcsw;
};
static const uint32_t REPORT_MAGIC = 0x47495242u;

struct Plan {
  const Step* steps;
  int32_t nsteps;
  char* const* argv;     // NULL-terminated
  char* const* envp;     // NULL-terminated
  const char* const* exec_paths;  // NULL-terminated candidates for STEP_EXEC
  int32_t stdio[3];      // fds in the parent to become 0, 1, 2 in the program
  int32_t report_fd;     // write end of the report pipe (O_CLOEXEC)
  int32_t release_fd;    // read end of the release pipe
  int32_t release_wfd;   // write end of the release pipe: the child closes its copy
  const int32_t* keep_fds;  // sorted, the fds init keeps open; everything else is closed
  int32_t nkeep;
  const char* init_name; // comm of the sandbox's init
  void* program_stack_top;
  int32_t timings;       // write a REPORT_MARK after every step
  int32_t notify_sock;   // the sandbox's end of the listener handoff socket, or -1
  int32_t kill_fd;       // read end of the kill pipe: a byte (or EOF) asks init to end the sandbox
  const int32_t* cgroup_fds;  // cgroup.procs files the parent opened, for STEP_CGROUP_JOIN
  int32_t ncgroup_fds;  // where the program's pre-exec steps run (CLONE_VM|CLONE_VFORK)
  // Pooled sandboxes: init's end of the command socket, or -1. The parent
  // fills argv, envp, exec_paths and timings in, then sends one byte with the
  // program's three stdio fds; init writes their numbers into stdio.
  int32_t command_fd;
  // The Landlock ruleset init made (STEP_LANDLOCK), for the program to add
  // its stdout and stderr to and enforce (STEP_LANDLOCK_RESTRICT), or -1.
  int32_t landlock_fd;
  // The prebuilt root this run's STEP_SKELETON clones (init's copy), or -1.
  int32_t skeleton_fd;
  // An exec into a running container (JoinEnter): "init" is a process among
  // the container's, not its pid 1, so it must never kill(-1) (that would
  // end the container); it ends only the program's process group.
  int32_t join_mode;
  // STEP_OWN_PTY: init's end of a socket the pty's master is sent over, or -1.
  int32_t pty_sock;
};

// Runs in the child right after clone, on the stack the parent gave it, in the
// parent's own memory (CLONE_VM); never returns.
void child_main(void* plan);

// Warm namespaces: a user namespace and a network namespace made ahead of a
// launch, off the JS thread, and held by two fds until a launch uses them.
// A fresh network namespace is most of a clone's cost (its sysctl tables,
// its loopback, ipv4 and ipv6 state); each pair is still used by one sandbox
// only and never again.
//
// WarmMake: the child made with CLONE_NEWUSER | CLONE_NEWNET | CLONE_VM |
// CLONE_VFORK | CLONE_FILES opens both namespaces (into the parent's fd
// table, close-on-exec), denies setgroups and writes its own id maps (a
// single id, the caller's: no privilege needed), then exits.
struct WarmMake {
  const char* uid_map;
  const char* gid_map;
  int32_t user_fd;  // out
  int32_t net_fd;   // out
  int32_t step;     // out: which of WARM_STEP_* failed
  int32_t err;      // out: its errno, 0 when all went well
};
// The last three in write_own_maps' order: WARM_SETGROUPS + the file that failed.
enum : int32_t { WARM_OPEN_USER = 1, WARM_OPEN_NET = 2, WARM_SETGROUPS = 3, WARM_UID_MAP = 4, WARM_GID_MAP = 5 };
void warm_make_main(void* make);

// A warm pair for a multi-id map: newuidmap and newgidmap write a map only
// for a live process in the namespace (they take a pid). The holder, cloned
// with CLONE_NEWUSER | CLONE_NEWNET | CLONE_VM on a small stack of its own,
// does nothing there: it asks to be killed with its maker, then blocks with
// every signal blocked until the parent kills it (endWarmHold) once the maps
// are written and checked. `arg` is the parent's pid, as a value.
void warm_hold_main(void* parent_pid);

// WarmEnter: the child made with CLONE_VM | CLONE_VFORK | CLONE_FILES joins
// the warm pair (setns) and clones the sandbox's init into the remaining
// namespaces as a sibling (CLONE_PARENT: init is the launching thread's
// child, as on the ordinary path, and dies with it), then exits.
struct WarmEnter {
  int32_t user_fd;
  int32_t net_fd;
  void* init_args;  // struct clone_args for init, CLONE_PARENT and CLONE_PIDFD set
  void* plan;       // child_main's argument
  long result;      // out: init's pid, or -errno
};
void warm_enter_main(void* enter);

// Skeletons: the part of a sandbox's root that is the same in every run of
// a plan (the read-only host directories, /etc's files, /dev's nodes and
// links, every mount point) built once into a detached mount tree, which
// each run clones (open_tree) and mounts in one step instead of some thirty.
//
// SkeletonMake: the child made with CLONE_NEWUSER | CLONE_NEWNS | CLONE_VM |
// CLONE_VFORK (not CLONE_FILES: the files it writes must never be open in
// another process, or the seal's read-only remount fails with EBUSY; a
// launch cloned meanwhile would copy them) closes every fd but its socket,
// writes its own single-id maps, then runs the maker's steps: the scaffold,
// STEP_SKELETON_ROOT (a tmpfs made with fsmount: a detached tree that any
// mount namespace may clone), the static steps resolved in it,
// STEP_SKELETON_SEAL. It sends the tree's fd over the socket and exits; the
// tree lives as long as an fd of it and is in no namespace's mount table.
// An exec into a running container: a vfork-style helper joins every
// namespace of the container's init through its pidfd (setns, one call) and
// clones the exec's init as our child (CLONE_PARENT) among them.
struct JoinEnter {
  int32_t pidfd;
  int32_t ns_flags;
  void* init_args;  // struct clone_args for init, CLONE_PARENT and CLONE_PIDFD set
  void* plan;       // child_main's argument
  long result;      // out: init's pid, or -errno
  int32_t failed_setns;  // out: 1 when setns was the step that failed
};
void join_enter_main(void* enter);

struct SkeletonMake {
  const Step* steps;
  int32_t nsteps;
  const char* uid_map;
  const char* gid_map;
  int32_t sock;  // the maker's end of a socket pair: the skeleton comes back over it
  int32_t step;  // out: the step that failed (-1: the id maps)
  int32_t err;   // out: its errno, 0 when all went well
};
void skeleton_make_main(void* make);

// One byte with n (1 to 4) fds attached (SCM_RIGHTS) on a socket: 0 or
// -errno. Raw syscalls only: the skeleton maker uses it as the parent does.
long send_fds(int sock, const int32_t* fds, int n);

}  // namespace brig
