// Parent side of a launch: turn the checked JS plan into C data, clone the
// sandbox's init into new namespaces, write its id maps, release it.
#include <fcntl.h>
#include <linux/sched.h>
#include <signal.h>
#include <spawn.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <deque>
#include <mutex>
#include <condition_variable>
#include <thread>
#include <string>
#include <vector>
#include <unordered_map>

#include "addon.h"
#include "plan.h"
#include "sys.h"
#include "trampoline.h"

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif
#ifndef CLONE_CLEAR_SIGHAND
#define CLONE_CLEAR_SIGHAND 0x100000000ULL
#endif

extern char** environ;

namespace brig {
namespace {

// Steps converted from JS once (prepareSteps) and shared by every launch
// that uses them; each launch holds a reference until its init is reaped.
struct PreparedSteps {
  std::deque<std::string> strings;  // deque: growth never moves elements
  std::vector<Step> steps;
  const char* Keep(std::string s) {
    strings.push_back(std::move(s));
    return strings.back().c_str();
  }
};

// Owns every byte the sandbox will read; the sandbox reads it in place.
struct PlanStorage {
  std::shared_ptr<const PreparedSteps> prepared;
  std::deque<std::string> strings;
  std::vector<char*> argv, envp;
  std::vector<const char*> exec_paths;
  std::vector<int32_t> keep;
  std::vector<int32_t> cgroup_fds;
  Plan plan{};

  const char* Keep(std::string s) {
    strings.push_back(std::move(s));
    return strings.back().c_str();
  }
  char* KeepMutable(std::string s) {
    strings.push_back(std::move(s));
    return &strings.back()[0];
  }
};

// Two stacks with a guard page below each: init's on top, the program's
// below. Regions are reused: mapping and unmapping cost more than the launch
// steps that use them.
const size_t kStackRegion = 256 * 1024;
const size_t kGuard = 4096;
// Shared by every Node environment of the process (worker threads too).
std::mutex g_stacks_mu;
std::vector<void*> g_free_stacks;

void* TakeStacks() {
  std::lock_guard<std::mutex> lock(g_stacks_mu);
  if (!g_free_stacks.empty()) {
    void* r = g_free_stacks.back();
    g_free_stacks.pop_back();
    return r;
  }
  void* r = mmap(nullptr, kStackRegion, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (r == MAP_FAILED) return nullptr;
  char* base = static_cast<char*>(r);
  mprotect(base, kGuard, PROT_NONE);
  mprotect(base + kStackRegion / 2, kGuard, PROT_NONE);
  return r;
}

void GiveBackStacks(void* r) {
  if (!r) return;
  std::lock_guard<std::mutex> lock(g_stacks_mu);
  if (g_free_stacks.size() < 64)
    g_free_stacks.push_back(r);
  else
    munmap(r, kStackRegion);
}

}  // namespace

struct LaunchMemory {
  PlanStorage st;
  void* stacks = nullptr;
  ~LaunchMemory() { GiveBackStacks(stacks); }
};

void FreeLaunchMemory(LaunchMemory* m) { delete m; }

namespace {

std::string GetString(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (v.IsString()) return v.As<Napi::String>().Utf8Value();
  if (v.IsBuffer()) {
    auto b = v.As<Napi::Buffer<char>>();
    return std::string(b.Data(), b.Length());
  }
  return std::string();
}

bool Has(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  return !v.IsUndefined() && !v.IsNull();
}

int64_t GetInt(const Napi::Object& o, const char* key, int64_t dflt) {
  Napi::Value v = o.Get(key);
  if (v.IsNumber()) return v.As<Napi::Number>().Int64Value();
  if (v.IsBigInt()) {
    bool lossless;
    return v.As<Napi::BigInt>().Int64Value(&lossless);
  }
  return dflt;
}

void StringArray(const Napi::Object& o, const char* key, PlanStorage& st, std::vector<char*>& out) {
  Napi::Array a = o.Get(key).As<Napi::Array>();
  uint32_t n = a.Length();
  out.reserve(n + 1);
  for (uint32_t i = 0; i < n; i++) out.push_back(st.KeepMutable(a.Get(i).As<Napi::String>().Utf8Value()));
  out.push_back(nullptr);
}

using PreparedHandle = std::shared_ptr<const PreparedSteps>;

std::shared_ptr<PreparedSteps> ConvertSteps(const Napi::Array& steps) {
  auto ps = std::make_shared<PreparedSteps>();
  uint32_t n = steps.Length();
  ps->steps.resize(n);
  PreparedSteps& st = *ps;
  for (uint32_t i = 0; i < n; i++) {
    Napi::Object s = steps.Get(i).As<Napi::Object>();
    Step& out = st.steps[i];
    out = Step{};
    out.kind = static_cast<int32_t>(GetInt(s, "kind", 0));
    out.mode = static_cast<uint32_t>(GetInt(s, "mode", 0));
    out.flags = static_cast<uint64_t>(GetInt(s, "flags", 0));
    if (Has(s, "a")) out.a = st.Keep(GetString(s, "a"));
    if (Has(s, "b")) out.b = st.Keep(GetString(s, "b"));
    if (Has(s, "c")) out.c = st.Keep(GetString(s, "c"));
    if (Has(s, "d")) out.d = st.Keep(GetString(s, "d"));
    out.arg0 = GetInt(s, "arg0", 0);
    out.arg1 = GetInt(s, "arg1", 0);
    out.arg2 = GetInt(s, "arg2", 0);
  }
  return ps;
}

void BuildPlan(const Napi::Object& js, PlanStorage& st) {
  Napi::Value steps = js.Get("steps");
  if (steps.IsExternal())
    st.prepared = *steps.As<Napi::External<PreparedHandle>>().Data();
  else
    st.prepared = ConvertSteps(steps.As<Napi::Array>());
  StringArray(js, "argv", st, st.argv);
  StringArray(js, "envp", st, st.envp);
  std::vector<char*> paths;
  StringArray(js, "execPaths", st, paths);
  st.exec_paths.assign(paths.begin(), paths.end());
  Napi::Array stdio = js.Get("stdio").As<Napi::Array>();
  for (uint32_t i = 0; i < 3; i++) st.plan.stdio[i] = stdio.Get(i).As<Napi::Number>().Int32Value();
  st.plan.steps = st.prepared->steps.data();
  st.plan.nsteps = static_cast<int32_t>(st.prepared->steps.size());
  st.plan.argv = st.argv.data();
  st.plan.envp = st.envp.data();
  st.plan.exec_paths = st.exec_paths.data();
  st.plan.init_name = st.Keep(GetString(js, "initName"));
  st.plan.timings = js.Get("timings").ToBoolean() ? 1 : 0;
  Napi::Value cg = js.Get("cgroupFds");
  if (cg.IsArray()) {
    Napi::Array a = cg.As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); i++) st.cgroup_fds.push_back(a.Get(i).As<Napi::Number>().Int32Value());
  }
  st.plan.cgroup_fds = st.cgroup_fds.data();
  st.plan.ncgroup_fds = static_cast<int32_t>(st.cgroup_fds.size());
  st.plan.notify_sock = -1;
  st.plan.command_fd = -1;
  st.plan.landlock_fd = -1;
  st.plan.skeleton_fd = -1;
  st.plan.join_mode = 0;
  st.plan.pty_sock = -1;
  Napi::Value pty = js.Get("ptySock");
  if (pty.IsNumber()) st.plan.pty_sock = pty.As<Napi::Number>().Int32Value();
}

int WriteProcFile(int procdir, const char* name, const std::string& text) {
  int fd = openat(procdir, name, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  ssize_t w = write(fd, text.data(), text.size());
  int err = w == static_cast<ssize_t>(text.size()) ? 0 : (w < 0 ? errno : EIO);
  close(fd);
  return err;
}

void CloseIf(int& fd) {
  if (fd >= 0) close(fd);
  fd = -1;
}

// A launch that failed after clone: the child is waiting on the release pipe
// (or already gone); kill it and reap it so nothing is left behind.
void KillAndReap(int pidfd) {
  syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, nullptr, 0);
  siginfo_t si;
  while (syscall(SYS_waitid, P_PIDFD, pidfd, &si, WEXITED | __WALL, nullptr) < 0 && errno == EINTR) {
  }
}

std::atomic<bool> g_no_clone3{false};

// init shares our memory (CLONE_VM) and runs child_main on the upper stack.
long CloneChild(uint64_t ns_flags, LaunchMemory* mem, int* pidfd, bool* used_clone3) {
  char* base = static_cast<char*>(mem->stacks);
  char* init_stack = base + kStackRegion / 2 + kGuard;
  size_t init_size = kStackRegion / 2 - kGuard;
  if (!g_no_clone3) {
    struct clone_args args;
    memset(&args, 0, sizeof args);
    args.flags = ns_flags | CLONE_VM | CLONE_PIDFD | CLONE_CLEAR_SIGHAND;
    args.pidfd = reinterpret_cast<uint64_t>(pidfd);
    args.exit_signal = 0;  // no SIGCHLD: libuv's handler has nothing to do with us
    args.stack = reinterpret_cast<uint64_t>(init_stack);
    args.stack_size = init_size;
    long r = brig_clone3_call(&args, sizeof args, child_main, &mem->st.plan);
    if (r != -ENOSYS) {
      *used_clone3 = true;
      return r;
    }
    g_no_clone3 = true;  // remember: this kernel has no clone3
  }
  *used_clone3 = false;
  // Legacy clone: the pidfd comes back through the parent_tid argument.
  return brig_clone_call(ns_flags | CLONE_VM | CLONE_PIDFD, init_stack + init_size, pidfd, child_main, &mem->st.plan);
}

// Runs fn(arg) in a vfork-style child (our memory, and our fd table when
// share_fds, else a copy; on the lower half of `stacks`) plus extra clone
// flags, and reaps it once it has exited.
// 0, or -errno if it could not be made.
long RunVforked(uint64_t extra_flags, void* stacks, void (*fn)(void*), void* arg, bool share_fds) {
  struct clone_args args;
  memset(&args, 0, sizeof args);
  args.flags = extra_flags | CLONE_VM | CLONE_VFORK | (share_fds ? CLONE_FILES : 0) | CLONE_CLEAR_SIGHAND;
  args.exit_signal = 0;
  args.stack = reinterpret_cast<uint64_t>(static_cast<char*>(stacks) + kGuard);
  args.stack_size = kStackRegion / 2 - kGuard;
  long pid = brig_clone3_call(&args, sizeof args, fn, arg);
  if (pid < 0) return pid;
  siginfo_t si;
  while (waitid(P_PID, static_cast<id_t>(pid), &si, WEXITED | __WALL) < 0 && errno == EINTR) {
  }
  return 0;
}

// init through a warm pair (see WarmEnter in plan.h): a vfork-style helper
// on the program's stack (unused until init forks the program, long after
// the helper is gone) joins the pair and clones init as our child into the
// other namespaces. Returns init's pid or -errno; nothing is left on failure.
long CloneWarm(uint64_t ns_flags, LaunchMemory* mem, int user_fd, int net_fd, int* pidfd) {
  char* base = static_cast<char*>(mem->stacks);
  struct clone_args init_args;
  memset(&init_args, 0, sizeof init_args);
  init_args.flags = (ns_flags & ~static_cast<uint64_t>(CLONE_NEWUSER | CLONE_NEWNET)) | CLONE_VM | CLONE_PIDFD | CLONE_CLEAR_SIGHAND | CLONE_PARENT;
  init_args.pidfd = reinterpret_cast<uint64_t>(pidfd);
  init_args.exit_signal = 0;  // CLONE_PARENT: init takes the helper's, which is 0 too
  init_args.stack = reinterpret_cast<uint64_t>(base + kStackRegion / 2 + kGuard);
  init_args.stack_size = kStackRegion / 2 - kGuard;
  WarmEnter w;
  memset(&w, 0, sizeof w);
  w.user_fd = user_fd;
  w.net_fd = net_fd;
  w.init_args = &init_args;
  w.plan = &mem->st.plan;
  w.result = -ENOSYS;
  long r = RunVforked(0, mem->stacks, warm_enter_main, &w, true);
  return r < 0 ? r : w.result;
}

// An exec's init, in a running container: a vfork-style helper joins the
// container's namespaces through `target` (a pidfd of its init) and clones
// init as our child there. Returns init's pid or -errno (*setns_failed set
// when joining was refused); nothing is left on failure.
long CloneJoin(int target, uint64_t ns_flags, LaunchMemory* mem, int* pidfd, bool* setns_failed) {
  char* base = static_cast<char*>(mem->stacks);
  struct clone_args init_args;
  memset(&init_args, 0, sizeof init_args);
  init_args.flags = CLONE_VM | CLONE_PIDFD | CLONE_CLEAR_SIGHAND | CLONE_PARENT;
  init_args.pidfd = reinterpret_cast<uint64_t>(pidfd);
  init_args.exit_signal = 0;
  init_args.stack = reinterpret_cast<uint64_t>(base + kStackRegion / 2 + kGuard);
  init_args.stack_size = kStackRegion / 2 - kGuard;
  JoinEnter j;
  memset(&j, 0, sizeof j);
  j.pidfd = target;
  j.ns_flags = static_cast<int32_t>(ns_flags);
  j.init_args = &init_args;
  j.plan = &mem->st.plan;
  j.result = -ENOSYS;
  long r = RunVforked(0, mem->stacks, join_enter_main, &j, true);
  *setns_failed = j.failed_setns != 0;
  return r < 0 ? r : j.result;
}

inline double NowNs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
}

}  // namespace

Napi::Error StepError(Napi::Env env, const char* step, int err, const std::string& detail) {
  std::string msg = std::string(step) + ": " + strerror(err);
  if (!detail.empty()) msg += " (" + detail + ")";
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("step", Napi::String::New(env, step));
  e.Set("errno", Napi::Number::New(env, err));
  return e;
}

namespace {

// stdio the watcher services itself: input from a buffer, captured output.
// Make() opens the pipes plan.stdinData and plan.capture ask for and puts
// each one's sandbox end in to_sandbox[i]; whatever is still held here when
// this goes is closed.
struct WatchedStdio {
  Stream streams[3];
  int sandbox_end[3] = {-1, -1, -1};

  ~WatchedStdio() {
    for (int i = 0; i < 3; i++) {
      CloseIf(sandbox_end[i]);
      CloseIf(streams[i].fd);
    }
  }

  void Make(Napi::Env env, const Napi::Object& js, int32_t to_sandbox[3]) {
    auto make = [&](int i) {
      int fds[2];
      if (pipe2(fds, O_CLOEXEC) < 0) throw StepError(env, i == 0 ? "stdin-pipe" : "output-pipe", errno);
      sandbox_end[i] = i == 0 ? fds[0] : fds[1];
      streams[i].fd = i == 0 ? fds[1] : fds[0];
      streams[i].used = true;
      fcntl(streams[i].fd, F_SETFL, O_NONBLOCK);
      to_sandbox[i] = sandbox_end[i];
    };
    Napi::Value input = js.Get("stdinData");
    if (input.IsBuffer()) {
      auto b = input.As<Napi::Buffer<char>>();
      make(0);
      streams[0].data.assign(b.Data(), b.Length());
    }
    Napi::Value capture = js.Get("capture");
    if (capture.IsArray()) {
      Napi::Array caps = capture.As<Napi::Array>();
      for (uint32_t i = 1; i <= 2; i++) {
        Napi::Value v = caps.Get(i - 1);
        if (!v.IsNumber()) continue;
        make(static_cast<int>(i));
        streams[i].limit = static_cast<size_t>(v.As<Napi::Number>().Int64Value());
      }
    }
  }

  // The sandbox holds its ends now (or never will).
  void CloseSandboxEnds() {
    for (int& fd : sandbox_end) CloseIf(fd);
  }

  // The watcher's child takes the streams.
  void HandTo(Child* c) {
    for (int i = 0; i < 3; i++) {
      c->io[i] = std::move(streams[i]);
      streams[i].fd = -1;
    }
  }
};

// One launch, in three phases: Prepare (JS thread: the plan, stacks, pipes),
// Execute (any thread: clone, id maps, release), Register (JS thread: the
// watcher takes the child). launch() runs all three at once; launchAsync()
// runs Execute on the launcher thread, so that making a pool's sandboxes
// (the clone alone is half a millisecond, most of it the network namespace)
// does not hold up the event loop.
struct PendingLaunch {
  std::unique_ptr<LaunchMemory> mem;
  uint64_t ns_flags = 0;
  std::string uid_map, gid_map;
  bool defer = false;
  // Maps written, but init waits for release(pidfd): the caller has work to
  // do in its namespaces first (pasta configuring its network).
  bool hold = false;
  bool pooled = false;
  int notify_mode = 0;
  std::vector<int32_t> refusals;
  uint64_t output_limit = 0;
  uint32_t audit_arch = 0;
  WatchedStdio stdio;
  int notify[2] = {-1, -1};
  int command[2] = {-1, -1};
  int release[2] = {-1, -1};
  int reportp[2] = {-1, -1};
  int killp[2] = {-1, -1};
  // Execute's outcome.
  long pid = -1;
  int pidfd = -1;
  bool used_clone3 = false;
  // A warm pair to launch into (the caller's fds, not ours to close), and
  // whether it was used: then the maps are already written.
  int warm_user = -1, warm_net = -1;
  bool used_warm = false;
  // An exec: a pidfd of the running container's init, whose namespaces
  // (ns_flags) the launch joins instead of making its own. The caller's fd.
  int join_pidfd = -1;
  // Our own copy of the skeleton's fd, for init to inherit: the caller may
  // close its own once launch() returns, before launchAsync's clone.
  int skeleton = -1;
  const char* fail_step = nullptr;
  int fail_err = 0;
  double t[5] = {0, 0, 0, 0, 0};
  Napi::FunctionReference on_ready;  // launchAsync only
  Napi::FunctionReference on_exit;

  // Everything opened, closed; a child already cloned is killed and reaped.
  ~PendingLaunch() {
    if (pidfd >= 0) {
      KillAndReap(pidfd);
      close(pidfd);
    }
    for (int* fd : {&notify[0], &notify[1], &command[0], &command[1], &release[0], &release[1], &reportp[0], &reportp[1], &killp[0], &killp[1], &skeleton}) CloseIf(*fd);
  }
};

// JS thread: the plan and everything the sandbox will hold, opened here.
std::unique_ptr<PendingLaunch> PrepareLaunch(Napi::Env env, const Napi::Object& js) {
  if (js.Get("noClone3").ToBoolean()) g_no_clone3 = true;
  auto p = std::make_unique<PendingLaunch>();
  p->t[0] = NowNs();
  p->mem.reset(new LaunchMemory());
  PlanStorage& st = p->mem->st;
  BuildPlan(js, st);
  p->mem->stacks = TakeStacks();
  if (!p->mem->stacks) throw StepError(env, "stack-mmap", errno);
  st.plan.program_stack_top = static_cast<char*>(p->mem->stacks) + kStackRegion / 2;
  p->ns_flags = static_cast<uint64_t>(GetInt(js, "namespaces", 0));
  p->uid_map = GetString(js, "uidMap");
  p->gid_map = GetString(js, "gidMap");
  p->defer = js.Get("deferRelease").ToBoolean();
  p->hold = js.Get("holdRelease").ToBoolean();
  p->notify_mode = static_cast<int>(GetInt(js, "notify", 0));
  // The refusals brig answers itself (report mode): flat pairs nr, errno.
  Napi::Value refusals = js.Get("refusals");
  if (refusals.IsArray()) {
    Napi::Array a = refusals.As<Napi::Array>();
    for (uint32_t i = 0; i + 1 < a.Length(); i += 2) {
      int32_t nr = a.Get(i).As<Napi::Number>().Int32Value();
      int32_t err = a.Get(i + 1).As<Napi::Number>().Int32Value();
      // errno 0 would be a success the kernel never ran: such a pair is dropped (a kill).
      if (err > 0 && err < 4096) p->refusals.insert(p->refusals.end(), {nr, err});
    }
  }
  p->output_limit = static_cast<uint64_t>(GetInt(js, "outputLimit", 0));
  p->audit_arch = static_cast<uint32_t>(GetInt(js, "auditArch", 0));
  p->pooled = js.Get("awaitCommand").ToBoolean();
  Napi::Value warm = js.Get("warm");
  if (warm.IsArray() && !p->defer) {
    p->warm_user = warm.As<Napi::Array>().Get(0u).As<Napi::Number>().Int32Value();
    p->warm_net = warm.As<Napi::Array>().Get(1u).As<Napi::Number>().Int32Value();
  }

  Napi::Value join = js.Get("joinPidfd");
  if (join.IsNumber()) {
    p->join_pidfd = join.As<Napi::Number>().Int32Value();
    st.plan.join_mode = 1;
  }

  Napi::Value skeleton = js.Get("skeleton");
  if (skeleton.IsNumber()) {
    p->skeleton = fcntl(skeleton.As<Napi::Number>().Int32Value(), F_DUPFD_CLOEXEC, 0);
    if (p->skeleton < 0) throw StepError(env, "skeleton", errno);
    st.plan.skeleton_fd = p->skeleton;
  }

  p->stdio.Make(env, js, st.plan.stdio);
  // The seccomp listener comes back over this socket (report and learn modes).
  if (p->notify_mode && socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, p->notify) < 0) throw StepError(env, "notify-socket", errno);
  st.plan.notify_sock = p->notify[1];
  // A pooled sandbox sets itself up and then waits for its command here.
  if (p->pooled && socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, p->command) < 0) throw StepError(env, "command-socket", errno);
  st.plan.command_fd = p->command[1];
  if (pipe2(p->release, O_CLOEXEC) < 0) throw StepError(env, "release-pipe", errno);
  if (pipe2(p->killp, O_CLOEXEC) < 0) throw StepError(env, "kill-pipe", errno);
  if (pipe2(p->reportp, O_CLOEXEC) < 0) throw StepError(env, "report-pipe", errno);
  st.plan.kill_fd = p->killp[0];
  st.plan.release_fd = p->release[0];
  st.plan.release_wfd = p->release[1];
  st.plan.report_fd = p->reportp[1];
  st.keep = {p->release[0], p->reportp[1], st.plan.stdio[0], st.plan.stdio[1], st.plan.stdio[2], p->killp[0]};
  for (int32_t fd : st.cgroup_fds) st.keep.push_back(fd);
  if (p->notify[1] >= 0) st.keep.push_back(p->notify[1]);
  if (p->command[1] >= 0) st.keep.push_back(p->command[1]);
  if (p->skeleton >= 0) st.keep.push_back(p->skeleton);
  if (st.plan.pty_sock >= 0) st.keep.push_back(st.plan.pty_sock);
  std::sort(st.keep.begin(), st.keep.end());
  st.plan.keep_fds = st.keep.data();
  st.plan.nkeep = static_cast<int32_t>(st.keep.size());
  p->t[1] = NowNs();
  return p;
}

// Any thread: clone init into its namespaces, write its id maps, release it.
// Never throws; a failure is left in fail_step and fail_err.
void ExecuteLaunch(PendingLaunch& p) {
  // Block every signal across the clone: the child must not run a Node or
  // libuv handler in its copy of the process before it resets them.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int pidfd = -1;
  long pid = -1;
  const uint64_t warm_ns = CLONE_NEWUSER | CLONE_NEWNET;
  bool joined = p.join_pidfd >= 0;
  bool setns_failed = false;
  if (joined) pid = CloneJoin(p.join_pidfd, p.ns_flags, p.mem.get(), &pidfd, &setns_failed);
  else if (p.warm_user >= 0 && !g_no_clone3 && (p.ns_flags & warm_ns) == warm_ns) {
    pid = CloneWarm(p.ns_flags, p.mem.get(), p.warm_user, p.warm_net, &pidfd);
    p.used_warm = p.used_clone3 = pid >= 0;
  }
  // Without a pair, or if it could not be used (no clone3, no setns), the
  // ordinary way: init makes every namespace itself.
  if (!p.used_warm && !joined) pid = CloneChild(p.ns_flags, p.mem.get(), &pidfd, &p.used_clone3);
  if (joined) p.used_clone3 = true;
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  p.t[2] = NowNs();
  // The sandbox holds its ends now (or never will).
  for (int* fd : {&p.release[0], &p.reportp[1], &p.killp[0], &p.notify[1], &p.command[1], &p.skeleton}) CloseIf(*fd);
  p.stdio.CloseSandboxEnds();
  if (pid < 0) {
    p.fail_step = setns_failed ? "setns" : "clone";
    p.fail_err = static_cast<int>(-pid);
    return;
  }
  p.pid = pid;
  p.pidfd = pidfd;
  if (!p.defer && !p.used_warm && !joined) {
    // The user namespace is the first thing: until its maps are written the
    // child is nobody and can do nothing. setgroups must be denied before an
    // unprivileged process may write gid_map.
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld", pid);
    int procdir = open(path, O_DIRECTORY | O_PATH | O_CLOEXEC);
    if (procdir < 0) {
      p.fail_step = "proc-open";
      p.fail_err = errno;
      return;
    }
    int err = WriteProcFile(procdir, "setgroups", "deny");
    const char* step = "setgroups";
    if (!err) {
      err = WriteProcFile(procdir, "uid_map", p.uid_map);
      step = "uid-map";
    }
    if (!err) {
      err = WriteProcFile(procdir, "gid_map", p.gid_map);
      step = "gid-map";
    }
    close(procdir);
    if (err) {
      p.fail_step = step;
      p.fail_err = err;
      return;
    }
  }
  p.t[3] = NowNs();
  fcntl(p.reportp[0], F_SETFL, O_NONBLOCK);
  // Taken before the release: the sandbox's steps may run (and mark their
  // ends) before this thread is back from write().
  p.t[4] = NowNs();
  if (!p.defer && !p.hold) {
    char go = 1;
    if (write(p.release[1], &go, 1) != 1) {
      p.fail_step = "release";
      p.fail_err = errno;
      return;
    }
    CloseIf(p.release[1]);
  }
}

// JS thread: the watcher takes the child; the launch info for JS.
Napi::Object RegisterLaunch(Napi::Env env, AddonData* data, PendingLaunch& p) {
  auto child = std::make_unique<Child>();
  int pidfd = p.pidfd;
  child->pid = static_cast<int>(p.pid);
  child->pidfd = pidfd;
  child->report_fd = p.reportp[0];
  child->release_wfd = p.release[1];
  child->kill_wfd = p.killp[1];
  child->on_exit = std::move(p.on_exit);
  child->memory = p.mem.release();
  child->notify_mode = p.notify_mode;
  child->refusals = std::move(p.refusals);
  child->output_limit = p.output_limit;
  child->native_arch = p.audit_arch;
  if (p.notify[0] >= 0) fcntl(p.notify[0], F_SETFL, O_NONBLOCK);
  child->notify_sock = p.notify[0];
  child->command_fd = p.command[0];
  child->idle = p.pooled;
  p.stdio.HandTo(child.get());
  // The child owns them now.
  p.pidfd = -1;
  p.reportp[0] = p.release[1] = p.killp[1] = p.notify[0] = p.command[0] = -1;
  data->watcher->Add(std::move(child));

  Napi::Object out = Napi::Object::New(env);
  out.Set("pid", Napi::Number::New(env, static_cast<double>(p.pid)));
  out.Set("pidfd", Napi::Number::New(env, pidfd));
  out.Set("clone3", Napi::Boolean::New(env, p.used_clone3));
  out.Set("warm", Napi::Boolean::New(env, p.used_warm));
  Napi::Array t = Napi::Array::New(env, 4);
  t.Set(0u, Napi::Number::New(env, (p.t[1] - p.t[0]) / 1e6));  // plan conversion, pipes
  t.Set(1u, Napi::Number::New(env, (p.t[2] - p.t[1]) / 1e6));  // clone
  t.Set(2u, Napi::Number::New(env, (p.t[3] - p.t[2]) / 1e6));  // id maps
  t.Set(3u, Napi::Number::New(env, (p.t[4] - p.t[3]) / 1e6));  // release
  out.Set("timings", t);
  out.Set("startNs", Napi::Number::New(env, p.t[0]));
  return out;
}

}  // namespace

// launch(plan, onExit) -> { pid, pidfd, clone3, timings, startNs }
//
// plan.namespaces: clone flags; plan.uidMap/gidMap: map text written by the
// parent unless plan.deferRelease (then the caller writes maps with
// newuidmap/newgidmap and calls release(pidfd)).
Napi::Value Launch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto* data = env.GetInstanceData<AddonData>();
  std::unique_ptr<PendingLaunch> p = PrepareLaunch(env, info[0].As<Napi::Object>());
  p->on_exit = Napi::Persistent(info[1].As<Napi::Function>());
  ExecuteLaunch(*p);
  if (p->fail_step) throw StepError(env, p->fail_step, p->fail_err);
  return RegisterLaunch(env, data, *p);
}

// The launcher thread of an environment: runs ExecuteLaunch for
// launchAsync() and hands the results back to the JS thread. The inits it
// clones die with it (PR_SET_PDEATHSIG follows the cloning thread): it lives
// until the environment's teardown, which ends every sandbox anyway.
class Launcher {
 public:
  Launcher(Napi::Env env, AddonData* data) : env_(env), data_(data) {
    uv_loop_t* loop = nullptr;
    napi_get_uv_event_loop(env, &loop);
    async_ = new uv_async_t;
    uv_async_init(loop, async_, [](uv_async_t* h) { static_cast<Launcher*>(h->data)->Deliver(); });
    async_->data = this;
    uv_unref(reinterpret_cast<uv_handle_t*>(async_));
    thread_ = std::thread([this] { Loop(); });
  }

  // JS thread. While launches are in flight the loop stays alive for them
  // (a pool's close() waits for them); not otherwise.
  void Submit(std::unique_ptr<PendingLaunch> p) {
    if (in_flight_++ == 0) uv_ref(reinterpret_cast<uv_handle_t*>(async_));
    std::lock_guard<std::mutex> lock(mu_);
    todo_.push_back(std::move(p));
    cv_.notify_one();
  }

  // Teardown: the thread stops; launches not registered are undone (their
  // children killed and reaped by ~PendingLaunch); `closed` runs once libuv
  // has closed the async handle.
  void Stop(void (*closed)(void*), void* arg) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
      cv_.notify_one();
    }
    thread_.join();
    todo_.clear();
    done_.clear();
    closed_ = closed;
    closed_arg_ = arg;
    uv_close(reinterpret_cast<uv_handle_t*>(async_), [](uv_handle_t* h) {
      auto* self = static_cast<Launcher*>(h->data);
      delete reinterpret_cast<uv_async_t*>(h);
      self->closed_(self->closed_arg_);
    });
  }

 private:
  void Loop() {
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, nullptr);
    for (;;) {
      std::unique_ptr<PendingLaunch> p;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return stop_ || !todo_.empty(); });
        if (stop_) return;
        p = std::move(todo_.front());
        todo_.pop_front();
      }
      ExecuteLaunch(*p);
      {
        std::lock_guard<std::mutex> lock(mu_);
        done_.push_back(std::move(p));
      }
      uv_async_send(async_);
    }
  }

  void Deliver() {
    std::deque<std::unique_ptr<PendingLaunch>> ready;
    {
      std::lock_guard<std::mutex> lock(mu_);
      ready.swap(done_);
    }
    in_flight_ -= ready.size();
    if (in_flight_ == 0) uv_unref(reinterpret_cast<uv_handle_t*>(async_));
    for (auto& p : ready) {
      // While a worker is being terminated JS cannot run and node-addon-api
      // throws: nothing may escape into libuv. A child already handed to the
      // watcher is ended by its teardown; one not yet, by ~PendingLaunch.
      try {
        Napi::HandleScope scope(env_);
        Napi::FunctionReference cb = std::move(p->on_ready);
        napi_value args[2];
        if (p->fail_step) {
          args[0] = StepError(env_, p->fail_step, p->fail_err).Value();
          args[1] = env_.Undefined();
        } else {
          args[0] = env_.Null();
          args[1] = RegisterLaunch(env_, data_, *p);
        }
        p.reset();
        napi_value global = nullptr, fn = nullptr, ret = nullptr;
        if (napi_get_reference_value(env_, cb, &fn) != napi_ok || !fn || napi_get_global(env_, &global) != napi_ok) continue;
        if (napi_make_callback(env_, nullptr, global, fn, 2, args, &ret) == napi_pending_exception) {
          napi_value err = nullptr;
          if (napi_get_and_clear_last_exception(env_, &err) == napi_ok) napi_fatal_exception(env_, err);
        }
      } catch (...) {
        p.reset();
      }
    }
  }

  Napi::Env env_;
  AddonData* data_;
  uv_async_t* async_ = nullptr;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<PendingLaunch>> todo_, done_;
  bool stop_ = false;
  size_t in_flight_ = 0;  // JS thread only
  void (*closed_)(void*) = nullptr;
  void* closed_arg_ = nullptr;
};

// launchAsync(plan, onReady(err, info), onExit): as launch(), with the clone
// and id maps on the launcher thread. For sandboxes made ahead.
Napi::Value LaunchAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto* data = env.GetInstanceData<AddonData>();
  std::unique_ptr<PendingLaunch> p = PrepareLaunch(env, info[0].As<Napi::Object>());
  p->on_ready = Napi::Persistent(info[1].As<Napi::Function>());
  p->on_exit = Napi::Persistent(info[2].As<Napi::Function>());
  if (!data->launcher) data->launcher = new Launcher(env, data);
  data->launcher->Submit(std::move(p));
  return env.Undefined();
}

void StopLauncher(AddonData* data, void (*closed)(void*), void* arg) {
  if (!data->launcher) return closed(arg);
  data->launcher->Stop(closed, arg);
}

void DeleteLauncher(Launcher* l) { delete l; }

// start(pidfd, command, onExit) -> { pid, pidfd, clone3, timings, startNs }
//
// Gives a pooled sandbox (launched with awaitCommand, set up and waiting) its
// program: argv, envp and exec candidates are written into its plan, which
// init reads once the command arrives; the stdio fds travel with the command.
// One command per sandbox: its /tmp and processes are the last run's.
Napi::Value Start(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto* data = env.GetInstanceData<AddonData>();
  int pidfd = info[0].As<Napi::Number>().Int32Value();
  Napi::Object js = info[1].As<Napi::Object>();
  Napi::Function on_exit = info[2].As<Napi::Function>();
  double t0 = NowNs();
  Child* c = data->watcher->Find(pidfd);
  if (!c || !c->idle || c->command_fd < 0) throw StepError(env, "pool-start", ESRCH);
  PlanStorage& st = c->memory->st;

  int32_t program_fds[3];
  Napi::Array given = js.Get("stdio").As<Napi::Array>();
  for (uint32_t i = 0; i < 3; i++) program_fds[i] = given.Get(i).As<Napi::Number>().Int32Value();
  WatchedStdio watched;
  watched.Make(env, js, program_fds);
  for (int fd : program_fds)
    if (fd < 0) throw StepError(env, "pool-start", EBADF);

  // init is blocked in recvmsg and reads none of this until the command
  // arrives; the sendmsg below orders these writes before it.
  st.argv.clear();
  st.envp.clear();
  StringArray(js, "argv", st, st.argv);
  StringArray(js, "envp", st, st.envp);
  std::vector<char*> paths;
  StringArray(js, "execPaths", st, paths);
  st.exec_paths.assign(paths.begin(), paths.end());
  st.plan.argv = st.argv.data();
  st.plan.envp = st.envp.data();
  st.plan.exec_paths = st.exec_paths.data();
  st.plan.timings = js.Get("timings").ToBoolean() ? 1 : 0;
  double t1 = NowNs();

  long w = send_fds(c->command_fd, program_fds, 3);
  watched.CloseSandboxEnds();
  // The sandbox died while idle (its exit is on its way to the pool).
  if (w < 0) throw StepError(env, "pool-start", static_cast<int>(-w));
  CloseIf(c->command_fd);

  c->on_exit.Reset();
  c->on_exit = Napi::Persistent(on_exit);
  c->output_limit = static_cast<uint64_t>(GetInt(js, "outputLimit", 0));
  watched.HandTo(c);
  data->watcher->Started(c);

  Napi::Object out = Napi::Object::New(env);
  out.Set("pid", Napi::Number::New(env, c->pid));
  out.Set("pidfd", Napi::Number::New(env, pidfd));
  out.Set("clone3", Napi::Boolean::New(env, false));
  Napi::Array t = Napi::Array::New(env, 4);
  t.Set(0u, Napi::Number::New(env, (t1 - t0) / 1e6));  // command into the plan, pipes
  t.Set(1u, Napi::Number::New(env, 0));                 // no clone: made ahead
  t.Set(2u, Napi::Number::New(env, 0));                 // no maps: written ahead
  // The command's send is the release: the sandbox may run (and mark its
  // steps' ends) before sendmsg returns here, so the sandbox's time starts at t1.
  t.Set(3u, Napi::Number::New(env, 0));
  out.Set("timings", t);
  out.Set("startNs", Napi::Number::New(env, t0));
  return out;
}

// prepareSteps(steps) -> handle usable as plan.steps in any number of
// launches: the conversion from JS objects is done once.
Napi::Value PrepareSteps(const Napi::CallbackInfo& info) {
  auto* handle = new PreparedHandle(ConvertSteps(info[0].As<Napi::Array>()));
  return Napi::External<PreparedHandle>::New(info.Env(), handle, [](Napi::Env, PreparedHandle* h) { delete h; });
}

// release(pidfd): let a child launched with deferRelease go on, once the
// caller has written its id maps.
Napi::Value Release(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto* data = env.GetInstanceData<AddonData>();
  int pidfd = info[0].As<Napi::Number>().Int32Value();
  Child* c = data->watcher->Find(pidfd);
  if (!c || c->release_wfd < 0) throw StepError(env, "release", ESRCH);
  char go = 1;
  ssize_t w = write(c->release_wfd, &go, 1);
  int err = errno;
  CloseIf(c->release_wfd);
  if (w != 1) throw StepError(env, "release", err);
  return env.Undefined();
}

namespace {

const char* WarmStepName(int32_t step) {
  switch (step) {
    case WARM_OPEN_USER: return "warm-open-user";
    case WARM_OPEN_NET: return "warm-open-net";
    case WARM_SETGROUPS: return "warm-setgroups";
    case WARM_UID_MAP: return "warm-uid-map";
    case WARM_GID_MAP: return "warm-gid-map";
    default: return "warm";
  }
}

// Makes fds for later launches on a libuv pool thread, in a vfork-style
// child (RunVforked), and hands them to JS as held fds (HeldFds): a warm
// pair, a skeleton. Make() runs the child and fills fds_, or step_ and err_.
class HeldFdsWorker : public Napi::AsyncWorker {
 public:
  HeldFdsWorker(Napi::Function cb, std::shared_ptr<HeldFds> held) : Napi::AsyncWorker(cb), held_(std::move(held)) {}

  // Fds made but never delivered (the environment went first) are closed.
  ~HeldFdsWorker() override {
    for (int fd : fds_) close(fd);
  }

  void Execute() override {
    void* stacks = TakeStacks();
    if (!stacks) {
      Fail("stack-mmap", errno);
      return;
    }
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    Make(stacks);
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    GiveBackStacks(stacks);
  }

  // Raw napi calls, nothing that throws: while a worker thread's
  // environment is torn down JS cannot run, and an exception escaping here
  // would end the process. If the callback never ran, the destructor closes
  // the fds.
  void OnOK() override {
    if (held_->gone) return;  // the environment has been torn down
    napi_env env = Env();
    napi_value args[2] = {nullptr, nullptr};
    if (err_) {
      try {
        Napi::Error e = StepError(Env(), step_, err_);
        if (index_ >= 0) e.Set("index", Napi::Number::New(Env(), index_));
        args[0] = e.Value();
      } catch (...) {
        return;
      }
      napi_get_undefined(env, &args[1]);
    } else {
      if (napi_get_null(env, &args[0]) != napi_ok || napi_create_array_with_length(env, fds_.size(), &args[1]) != napi_ok) return;
      for (size_t i = 0; i < fds_.size(); i++) {
        napi_value v;
        if (napi_create_int32(env, fds_[i], &v) != napi_ok || napi_set_element(env, args[1], static_cast<uint32_t>(i), v) != napi_ok) return;
      }
    }
    napi_value global, ret;
    if (napi_get_global(env, &global) != napi_ok) return;
    // Held for JS before the call: the callback may give them straight back
    // (closeHeld), which closes only what is held.
    for (int fd : fds_) held_->fds.insert(fd);
    napi_status st = napi_call_function(env, global, Callback().Value(), 2, args, &ret);
    if (st == napi_ok || st == napi_pending_exception) {
      fds_.clear();  // it ran (and threw, perhaps): JS's now
    } else {
      for (int fd : fds_) held_->fds.erase(fd);  // it never ran: the destructor closes them
    }
    if (st == napi_pending_exception) {
      napi_value e;
      if (napi_get_and_clear_last_exception(env, &e) == napi_ok) napi_fatal_exception(env, e);
    }
  }

 protected:
  virtual void Make(void* stacks) = 0;
  void Fail(const char* step, int err) {
    step_ = step;
    err_ = err ? err : EIO;
    for (int fd : fds_) close(fd);
    fds_.clear();
  }
  std::vector<int> fds_;
  int32_t index_ = -1;  // the index of the maker's step that failed, for JS to name

 private:
  std::shared_ptr<HeldFds> held_;
  const char* step_ = nullptr;
  int err_ = 0;
};

// One warm pair (the clone of a network namespace is most of a launch's
// cost, and must not hold up the loop).
class WarmWorker : public HeldFdsWorker {
 public:
  WarmWorker(Napi::Function cb, std::shared_ptr<HeldFds> held, std::string uid_map, std::string gid_map)
      : HeldFdsWorker(cb, std::move(held)), uid_map_(std::move(uid_map)), gid_map_(std::move(gid_map)) {}

 protected:
  void Make(void* stacks) override {
    WarmMake m;
    memset(&m, 0, sizeof m);
    m.uid_map = uid_map_.c_str();
    m.gid_map = gid_map_.c_str();
    m.user_fd = m.net_fd = -1;
    long r = RunVforked(CLONE_NEWUSER | CLONE_NEWNET, stacks, warm_make_main, &m, true);
    if (r < 0) return Fail("warm-clone", static_cast<int>(-r));
    for (int fd : {m.user_fd, m.net_fd})
      if (fd >= 0) fds_.push_back(fd);
    if (m.err || fds_.size() != 2) Fail(WarmStepName(m.step), m.err);
  }

 private:
  std::string uid_map_, gid_map_;
};

// Holders of warm pairs for multi-id maps (see warm_hold_main), by pidfd:
// the stack each runs on, unmapped once it has been reaped.
constexpr size_t kHoldStack = 64 * 1024;
std::mutex g_holds_mu;
std::unordered_map<int, void*> g_holds;

// Runs a setuid id-map helper (newuidmap PID LINES...) from this pool
// thread, its stdio on /dev/null, and waits for it (10 s at most, then it is
// killed). 0, or the step that failed and *err.
const char* RunMapHelper(const std::vector<std::string>& argv, long pid, int* err) {
  std::vector<std::string> args = argv;
  args.insert(args.begin() + 1, std::to_string(pid));
  std::vector<char*> cargv;
  for (auto& a : args) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&fa);
  for (int fd = 0; fd < 3; fd++) posix_spawn_file_actions_addopen(&fa, fd, "/dev/null", fd == 0 ? O_RDONLY : O_WRONLY, 0);
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  pid_t child = -1;
  int r = posix_spawn(&child, cargv[0], &fa, &attr, cargv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (r != 0) {
    *err = r;
    return "warm-map-helper-spawn";
  }
  int pfd = static_cast<int>(syscall(SYS_pidfd_open, child, 0));
  if (pfd >= 0) {
    struct pollfd p = {pfd, POLLIN, 0};
    int n;
    do n = poll(&p, 1, 10000);
    while (n < 0 && errno == EINTR);
    if (n == 0) kill(child, SIGKILL);
    close(pfd);
  }
  int status = 0;
  while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return nullptr;
  *err = WIFSIGNALED(status) ? ETIMEDOUT : EPERM;
  return "warm-map-helper";
}

// One pair and its holder, mapped by the setuid helpers (by the holder's
// pid) on this pool thread, never the JS thread: [userFd, netFd, pidfd].
// JS reads the maps back and ends the holder.
class WarmHoldWorker : public HeldFdsWorker {
 public:
  WarmHoldWorker(Napi::Function cb, std::shared_ptr<HeldFds> held, std::vector<std::string> uid_helper, std::vector<std::string> gid_helper)
      : HeldFdsWorker(cb, std::move(held)), uid_helper_(std::move(uid_helper)), gid_helper_(std::move(gid_helper)) {}

 protected:
  void Make(void*) override {
    void* stack = mmap(nullptr, kHoldStack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack == MAP_FAILED) return Fail("warm-hold-stack", errno);
    int pidfd = -1;
    struct clone_args args;
    memset(&args, 0, sizeof args);
    // CLONE_FILES: the holder shares our fd table rather than holding a
    // copy (a copy would keep, for one, the write end of the exec-error pipe
    // of a spawn under way on the JS thread, which then waits for it forever).
    args.flags = CLONE_VM | CLONE_FILES | CLONE_NEWUSER | CLONE_NEWNET | CLONE_PIDFD | CLONE_CLEAR_SIGHAND;
    args.pidfd = reinterpret_cast<uint64_t>(&pidfd);
    args.exit_signal = 0;
    args.stack = reinterpret_cast<uint64_t>(stack);
    args.stack_size = kHoldStack;
    long pid = brig_clone3_call(&args, sizeof args, warm_hold_main, reinterpret_cast<void*>(static_cast<long>(getpid())));
    if (pid < 0) {
      munmap(stack, kHoldStack);
      return Fail("warm-clone", static_cast<int>(-pid));
    }
    char path[64];
    int fds[2] = {-1, -1};
    const char* names[2] = {"user", "net"};
    for (int i = 0; i < 2; i++) {
      snprintf(path, sizeof path, "/proc/%ld/ns/%s", pid, names[i]);
      fds[i] = open(path, O_RDONLY | O_CLOEXEC);
      if (fds[i] < 0) {
        int e = errno;
        if (fds[0] >= 0) close(fds[0]);
        KillAndReap(pidfd);
        close(pidfd);
        munmap(stack, kHoldStack);
        return Fail(i == 0 ? "warm-open-user" : "warm-open-net", e);
      }
    }
    int err = 0;
    const char* step = RunMapHelper(uid_helper_, pid, &err);
    if (!step) step = RunMapHelper(gid_helper_, pid, &err);
    if (step) {
      close(fds[0]);
      close(fds[1]);
      KillAndReap(pidfd);
      close(pidfd);
      munmap(stack, kHoldStack);
      return Fail(step, err);
    }
    {
      std::lock_guard<std::mutex> lock(g_holds_mu);
      g_holds[pidfd] = stack;
    }
    fds_ = {fds[0], fds[1], pidfd};
  }

 private:
  std::vector<std::string> uid_helper_, gid_helper_;
};

// One skeleton: a mount namespace's worth of mounts and files, made once per
// plan off the JS thread.
class SkeletonWorker : public HeldFdsWorker {
 public:
  SkeletonWorker(Napi::Function cb, std::shared_ptr<HeldFds> held, PreparedHandle steps, std::string uid_map, std::string gid_map)
      : HeldFdsWorker(cb, std::move(held)), steps_(std::move(steps)), uid_map_(std::move(uid_map)), gid_map_(std::move(gid_map)) {}

 protected:
  void Make(void* stacks) override {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) return Fail("skeleton-socket", errno);
    SkeletonMake m;
    memset(&m, 0, sizeof m);
    m.steps = steps_->steps.data();
    m.nsteps = static_cast<int32_t>(steps_->steps.size());
    m.uid_map = uid_map_.c_str();
    m.gid_map = gid_map_.c_str();
    m.sock = sv[1];
    long r = RunVforked(CLONE_NEWUSER | CLONE_NEWNS, stacks, skeleton_make_main, &m, false);
    close(sv[1]);
    int fd = r < 0 || m.err ? -1 : ReceiveFd(sv[0]);  // -errno if none came
    close(sv[0]);
    if (r < 0) return Fail("skeleton-clone", static_cast<int>(-r));
    if (fd >= 0) fds_.push_back(fd);
    if (m.err || fd < 0) {
      index_ = m.step;
      Fail(m.step < 0 ? "skeleton-id-maps" : "skeleton-step", m.err);
    }
  }

 private:
  PreparedHandle steps_;
  std::string uid_map_, gid_map_;
};

}  // namespace

// makeWarm(uidMap, gidMap, cb(err, [userFd, netFd])): a fresh user and
// network namespace pair, the user namespace mapped as given, for one launch
// (plan.warm). The fds are close-on-exec and the caller's to close.
Napi::Value MakeWarm(const Napi::CallbackInfo& info) {
  auto* data = info.Env().GetInstanceData<AddonData>();
  auto* w = new WarmWorker(info[2].As<Napi::Function>(), data->held, info[0].As<Napi::String>().Utf8Value(), info[1].As<Napi::String>().Utf8Value());
  w->Queue();
  return info.Env().Undefined();
}

// makeSkeleton(steps, uidMap, gidMap, cb(err, [fd])): runs the maker's plan
// (prepared steps, see SkeletonMake) and gives the skeleton's fd, for the
// launches of one plan (plan.skeleton). Close-on-exec, the caller's to close.
Napi::Value MakeSkeleton(const Napi::CallbackInfo& info) {
  auto* data = info.Env().GetInstanceData<AddonData>();
  PreparedHandle steps = *info[0].As<Napi::External<PreparedHandle>>().Data();
  auto* w = new SkeletonWorker(info[3].As<Napi::Function>(), data->held, std::move(steps), info[1].As<Napi::String>().Utf8Value(), info[2].As<Napi::String>().Utf8Value());
  w->Queue();
  return info.Env().Undefined();
}

// makeWarmHold(uidHelper, gidHelper, cb(err, [userFd, netFd, pidfd])): a
// fresh user and network namespace pair mapped by the helpers (argv without
// the pid: [newuidmap, ...map numbers]), and a pidfd of the process holding
// it (its pid is the pidfd's, in /proc/self/fdinfo) for JS to read the maps
// back. endWarmHold(pidfd) ends that process; the fds are the caller's.
Napi::Value MakeWarmHold(const Napi::CallbackInfo& info) {
  auto* data = info.Env().GetInstanceData<AddonData>();
  auto strings = [](Napi::Array a) {
    std::vector<std::string> v;
    for (uint32_t i = 0; i < a.Length(); i++) v.push_back(a.Get(i).ToString().Utf8Value());
    return v;
  };
  auto uid_helper = strings(info[0].As<Napi::Array>());
  auto gid_helper = strings(info[1].As<Napi::Array>());
  if (uid_helper.empty() || gid_helper.empty()) throw Napi::TypeError::New(info.Env(), "makeWarmHold: helper argv");
  auto* w = new WarmHoldWorker(info[2].As<Napi::Function>(), data->held, std::move(uid_helper), std::move(gid_helper));
  w->Queue();
  return info.Env().Undefined();
}

// endWarmHold(pidfd): kills and reaps a pair's holder (SIGKILL: it runs
// nothing, so this is immediate), unmaps its stack and closes the pidfd.
Napi::Value EndWarmHold(const Napi::CallbackInfo& info) {
  auto* data = info.Env().GetInstanceData<AddonData>();
  int pidfd = info[0].As<Napi::Number>().Int32Value();
  void* stack = nullptr;
  {
    std::lock_guard<std::mutex> lock(g_holds_mu);
    auto it = g_holds.find(pidfd);
    if (it == g_holds.end()) return info.Env().Undefined();
    stack = it->second;
    g_holds.erase(it);
  }
  KillAndReap(pidfd);
  munmap(stack, kHoldStack);
  if (data->held->fds.erase(pidfd)) close(pidfd);
  return info.Env().Undefined();
}

// closeHeld(...fds): fds from makeWarm or makeSkeleton given back (used, or
// not wanted). Only fds still held are closed.
Napi::Value CloseHeld(const Napi::CallbackInfo& info) {
  auto* data = info.Env().GetInstanceData<AddonData>();
  for (size_t i = 0; i < info.Length(); i++) {
    int fd = info[i].As<Napi::Number>().Int32Value();
    if (data->held->fds.erase(fd)) close(fd);
  }
  return info.Env().Undefined();
}

}  // namespace brig
