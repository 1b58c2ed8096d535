// The sandbox side of a launch: everything here runs in the cloned child,
// between clone and execve, in a copy of a multithreaded process.
//
// Rules (see sys.h): raw system calls only, on data the parent prepared; no
// allocation, no locks, no C++ objects, no exceptions, no errno. A failing step
// writes (step index, errno) to the report pipe and exits; the parent turns
// that into a SetupError naming the step.
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/mount.h>
#include <linux/openat2.h>
#include <linux/prctl.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <linux/filter.h>
#include <linux/securebits.h>
#include <net/if.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <poll.h>
#include <sys/signalfd.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>

#include "plan.h"
#include "sys.h"
#include "trampoline.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

namespace brig {
namespace {

[[noreturn]] void die_now(int code) {
  for (;;) sys(SYS_exit_group, code);
}

void zero(void* p, size_t n) {
  volatile char* c = static_cast<volatile char*>(p);
  for (size_t i = 0; i < n; i++) c[i] = 0;
}

// volatile, like zero(): gcc must not turn the loop into a call to memcpy.
void copy(void* dst, const void* src, size_t n) {
  volatile char* d = static_cast<volatile char*>(dst);
  const volatile char* s = static_cast<const volatile char*>(src);
  for (size_t i = 0; i < n; i++) d[i] = s[i];
}

void report(const Plan* plan, int32_t kind, int32_t step, int32_t err, int32_t wstatus, int32_t pid) {
  Report r;
  zero(&r, sizeof r);
  r.magic = REPORT_MAGIC;
  r.kind = kind;
  r.step = step;
  r.err = err;
  r.wstatus = wstatus;
  r.pid = pid;
  long n;
  do n = sys(SYS_write, plan->report_fd, P(&r), sizeof r);
  while (n == -EINTR);
}

int64_t monotonic_ns() {
  struct timespec ts;
  sys(SYS_clock_gettime, CLOCK_MONOTONIC, P(&ts));
  return static_cast<int64_t>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

void mark(const Plan* plan, int step) {
  Report r;
  zero(&r, sizeof r);
  r.magic = REPORT_MAGIC;
  r.kind = REPORT_MARK;
  r.step = step;
  r.ns = monotonic_ns();
  sys(SYS_write, plan->report_fd, P(&r), sizeof r);
}

[[noreturn]] void fail(const Plan* plan, int step, long negerr) {
  report(plan, REPORT_STEP_FAILED, step, static_cast<int32_t>(-negerr), 0, 0);
  die_now(127);
}

// Closes every fd in [lo, hi]; close_range where the kernel has it.
void close_span(int lo, long hi) {
  if (hi < lo) return;
  long r = sys(SYS_close_range, lo, hi > 0x7fffffffL ? ~0U : static_cast<unsigned>(hi), 0);
  if (r == 0) return;
  struct rlimit lim;
  long top = 65536;
  if (sys(SYS_prlimit64, 0, RLIMIT_NOFILE, 0, P(&lim)) == 0 && lim.rlim_cur != RLIM_INFINITY) top = static_cast<long>(lim.rlim_cur);
  if (hi > top) hi = top;
  for (long fd = lo; fd <= hi; fd++) sys(SYS_close, fd);
}

// Init holds a copy of every fd Node had (sockets, the epoll fd, files): it
// must not keep them alive for the length of the run, and the program must
// never see them. keep[] is sorted by the parent.
void close_all_but(const int32_t* keep, int n) {
  int lo = 0;
  for (int i = 0; i < n; i++) {
    if (keep[i] < lo) continue;
    close_span(lo, keep[i] - 1);
    lo = keep[i] + 1;
  }
  close_span(lo, 0x7fffffffL + 1L);
}

// Mount read-only without clearing the flags the kernel locked on a mount that
// came from a more privileged namespace (nosuid, nodev, noexec, atime): a
// plain MS_REMOUNT|MS_RDONLY would drop them and fail with EPERM.
// `path` is a path, or "" with `fd` the mount itself (a target resolved in
// the new root, below); fd_path is then the same mount as a path.
long set_readonly_at(long fd, const char* path, const char* fd_path, bool recursive) {
  struct mount_attr attr;
  zero(&attr, sizeof attr);
  attr.attr_set = MOUNT_ATTR_RDONLY;
  long r = sys(SYS_mount_setattr, fd, P(path), (recursive ? AT_RECURSIVE : 0) | (path[0] ? 0 : AT_EMPTY_PATH), P(&attr), sizeof attr);
  if (r != -ENOSYS) return r;
  if (!path[0]) path = fd_path;
  struct statfs st;
  r = sys(SYS_statfs, P(path), P(&st));
  if (r < 0) return r;
  unsigned long flags = MS_REMOUNT | MS_BIND | MS_RDONLY;
  if (st.f_flags & ST_NOSUID) flags |= MS_NOSUID;
  if (st.f_flags & ST_NODEV) flags |= MS_NODEV;
  if (st.f_flags & ST_NOEXEC) flags |= MS_NOEXEC;
  if (st.f_flags & ST_NOATIME) flags |= MS_NOATIME;
  if (st.f_flags & ST_NODIRATIME) flags |= MS_NODIRATIME;
  if (st.f_flags & ST_RELATIME) flags |= MS_RELATIME;
  return sys(SYS_mount, 0, P(path), 0, static_cast<long>(flags), 0);
}

long set_readonly(const char* path, bool recursive) { return set_readonly_at(AT_FDCWD, path, path, recursive); }

// ---------------------------------------------------------------------------
// Paths inside the new root. Until pivot_root the new root is a directory,
// /newroot, next to the host's root parked at /oldroot. An image's files are
// its author's: a symlink `mnt -> /oldroot/home/you` or `../../..` in one
// would have the kernel follow it out of the new root when a plan step
// mkdirs, mounts or writes at "/newroot/mnt/x", onto the host's own files.
// So every such target is opened with openat2's RESOLVE_IN_ROOT, which
// resolves symlinks and ".." as if /newroot were already "/" (the way they
// will resolve for the program), and the step then acts on that fd: *at()
// calls on the parent directory, and mount(2) on /oldroot/proc/self/fd/N,
// a path the kernel follows to exactly that directory. Paths elsewhere (the
// scaffold, the host's under /oldroot) are the plan's own and used as given.

const char kNewRoot[] = "/newroot";
const size_t kNewRootLen = sizeof kNewRoot - 1;

// The part of `path` below the new root ("etc/hosts"), or null.
const char* below_new_root(const char* path) {
  for (size_t i = 0; i < kNewRootLen; i++)
    if (path[i] != kNewRoot[i]) return nullptr;
  if (path[kNewRootLen] != '/' || path[kNewRootLen + 1] == 0) return nullptr;
  return path + kNewRootLen + 1;
}

// The new root's directory, opened once per run_steps and kept on its stack
// (never in a global: this code runs in Node's memory, beside other
// launches). A mount on /newroot itself covers the directory the fd holds,
// so the steps that mount on the plan's own paths forget it.
struct NewRoot {
  long fd;
};

void forget_root(NewRoot* root) {
  if (root->fd >= 0) sys(SYS_close, root->fd);
  root->fd = -1;
}

long open_in_root(NewRoot* nr, const char* rel, long flags, long mode) {
  if (nr->fd < 0) nr->fd = sys(SYS_openat, AT_FDCWD, P(kNewRoot), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  long root = nr->fd;
  if (root < 0) {
    nr->fd = -1;
    return root;
  }
  struct open_how how;
  zero(&how, sizeof how);
  how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
  how.mode = static_cast<uint64_t>(mode);
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  return sys(SYS_openat2, root, P(rel), P(&how), sizeof how);
}

// `rel`'s parent directory, opened in the new root; *name is its last component.
long open_parent_in_root(NewRoot* root, const char* rel, const char** name) {
  char parent[4096];
  size_t slash = 0, n = str_len(rel);
  if (n >= sizeof parent) return -ENAMETOOLONG;
  for (size_t i = 0; i < n; i++)
    if (rel[i] == '/') slash = i + 1;
  *name = rel + slash;
  if (slash == 0) {
    parent[0] = '.';
    parent[1] = 0;
  } else {
    copy(parent, rel, slash);
    parent[slash] = 0;
  }
  return open_in_root(root, parent, O_PATH | O_DIRECTORY, 0);
}

// openat(2) of a plan path, resolved in the new root when it lies there.
long open_target(NewRoot* root, const char* path, long flags, long mode) {
  const char* rel = below_new_root(path);
  return rel ? open_in_root(root, rel, flags, mode) : sys(SYS_openat, AT_FDCWD, P(path), flags | O_CLOEXEC, mode);
}

// The directory a plan path is to be made in, for mkdirat and symlinkat: its
// parent opened in the new root when it lies there, else the path as given.
struct ParentDir {
  long fd;           // AT_FDCWD outside the new root
  const char* name;  // relative to fd
};

long open_parent(NewRoot* root, const char* path, ParentDir* out) {
  const char* rel = below_new_root(path);
  out->fd = AT_FDCWD;
  out->name = path;
  if (!rel) return 0;
  long fd = open_parent_in_root(root, rel, &out->name);
  if (fd < 0) return fd;
  out->fd = fd;
  return 0;
}

void close_parent(const ParentDir& d) {
  if (d.fd >= 0) sys(SYS_close, d.fd);
}

// "/oldroot/proc/self/fd/N" into out (at least 40 bytes).
void fd_path(char* out, long fd) {
  const char prefix[] = "/oldroot/proc/self/fd/";
  copy(out, prefix, sizeof prefix - 1);
  char digits[24];
  int k = 0;
  do digits[k++] = static_cast<char>('0' + fd % 10);
  while ((fd /= 10) > 0);
  char* o = out + sizeof prefix - 1;
  while (k > 0) *o++ = digits[--k];
  *o = 0;
}

// mount(2) with the target resolved in the new root when it lies there.
long mount_target(NewRoot* root, const char* source, const char* target, const char* fstype, unsigned long flags, const char* data) {
  const char* rel = below_new_root(target);
  if (!rel) {
    forget_root(root);
    return sys(SYS_mount, P(source), P(target), P(fstype), static_cast<long>(flags), P(data));
  }
  long fd = open_in_root(root, rel, O_PATH, 0);
  if (fd < 0) return fd;
  char path[48];
  fd_path(path, fd);
  long r = sys(SYS_mount, P(source), P(path), P(fstype), static_cast<long>(flags), P(data));
  sys(SYS_close, fd);
  return r;
}

// set_readonly with the mount resolved in the new root when it lies there
// (opened after the mount was made: the fd is then the mount's own root).
long set_readonly_target(NewRoot* root, const char* target, bool recursive) {
  const char* rel = below_new_root(target);
  if (!rel) return set_readonly(target, recursive);
  long fd = open_in_root(root, rel, O_PATH, 0);
  if (fd < 0) return fd;
  char path[48];
  fd_path(path, fd);
  long r = set_readonly_at(fd, "", path, recursive);
  sys(SYS_close, fd);
  return r;
}

// A recursive bind of source on target, each resolved in the new root when
// it lies there, made read-only when asked. The bind is made as a
// detached copy (open_tree) and attached on the target's fd (move_mount):
// no path through /proc, and the read-only flag set before it is visible.
long bind_target(NewRoot* root, const char* source, const char* target, bool readonly) {
  long src_fd = -1, dst_fd = -1, tree = -1, r = 0;
  const char* src_rel = below_new_root(source);
  const char* dst_rel = below_new_root(target);
  if (src_rel) {
    r = src_fd = open_in_root(root, src_rel, O_PATH, 0);
    if (r >= 0) r = tree = sys(SYS_open_tree, src_fd, P(""), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE | AT_EMPTY_PATH);
  } else {
    r = tree = sys(SYS_open_tree, AT_FDCWD, P(source), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
  }
  bool set_later = false;
  if (r >= 0 && readonly) {
    struct mount_attr attr;
    zero(&attr, sizeof attr);
    attr.attr_set = MOUNT_ATTR_RDONLY;
    r = sys(SYS_mount_setattr, tree, P(""), AT_RECURSIVE | AT_EMPTY_PATH, P(&attr), sizeof attr);
    if (r == -ENOSYS) r = 0, set_later = true;  // before 5.12: remounted once attached
  }
  if (r >= 0 && dst_rel) {
    r = dst_fd = open_in_root(root, dst_rel, O_PATH, 0);
    if (r >= 0) r = sys(SYS_move_mount, tree, P(""), dst_fd, P(""), MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH);
  } else if (r >= 0) {
    forget_root(root);
    r = sys(SYS_move_mount, tree, P(""), AT_FDCWD, P(target), MOVE_MOUNT_F_EMPTY_PATH);
  }
  if (src_fd >= 0) sys(SYS_close, src_fd);
  if (dst_fd >= 0) sys(SYS_close, dst_fd);
  if (tree >= 0) sys(SYS_close, tree);
  if (r >= 0 && set_later) r = set_readonly_target(root, target, true);
  return r;
}

// A run's root from the skeleton: a clone of the whole prebuilt tree (its
// binds included, their read-only flags with them) mounted on the new
// root's directory. init's copy of the skeleton's fd is closed right after:
// neither a pooled sandbox waiting for its command nor the program holds it.
long mount_skeleton(NewRoot* root, const Plan* plan, const char* target) {
  forget_root(root);  // mounting on the new root's directory itself
  long tree = sys(SYS_open_tree, plan->skeleton_fd, P(""), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE | AT_EMPTY_PATH);
  long r = tree;
  if (tree >= 0) {
    r = sys(SYS_move_mount, tree, P(""), AT_FDCWD, P(target), MOVE_MOUNT_F_EMPTY_PATH);
    sys(SYS_close, tree);
  }
  if (plan->skeleton_fd >= 0) sys(SYS_close, plan->skeleton_fd);
  return r;
}

// The skeleton maker's own state: the tmpfs's configuration fd (kept for
// the read-only reconfiguration at the seal) and the detached tree.
struct SkeletonTree {
  long fs;
  long tree;
};

// A tmpfs made with the new mount API and never attached: fsmount puts it
// in an anonymous mount namespace of its own, whose trees any namespace may
// clone (a tree cloned from an attached mount may be cloned again only in
// the namespace it came from). The plan's steps then build in it through
// root->fd, resolving their paths in it as a sandbox's resolve in /newroot.
long skeleton_root(NewRoot* root, const Step* s, SkeletonTree* t) {
  long fs = sys(SYS_fsopen, P("tmpfs"), FSOPEN_CLOEXEC);
  if (fs < 0) return fs;
  t->fs = fs;
  long r = sys(SYS_fsconfig, fs, FSCONFIG_SET_STRING, P("mode"), P("0755"), 0);
  if (r == 0) r = sys(SYS_fsconfig, fs, FSCONFIG_SET_STRING, P("size"), P(s->a), 0);
  if (r == 0) r = sys(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, 0, 0, 0);
  if (r == 0) r = t->tree = sys(SYS_fsmount, fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
  if (r < 0) return r;
  forget_root(root);
  root->fd = sys(SYS_fcntl, t->tree, F_DUPFD_CLOEXEC, 0);
  return root->fd < 0 ? root->fd : 0;
}

// Every run shares the skeleton's tmpfs, so it must be read-only for all of
// them whatever one does: the superblock itself is made read-only, which
// only a holder of CAP_SYS_ADMIN in the maker's user namespace could undo
// (no sandbox is in it), not merely the mount, whose flag the root of a
// sandbox's own user namespace could clear on its clone. Propagation is
// private: nothing mounted in one run's clone reaches another. Last, a
// clone as each run will make, so that a kernel that refuses it refuses
// here, once, and not in a run.
long skeleton_seal(SkeletonTree* t) {
  struct mount_attr attr;
  zero(&attr, sizeof attr);
  attr.propagation = MS_PRIVATE;
  long r = sys(SYS_mount_setattr, t->tree, P(""), AT_EMPTY_PATH | AT_RECURSIVE, P(&attr), sizeof attr);
  if (r == 0) {
    zero(&attr, sizeof attr);
    attr.attr_set = MOUNT_ATTR_RDONLY;
    r = sys(SYS_mount_setattr, t->tree, P(""), AT_EMPTY_PATH, P(&attr), sizeof attr);
  }
  if (r == 0) r = sys(SYS_fsconfig, t->fs, FSCONFIG_SET_FLAG, P("ro"), 0, 0);
  if (r == 0) r = sys(SYS_fsconfig, t->fs, FSCONFIG_CMD_RECONFIGURE, 0, 0, 0);
  if (r < 0) return r;
  sys(SYS_close, t->fs);
  t->fs = -1;
  long trial = sys(SYS_open_tree, t->tree, P(""), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE | AT_EMPTY_PATH);
  if (trial < 0) return trial;
  sys(SYS_close, trial);
  return 0;
}

long write_all(int fd, const char* data, size_t len) {
  while (len > 0) {
    long n = sys(SYS_write, fd, P(data), static_cast<long>(len));
    if (n == -EINTR) continue;
    if (n < 0) return n;
    data += n;
    len -= static_cast<size_t>(n);
  }
  return 0;
}

long loopback_up() {
  long fd = sys(SYS_socket, AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return fd;
  struct ifreq ifr;
  zero(&ifr, sizeof ifr);
  ifr.ifr_name[0] = 'l';
  ifr.ifr_name[1] = 'o';
  long r = sys(SYS_ioctl, fd, SIOCGIFFLAGS, P(&ifr));
  if (r == 0) {
    ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP | IFF_RUNNING);
    r = sys(SYS_ioctl, fd, SIOCSIFFLAGS, P(&ifr));
  }
  sys(SYS_close, fd);
  return r;
}

// Landlock's uapi, spelled out here so that older headers build the addon
// (the kernel takes a shorter ruleset attr from an older ABI).
struct LandlockRulesetAttr {
  uint64_t handled_access_fs;
  uint64_t handled_access_net;
  uint64_t scoped;
};
struct __attribute__((packed)) LandlockPathBeneath {
  uint64_t allowed_access;
  int32_t parent_fd;
};
const long kLandlockRulePathBeneath = 1;
#ifndef SYS_landlock_create_ruleset
#define SYS_landlock_create_ruleset 444
#define SYS_landlock_add_rule 445
#define SYS_landlock_restrict_self 446
#endif

// The ruleset the plan describes (see landlockPlan in src/launch/plan.ts): one
// rule per path in d, each marked W (arg0's rights for a directory, arg1's
// for a file: a file rule with directory rights is EINVAL) or F (arg1's
// rights, writing to files that exist, whatever it is). Made by init, once
// per sandbox (a pooled one, ahead of its run), and enforced by the
// program (landlock_restrict) once its stdio is known. The plan is this
// launch's own memory, so init may leave the fd's number in it.
long landlock(const Plan* plan, const Step* s) {
  LandlockRulesetAttr attr = {static_cast<uint64_t>(s->arg0), 0, static_cast<uint64_t>(s->arg2)};
  // Only the fields this kernel's ABI has: scoped came with ABI 6.
  long size = s->arg2 ? static_cast<long>(sizeof attr) : static_cast<long>(sizeof attr.handled_access_fs);
  long rs = sys(SYS_landlock_create_ruleset, P(&attr), size, 0);
  if (rs < 0) return rs;
  long r = 0;
  for (const char* p = s->d; r == 0 && p && *p; p += str_len(p) + 1) {
    bool files_only = p[0] == 'F';
    long fd = sys(SYS_openat, AT_FDCWD, P(p + 1), O_PATH | O_CLOEXEC);
    if (fd < 0) {
      r = fd;
      break;
    }
    struct stat st;
    r = sys(SYS_newfstatat, fd, P(""), P(&st), AT_EMPTY_PATH);
    if (r == 0) {
      LandlockPathBeneath rule;
      rule.allowed_access = static_cast<uint64_t>(S_ISDIR(st.st_mode) && !files_only ? s->arg0 : s->arg1);
      rule.parent_fd = static_cast<int32_t>(fd);
      r = sys(SYS_landlock_add_rule, rs, kLandlockRulePathBeneath, P(&rule), 0);
    }
    sys(SYS_close, fd);
  }
  // init has no stdio of its own, so the ruleset may have come as fd 0-2,
  // where the program's stdio step will put its streams; nor may it sit on
  // the number the seccomp handoff is dup'd onto (flags). Move it clear.
  long moved = r < 0 ? r : sys(SYS_fcntl, rs, F_DUPFD_CLOEXEC, 3);
  if (moved >= 0 && moved == static_cast<long>(s->flags)) {
    long again = sys(SYS_fcntl, moved, F_DUPFD_CLOEXEC, moved + 1);
    sys(SYS_close, moved);
    moved = again;
  }
  sys(SYS_close, rs);
  if (moved < 0) return moved;
  const_cast<Plan*>(plan)->landlock_fd = static_cast<int32_t>(moved);
  return 0;
}

// The program's stdout and stderr may be a host file, terminal or /dev/null
// that the rules do not cover: reopening them (`echo x > /dev/stderr`, through
// /proc/self/fd) is ordinary, so they get file rights too. Pipes and sockets
// need none. stdin does not: it may be the caller's input file, which the
// program could otherwise reopen for writing. Then the domain is enforced:
// the program and whatever it starts are in it; init is not and needs no
// no_new_privs (the step after drop-capabilities sets it for the program).
long landlock_restrict(const Plan* plan, const Step* s) {
  long rs = plan->landlock_fd;
  if (rs < 0) return -EBADF;
  long r = 0;
  for (int fd = 1; fd <= 2 && r == 0 && s->arg1 != 0; fd++) {
    struct stat st;
    if (sys(SYS_newfstatat, fd, P(""), P(&st), AT_EMPTY_PATH) != 0) continue;
    if (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode) || S_ISDIR(st.st_mode)) continue;
    LandlockPathBeneath rule;
    rule.allowed_access = static_cast<uint64_t>(s->arg1);
    rule.parent_fd = fd;
    r = sys(SYS_landlock_add_rule, rs, kLandlockRulePathBeneath, P(&rule), 0);
  }
  if (r == 0) r = sys(SYS_landlock_restrict_self, rs, 0);
  sys(SYS_close, rs);
  return r;
}

// After this the process cannot regain a capability: not by execve of a
// root-owned or file-capability binary, not by setuid(0), not through the
// ambient set. Securebits go first because setting them needs CAP_SETPCAP.
long drop_caps() {
  long r = sys(SYS_prctl, PR_SET_SECUREBITS,
               SECBIT_KEEP_CAPS_LOCKED | SECBIT_NO_SETUID_FIXUP | SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_NOROOT |
                   SECBIT_NOROOT_LOCKED | SECBIT_NO_CAP_AMBIENT_RAISE | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED);
  if (r < 0) return r;
  for (long cap = 0; cap < 64; cap++) {
    r = sys(SYS_prctl, PR_CAPBSET_DROP, cap);
    if (r == -EINVAL) break;  // past the kernel's last capability
    if (r < 0) return r;
  }
  r = sys(SYS_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
  if (r < 0 && r != -EINVAL) return r;
  struct __user_cap_header_struct hdr;
  struct __user_cap_data_struct data[2];
  zero(&hdr, sizeof hdr);
  zero(data, sizeof data);
  hdr.version = _LINUX_CAPABILITY_VERSION_3;
  return sys(SYS_capset, P(&hdr), P(data));
}

// Node ignores SIGPIPE and execve keeps ignored signals ignored; the program
// must start with the dispositions any program expects.
long reset_signals() {
  struct {
    void* handler;
    unsigned long flags;
    void* restorer;
    uint64_t mask;
  } act;
  zero(&act, sizeof act);
  for (long sig = 1; sig <= 64; sig++) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    sys(SYS_rt_sigaction, sig, P(&act), 0, 8);
  }
  uint64_t empty = 0;
  return sys(SYS_rt_sigprocmask, SIG_SETMASK, P(&empty), 0, 8);
}

long dup_stdio(const Plan* plan) {
  // Move every source above 2 first, so that a source which is itself 0, 1
  // or 2 is not overwritten before it is used.
  long tmp[3];
  for (int i = 0; i < 3; i++) {
    tmp[i] = sys(SYS_fcntl, plan->stdio[i], F_DUPFD_CLOEXEC, 3);
    if (tmp[i] < 0) return tmp[i];
  }
  for (int i = 0; i < 3; i++) {
    long r = sys(SYS_dup3, tmp[i], i, 0);
    if (r < 0) return r;
  }
  return 0;
}

long mark_fds_cloexec() {
  long r = sys(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC);
  if (r != -ENOSYS && r != -EINVAL) return r;
  struct rlimit lim;
  long top = 65536;
  if (sys(SYS_prlimit64, 0, RLIMIT_NOFILE, 0, P(&lim)) == 0 && lim.rlim_cur != RLIM_INFINITY) top = static_cast<long>(lim.rlim_cur);
  for (long fd = 3; fd < top; fd++) sys(SYS_fcntl, fd, F_SETFD, FD_CLOEXEC);
  return 0;
}

// Installs the filter, last thing before execve. With a listener, the
// listener goes to brig's parent over the handoff socket (one sendmsg, which
// the compiled filter lets through); it is close-on-exec, as is the socket.
long install_seccomp(const Step* s) {
  struct sock_fprog prog;
  prog.len = static_cast<unsigned short>(s->arg0);
  prog.filter = reinterpret_cast<struct sock_filter*>(const_cast<char*>(s->d));
  if (!(s->arg1 & SECCOMP_STEP_LISTENER)) return sys(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, P(&prog));
  long listener = sys(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, P(&prog));
  if (listener < 0) return listener;
  const int32_t fd = static_cast<int32_t>(listener);
  return send_fds(static_cast<int>(s->arg2), &fd, 1);
}

// execvp's rules without libc: try each candidate; ENOENT and ENOTDIR mean
// "not here", EACCES is remembered but the search goes on.
long exec_program(const Plan* plan) {
  long best = -ENOENT;
  for (const char* const* p = plan->exec_paths; *p; p++) {
    long r = sys(SYS_execve, P(*p), P(plan->argv), P(plan->envp));
    if (r == -ENOENT || r == -ENOTDIR) continue;
    if (r == -EACCES) {
      best = r;
      continue;
    }
    return r;
  }
  return best;
}

// Ends every process of the sandbox but init and reaps them all. Reaped by
// init, their CPU time counts in the rusage the parent gets for init; killed
// by the kernel as init exits, it would be lost.
void kill_and_reap_all(const Plan* plan, long program, int* program_status, bool* program_done, bool asked) {
  // An exec's init is one process among the container's: kill(-1) from it
  // would end the container. It ends the program's process group (setsid
  // made it one), and only when asked to; what the program started and left
  // running stays, as it does in docker exec.
  if (!plan->join_mode) sys(SYS_kill, -1, SIGKILL);  // from a pid namespace's init: all of it but init
  else if (asked) {
    sys(SYS_kill, -program, SIGKILL);
    sys(SYS_kill, program, SIGKILL);
  }
  for (;;) {
    int status = 0;
    long r = sys(SYS_wait4, -1, P(&status), __WALL, 0);
    if (r == program && !*program_done) {
      *program_status = status;
      *program_done = true;
    }
    if (r == -ECHILD) return;
  }
}

[[noreturn]] void init_reap(const Plan* plan, long program) {
  // Init keeps only the report pipe and the kill pipe: the program's stdio
  // must reach EOF in the parent when the program's tree is gone, not when
  // init goes.
  int32_t keep[2] = {plan->report_fd < plan->kill_fd ? plan->report_fd : plan->kill_fd,
                     plan->report_fd < plan->kill_fd ? plan->kill_fd : plan->report_fd};
  close_all_but(keep, plan->kill_fd >= 0 ? 2 : 1);
  // Every signal is blocked in init (the parent blocked them around clone):
  // SIGCHLD arrives through a signalfd, beside the kill pipe. So do the
  // signals init passes on to the program, as Docker's --init (tini) does:
  // `kill -TERM 1` from inside a container (an exec), or a signal to init
  // from the host, reaches the program. A blocked signal is queued even for
  // a pid namespace's init with no handler (the kernel ignores only
  // unblocked default-action ones), and SIGKILL or SIGSTOP from inside the
  // namespace still never reaches init.
  uint64_t forwarded = (1ULL << (SIGTERM - 1)) | (1ULL << (SIGINT - 1)) | (1ULL << (SIGHUP - 1)) | (1ULL << (SIGQUIT - 1)) |
                       (1ULL << (SIGUSR1 - 1)) | (1ULL << (SIGUSR2 - 1)) | (1ULL << (SIGWINCH - 1));
  uint64_t chld = (1ULL << (SIGCHLD - 1)) | forwarded;
  long sfd = sys(SYS_signalfd4, -1, P(&chld), 8, SFD_CLOEXEC | SFD_NONBLOCK);
  int status = 0;
  bool done = false;
  bool killed = false;
  for (;;) {
    // Reap what has exited; the run ends with the program.
    for (;;) {
      int st = 0;
      long r = sys(SYS_wait4, -1, P(&st), __WALL | WNOHANG, 0);
      if (r == program) {
        status = st;
        done = true;
      }
      if (r <= 0) break;
    }
    if (done) break;
    struct pollfd fds[2];
    zero(fds, sizeof fds);
    fds[0].fd = static_cast<int>(sfd);
    fds[0].events = POLLIN;
    fds[1].fd = plan->kill_fd;
    fds[1].events = POLLIN;
    long n = sys(SYS_ppoll, P(fds), plan->kill_fd >= 0 ? 2 : 1, 0, 0, 8);
    if (n < 0 && n != -EINTR) {
      // No signalfd or poll: fall back to a plain blocking wait.
      int st = 0;
      long r = sys(SYS_wait4, program, P(&st), __WALL, 0);
      if (r == program) {
        status = st;
        done = true;
        break;
      }
      continue;
    }
    if (fds[0].revents) {
      struct signalfd_siginfo si[8];
      long got;
      while ((got = sys(SYS_read, sfd, P(si), sizeof si)) > 0)
        for (long k = 0; k < got / static_cast<long>(sizeof si[0]); k++)
          if (si[k].ssi_signo != SIGCHLD && si[k].ssi_signo < 64 && (forwarded & (1ULL << (si[k].ssi_signo - 1))))
            sys(SYS_kill, program, static_cast<long>(si[k].ssi_signo));
    }
    if (fds[1].revents) {
      // The parent asks (a byte), or is gone (EOF): end everything now.
      killed = true;
      break;
    }
  }
  // When the run ended: the program reaped, or the end asked for. Taken
  // before the rest of the tree is killed, so that of two sandboxes joined
  // by pipes the one that ended first can be told.
  int64_t ended_ns = monotonic_ns();
  // Orphans the program left, or everything when asked: killed and reaped
  // here, so that their CPU time is in init's account.
  kill_and_reap_all(plan, program, &status, &done, killed);
  if (plan->timings) mark(plan, -1);
  Report r;
  zero(&r, sizeof r);
  r.magic = REPORT_MAGIC;
  r.kind = REPORT_EXIT;
  r.step = killed ? 1 : 0;
  r.wstatus = status;
  r.pid = static_cast<int32_t>(program);
  r.ns = ended_ns;
  struct rusage ru;
  if (sys(SYS_getrusage, RUSAGE_CHILDREN, P(&ru)) == 0) {
    r.utime_us = static_cast<int64_t>(ru.ru_utime.tv_sec) * 1000000 + ru.ru_utime.tv_usec;
    r.stime_us = static_cast<int64_t>(ru.ru_stime.tv_sec) * 1000000 + ru.ru_stime.tv_usec;
    r.maxrss_kb = ru.ru_maxrss;
    r.minflt = ru.ru_minflt;
    r.majflt = ru.ru_majflt;
    r.nvcsw = ru.ru_nvcsw;
    r.nivcsw = ru.ru_nivcsw;
  }
  long n;
  do n = sys(SYS_write, plan->report_fd, P(&r), sizeof r);
  while (n == -EINTR);
  die_now(0);
}

[[noreturn]] void run_steps(const Plan* plan, int from);
long fs_step(NewRoot* root, const Step* s, bool* handled);

// STEP_OWN_PTY: a terminal of the sandbox's own devpts instance, mounted in
// its new root (so its number, and the list in /dev/pts, are the sandbox's
// alone: the host's terminals are not there). The master goes to the parent,
// which relays it; the peer (opened through the master, TIOCGPTPEER: no path
// looked up) becomes the program's stdio. init's copies close in init_reap.
long own_pty(const Plan* plan, const Step* s) {
  if (plan->pty_sock < 0) return -EBADF;
  long master = sys(SYS_openat, AT_FDCWD, P("/dev/pts/ptmx"), O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (master < 0) return master;
  int unlock = 0;
  long r = sys(SYS_ioctl, master, TIOCSPTLCK, P(&unlock));
  if (r == 0 && s->arg0 > 0 && s->arg1 > 0) {
    struct winsize ws;
    zero(&ws, sizeof ws);
    ws.ws_col = static_cast<unsigned short>(s->arg0);
    ws.ws_row = static_cast<unsigned short>(s->arg1);
    r = sys(SYS_ioctl, master, TIOCSWINSZ, P(&ws));
  }
  long peer = r < 0 ? r : sys(SYS_ioctl, master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (peer < 0) {
    sys(SYS_close, master);
    return peer;
  }
  const int32_t fd = static_cast<int32_t>(master);
  r = send_fds(plan->pty_sock, &fd, 1);
  sys(SYS_close, master);
  if (r < 0) {
    sys(SYS_close, peer);
    return r;
  }
  Plan* writable = const_cast<Plan*>(plan);  // the plan lives in the parent's heap; the program reads stdio after us
  for (int i = 0; i < 3; i++) writable->stdio[i] = static_cast<int32_t>(peer);
  return 0;
}

// A pooled sandbox, fully set up, waits here for its command. The parent has
// written argv, envp and the exec candidates into the plan (our memory is
// its memory) before sending; the message carries the program's stdio fds.
// EOF means the pool let this sandbox go: init leaves without a report.
long await_command(const Plan* plan) {
  char byte = 0;
  struct iovec iov;
  iov.iov_base = &byte;
  iov.iov_len = 1;
  alignas(struct cmsghdr) char control[CMSG_SPACE(3 * sizeof(int))];
  struct msghdr mh;
  zero(&mh, sizeof mh);
  zero(control, sizeof control);
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  mh.msg_control = control;
  mh.msg_controllen = sizeof control;
  long r;
  do r = sys(SYS_recvmsg, plan->command_fd, P(&mh), MSG_CMSG_CLOEXEC);
  while (r == -EINTR);
  if (r == 0) die_now(0);
  if (r < 0) return r;
  struct cmsghdr* cm = CMSG_FIRSTHDR(&mh);
  if (!cm || cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS || cm->cmsg_len != CMSG_LEN(3 * sizeof(int))) return -EPROTO;
  int fds[3];
  copy(fds, CMSG_DATA(cm), sizeof fds);
  Plan* writable = const_cast<Plan*>(plan);  // the plan lives in the parent's heap, not in read-only memory
  for (int i = 0; i < 3; i++) writable->stdio[i] = fds[i];
  sys(SYS_close, plan->command_fd);
  return 0;
}

struct ProgramStart {
  const Plan* plan;
  int from;
};

void program_entry(void* arg) {
  const ProgramStart* ps = static_cast<const ProgramStart*>(arg);
  run_steps(ps->plan, ps->from);
}

// The program's process: a vfork-style child of init in the same memory, on
// its own stack; init sleeps until the program has exec'd or died, so the
// two never run on shared data at once. Nothing of the Node process is
// copied, which is what makes a launch cheap.
long start_program(const Plan* plan, int from) {
  ProgramStart ps{plan, from};
  // The program shares Node's memory until it execs (CLONE_VM: no copy of
  // Node's page tables), except when it changes its uid (set-ids): the kernel
  // then marks its memory non-dumpable, and shared, that would be Node's
  // own: /proc/<node> turns root's, and Node could no longer write its next
  // sandbox's id maps. Such a program gets a copy of the memory instead.
  long vm = CLONE_VM;
  for (int i = from; i < plan->nsteps; i++)
    if (plan->steps[i].kind == STEP_SET_IDS) vm = 0;
  return brig_clone_call(vm | CLONE_VFORK | SIGCHLD, plan->program_stack_top, nullptr, program_entry, &ps);
}

// Writes all of text to the file at path (a /proc file of our own), or -errno.
long write_own_proc(const char* path, const char* text) {
  long fd = sys(SYS_openat, AT_FDCWD, P(path), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return fd;
  size_t n = str_len(text);
  long w = sys(SYS_write, fd, P(text), n);
  sys(SYS_close, fd);
  if (w < 0) return w;
  return static_cast<size_t>(w) == n ? 0 : -EIO;
}

// What the parent writes for a launch on the ordinary path, written by a
// new user namespace's creator for itself (which needs no privilege in the
// parent namespace for the creator's own ids): setgroups denied for good,
// then the maps. 0, or -errno with *which the file that failed (0-2).
long write_own_maps(const char* uid_map, const char* gid_map, int* which) {
  const char* files[3] = {"/proc/self/setgroups", "/proc/self/uid_map", "/proc/self/gid_map"};
  const char* texts[3] = {"deny", uid_map, gid_map};
  for (*which = 0; *which < 3; ++*which) {
    long r = write_own_proc(files[*which], texts[*which]);
    if (r < 0) return r;
  }
  return 0;
}

[[noreturn]] void warm_failed(WarmMake* m, int32_t step, long negerr) {
  m->step = step;
  m->err = static_cast<int32_t>(-negerr);
  die_now(1);
}

}  // namespace

void warm_make_main(void* arg) {
  WarmMake* m = static_cast<WarmMake*>(arg);
  sys(SYS_prctl, PR_SET_NAME, P("brig-warm"));
  // The fds land in the parent's table (CLONE_FILES): they outlive us and
  // keep both namespaces alive after we exit.
  long u = sys(SYS_openat, AT_FDCWD, P("/proc/self/ns/user"), O_RDONLY | O_CLOEXEC);
  if (u < 0) warm_failed(m, WARM_OPEN_USER, u);
  m->user_fd = static_cast<int32_t>(u);
  long n = sys(SYS_openat, AT_FDCWD, P("/proc/self/ns/net"), O_RDONLY | O_CLOEXEC);
  if (n < 0) warm_failed(m, WARM_OPEN_NET, n);
  m->net_fd = static_cast<int32_t>(n);
  // The caller's one id inside, as the parent would map it.
  int which = 0;
  long r = write_own_maps(m->uid_map, m->gid_map, &which);
  if (r < 0) warm_failed(m, WARM_SETGROUPS + which, r);
  die_now(0);
}

void warm_hold_main(void* arg) {
  const long parent = reinterpret_cast<long>(arg);
  sys(SYS_prctl, PR_SET_NAME, P("brig-warm-hold"));
  // Killed with its maker's thread (a pool thread: at the process's end),
  // and never left behind if the maker was gone before the prctl.
  sys(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL);
  if (sys(SYS_getppid) != parent) die_now(1);
  // Every signal is blocked (the pool thread's mask): only SIGKILL ends this.
  for (;;) sys(SYS_ppoll, 0, 0, 0, 0);
}

long send_fds(int sock, const int32_t* fds, int n) {
  if (n < 1 || n > 4) return -EINVAL;
  char byte = 1;
  struct iovec iov;
  iov.iov_base = &byte;
  iov.iov_len = 1;
  alignas(struct cmsghdr) char control[CMSG_SPACE(4 * sizeof(int32_t))];
  zero(control, sizeof control);
  struct msghdr mh;
  zero(&mh, sizeof mh);
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  mh.msg_control = control;
  mh.msg_controllen = CMSG_SPACE(n * sizeof(int32_t));
  struct cmsghdr* cm = CMSG_FIRSTHDR(&mh);
  cm->cmsg_level = SOL_SOCKET;
  cm->cmsg_type = SCM_RIGHTS;
  cm->cmsg_len = CMSG_LEN(n * sizeof(int32_t));
  copy(CMSG_DATA(cm), fds, n * sizeof(int32_t));
  long r;
  do r = sys(SYS_sendmsg, sock, P(&mh), MSG_NOSIGNAL);
  while (r == -EINTR);
  return r < 0 ? r : 0;
}

void skeleton_make_main(void* arg) {
  SkeletonMake* m = static_cast<SkeletonMake*>(arg);
  sys(SYS_prctl, PR_SET_NAME, P("brig-skel"));
  const int32_t keep[1] = {m->sock};
  close_all_but(keep, 1);
  // Files the maker writes are owned, on the host, by the caller, as a
  // sandbox's init's would be: the one id mapped here is the caller's.
  int which = 0;
  long r = write_own_maps(m->uid_map, m->gid_map, &which);
  int32_t failed = -1;
  NewRoot root = {-1};
  SkeletonTree t = {-1, -1};
  for (int32_t i = 0; r == 0 && i < m->nsteps; i++) {
    const Step* s = &m->steps[i];
    bool fs = true;
    if (s->kind == STEP_SKELETON_ROOT) r = skeleton_root(&root, s, &t);
    else if (s->kind == STEP_SKELETON_SEAL) r = skeleton_seal(&t);
    else r = fs_step(&root, s, &fs);
    if (!fs) r = -EINVAL;
    if (r < 0) failed = i;
  }
  if (r == 0 && t.tree < 0) r = -EINVAL, failed = m->nsteps;  // a plan without STEP_SKELETON_ROOT
  if (r == 0) {
    failed = m->nsteps;
    const int32_t tree = static_cast<int32_t>(t.tree);
    r = send_fds(m->sock, &tree, 1);
  }
  if (r < 0) {
    m->step = failed;
    m->err = static_cast<int32_t>(-r);
    die_now(1);
  }
  die_now(0);
}

void join_enter_main(void* arg) {
  JoinEnter* j = static_cast<JoinEnter*>(arg);
  // One setns through the pidfd: every namespace at once, the user
  // namespace first (the kernel orders them), so that its capabilities
  // there let us join the rest. The exec's init then gets no more than the
  // container's own init has.
  long r = sys(SYS_setns, j->pidfd, j->ns_flags);
  if (r < 0) {
    j->result = r;
    j->failed_setns = 1;
    die_now(1);
  }
  struct clone_args* args = static_cast<struct clone_args*>(j->init_args);
  j->result = brig_clone3_call(args, sizeof *args, child_main, j->plan);
  die_now(0);
}

void warm_enter_main(void* arg) {
  WarmEnter* w = static_cast<WarmEnter*>(arg);
  // Joining the user namespace gives us every capability in it, which
  // joining its network namespace (owned by it) and making the others need.
  long r = sys(SYS_setns, w->user_fd, CLONE_NEWUSER);
  if (r == 0) r = sys(SYS_setns, w->net_fd, CLONE_NEWNET);
  if (r < 0) {
    w->result = r;
    die_now(1);
  }
  struct clone_args* args = static_cast<struct clone_args*>(w->init_args);
  w->result = brig_clone3_call(args, sizeof *args, child_main, w->plan);
  die_now(0);
}

void child_main(void* arg) {
  const Plan* plan = static_cast<const Plan*>(arg);
  // Die with the thread that cloned us. Set before the release wait so that a
  // parent dying in between cannot leave us running: the read below sees EOF.
  sys(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL);
  sys(SYS_close, plan->release_wfd);
  close_all_but(plan->keep_fds, plan->nkeep);
  char go = 0;
  long n;
  do n = sys(SYS_read, plan->release_fd, P(&go), 1);
  while (n == -EINTR);
  if (n != 1) die_now(126);
  sys(SYS_close, plan->release_fd);

  // init runs in the Node process's memory, which holds the host's secrets.
  // The program cannot read it through /proc/1/{mem,environ} or ptrace: init
  // holds every capability of the namespace and the program none, and the
  // kernel lets a process inspect another only if it has all of the other's
  // capabilities. (PR_SET_DUMPABLE would say the same, but dumpability
  // belongs to the memory, which is Node's: it would change Node itself.)
  sys(SYS_prctl, PR_SET_NAME, P(plan->init_name));
  run_steps(plan, 0);
}

namespace {

// The steps that make the new root's files and mounts, shared by a
// sandbox's init and the skeleton maker. *handled is false for other kinds.
long fs_step(NewRoot* root, const Step* s, bool* handled) {
  *handled = true;
  long r;
  switch (s->kind) {
    case STEP_MOUNT:
      return mount_target(root, s->a, s->b, s->c, static_cast<unsigned long>(s->flags), s->d);
    case STEP_BIND:
      return bind_target(root, s->a, s->b, s->arg0 != 0);
    case STEP_SET_READONLY:
      return set_readonly_target(root, s->a, s->arg0 != 0);
    case STEP_MKDIR: {
      ParentDir d;
      r = open_parent(root, s->a, &d);
      if (r == 0) r = sys(SYS_mkdirat, d.fd, P(d.name), s->mode);
      close_parent(d);
      return r == -EEXIST ? 0 : r;
    }
    case STEP_TOUCH:
      r = open_target(root, s->a, O_WRONLY | O_CREAT | O_NOFOLLOW, s->mode);
      return r >= 0 ? sys(SYS_close, r) : r;
    case STEP_SYMLINK: {
      ParentDir d;
      r = open_parent(root, s->b, &d);
      if (r == 0) r = sys(SYS_symlinkat, P(s->a), d.fd, P(d.name));
      close_parent(d);
      return r;
    }
    case STEP_WRITE_FILE:
      r = open_target(root, s->a, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, s->mode);
      if (r >= 0) {
        long fd = r;
        r = write_all(static_cast<int>(fd), s->d, static_cast<size_t>(s->arg0));
        sys(SYS_close, fd);
      }
      return r;
    case STEP_PIVOT_ROOT:
      forget_root(root);
      r = sys(SYS_chdir, P(s->a));
      if (r == 0) r = sys(SYS_pivot_root, P("."), P(s->b));
      // pivot_root(".", ".") stacks the old root on top of the new one; a
      // lazy unmount of "." then takes the old root and everything under it
      // away without needing a directory to park it in.
      if (r == 0 && s->b[0] == '.' && s->b[1] == 0) r = sys(SYS_umount2, P("."), MNT_DETACH);
      if (r == 0) r = sys(SYS_chdir, P("/"));
      return r;
    default:
      *handled = false;
      return 0;
  }
}

[[noreturn]] void run_steps(const Plan* plan, int from) {
  long r = 0;
  NewRoot root = {-1};
  for (int i = from; i < plan->nsteps; i++) {
    const Step* s = &plan->steps[i];
    bool fs = false;
    r = fs_step(&root, s, &fs);
    if (!fs) switch (s->kind) {
      case STEP_SKELETON:
        r = mount_skeleton(&root, plan, s->a);
        break;
      case STEP_CHDIR:
        r = sys(SYS_chdir, P(s->a));
        break;
      case STEP_SETHOSTNAME:
        r = sys(SYS_sethostname, P(s->a), static_cast<long>(str_len(s->a)));
        break;
      case STEP_LOOPBACK_UP:
        r = loopback_up();
        break;
      case STEP_AWAIT_COMMAND:
        r = await_command(plan);
        break;
      case STEP_LCHOWN:
        r = sys(SYS_fchownat, AT_FDCWD, P(s->a), static_cast<long>(s->arg0), static_cast<long>(s->arg1), AT_SYMLINK_NOFOLLOW);
        break;
      case STEP_EXIT:
        die_now(0);
      case STEP_SET_IDS:
        // The kernel clears a process's capabilities when its uids leave 0,
        // and drop-capabilities, next, needs CAP_SETPCAP to lock the
        // securebits and empty the bounding set: keep them across the change
        // (drop-capabilities then takes every one of them).
        r = sys(SYS_prctl, PR_SET_SECUREBITS, SECBIT_NO_SETUID_FIXUP);
        if (r == 0) r = sys(SYS_setgroups, 0, 0);
        if (r == 0) r = sys(SYS_setresgid, static_cast<long>(s->arg1), static_cast<long>(s->arg1), static_cast<long>(s->arg1));
        if (r == 0) r = sys(SYS_setresuid, static_cast<long>(s->arg0), static_cast<long>(s->arg0), static_cast<long>(s->arg0));
        break;
      case STEP_FORK_PROGRAM:
        if (plan->timings) mark(plan, i);
        r = start_program(plan, i + 1);
        if (r > 0) init_reap(plan, r);
        break;
      case STEP_SETSID:
        r = sys(SYS_setsid);
        if (r > 0) r = 0;
        break;
      case STEP_SETRLIMIT: {
        struct rlimit lim;
        lim.rlim_cur = static_cast<rlim_t>(s->arg1);
        lim.rlim_max = static_cast<rlim_t>(s->arg2);
        r = sys(SYS_prlimit64, 0, static_cast<long>(s->arg0), P(&lim), 0);
        break;
      }
      case STEP_DROP_CAPS:
        r = drop_caps();
        break;
      case STEP_LANDLOCK:
        r = landlock(plan, s);
        break;
      case STEP_LANDLOCK_RESTRICT:
        r = landlock_restrict(plan, s);
        break;
      case STEP_NO_NEW_PRIVS:
        r = sys(SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
        break;
      case STEP_SECCOMP:
        // No mark after this step: the filter may not allow write.
        r = install_seccomp(s);
        if (r < 0) fail(plan, i, r);
        continue;
      case STEP_CGROUP_JOIN:
        // Writing "0" moves the writer. The kernel checks the move against
        // whoever opened the file (the parent, which made the cgroups), so
        // the sandbox needs no right of its own. init stays out: it shares
        // Node's memory, and an out-of-memory kill of init would take Node.
        r = 0;
        for (int k = 0; k < plan->ncgroup_fds && r >= 0; k++) {
          r = sys(SYS_write, plan->cgroup_fds[k], P("0"), 1);
          if (r == 1) r = 0;
        }
        break;
      case STEP_NOTIFY_FD:
        r = plan->notify_sock < 0 ? -EBADF : sys(SYS_dup3, plan->notify_sock, s->arg0, O_CLOEXEC);
        if (r >= 0) r = 0;
        break;
      case STEP_STDIO:
        r = dup_stdio(plan);
        break;
      case STEP_CLOSE_FDS:
        r = mark_fds_cloexec();
        break;
      case STEP_RESET_SIGNALS:
        r = reset_signals();
        break;
      case STEP_EXEC:
        r = exec_program(plan);
        break;
      case STEP_PDEATHSIG:
        r = sys(SYS_prctl, PR_SET_PDEATHSIG, static_cast<long>(s->arg0));
        break;
      case STEP_CONTROLLING_TTY:
        // After setsid and stdio: a shell on a terminal needs it as its
        // controlling terminal for job control and ^C.
        r = sys(SYS_ioctl, 0, TIOCSCTTY, 0);
        break;
      case STEP_OWN_PTY:
        r = own_pty(plan, s);
        break;
      case STEP_UMASK:
        sys(SYS_umask, static_cast<long>(s->arg0));
        r = 0;
        break;
      default:
        r = -EINVAL;
    }
    if (r < 0) fail(plan, i, r);
    if (plan->timings) mark(plan, i);
  }
  // A plan always ends with EXEC; reaching here means it did not.
  fail(plan, plan->nsteps, -EINVAL);
}

}  // namespace
}  // namespace brig
