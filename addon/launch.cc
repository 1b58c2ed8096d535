// Parent side of a launch: turn the checked JS plan into C data, clone the
// sandbox's init into new namespaces, write its id maps, release it.
#include <fcntl.h>
#include <linux/sched.h>
#include <signal.h>
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

// launch(plan, onExit) -> { pid, pidfd, clone3, timings }
//
// plan.namespaces: clone flags; plan.uidMap/gidMap: map text written by the
// parent unless plan.deferRelease (then the caller writes maps with
// newuidmap/newgidmap and calls release(pidfd)).
Napi::Value Launch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto* data = env.GetInstanceData<AddonData>();
  Napi::Object js = info[0].As<Napi::Object>();
  Napi::Function on_exit = info[1].As<Napi::Function>();
  if (js.Get("noClone3").ToBoolean()) g_no_clone3 = true;
  double t0 = NowNs();

  std::unique_ptr<LaunchMemory> mem(new LaunchMemory());
  PlanStorage& st = mem->st;
  BuildPlan(js, st);
  mem->stacks = TakeStacks();
  if (!mem->stacks) throw StepError(env, "stack-mmap", errno);
  st.plan.program_stack_top = static_cast<char*>(mem->stacks) + kStackRegion / 2;
  uint64_t ns_flags = static_cast<uint64_t>(GetInt(js, "namespaces", 0));
  std::string uid_map = GetString(js, "uidMap");
  std::string gid_map = GetString(js, "gidMap");
  bool defer = js.Get("deferRelease").ToBoolean();

  // stdio the watcher services itself: input from a buffer, captured output.
  // The sandbox's ends are closed here once it holds them.
  Stream streams[3];
  int sandbox_end[3] = {-1, -1, -1};
  auto close_stdio = [&]() {
    for (int i = 0; i < 3; i++) {
      if (sandbox_end[i] >= 0) close(sandbox_end[i]);
      if (streams[i].fd >= 0) close(streams[i].fd);
      sandbox_end[i] = streams[i].fd = -1;
    }
  };
  auto make_stream = [&](int i) {
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) {
      int e = errno;
      close_stdio();
      throw StepError(env, i == 0 ? "stdin-pipe" : "output-pipe", e);
    }
    sandbox_end[i] = i == 0 ? p[0] : p[1];
    streams[i].fd = i == 0 ? p[1] : p[0];
    streams[i].used = true;
    fcntl(streams[i].fd, F_SETFL, O_NONBLOCK);
    st.plan.stdio[i] = sandbox_end[i];
  };
  Napi::Value input = js.Get("stdinData");
  if (input.IsBuffer()) {
    auto b = input.As<Napi::Buffer<char>>();
    make_stream(0);
    streams[0].data.assign(b.Data(), b.Length());
  }
  Napi::Value capture = js.Get("capture");
  if (capture.IsArray()) {
    Napi::Array caps = capture.As<Napi::Array>();
    for (uint32_t i = 1; i <= 2; i++) {
      Napi::Value v = caps.Get(i - 1);
      if (!v.IsNumber()) continue;
      make_stream(static_cast<int>(i));
      streams[i].limit = static_cast<size_t>(v.As<Napi::Number>().Int64Value());
    }
  }

  // The seccomp listener comes back over this socket (report and learn modes).
  int notify_mode = static_cast<int>(GetInt(js, "notify", 0));
  int notify[2] = {-1, -1};
  if (notify_mode && socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, notify) < 0) {
    int e = errno;
    close_stdio();
    throw StepError(env, "notify-socket", e);
  }
  auto close_notify = [&]() {
    CloseIf(notify[0]);
    CloseIf(notify[1]);
  };
  st.plan.notify_sock = notify[1];

  // A pooled sandbox sets itself up and then waits for its command here.
  bool pooled = js.Get("awaitCommand").ToBoolean();
  int command[2] = {-1, -1};
  if (pooled && socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, command) < 0) {
    int e = errno;
    close_stdio();
    close_notify();
    throw StepError(env, "command-socket", e);
  }
  st.plan.command_fd = command[1];

  int release[2] = {-1, -1}, reportp[2] = {-1, -1}, killp[2] = {-1, -1};
  // Everything opened so far, closed when a later step fails.
  auto close_launch_fds = [&]() {
    for (int* fd : {&release[0], &release[1], &reportp[0], &reportp[1], &killp[0], &killp[1], &command[0], &command[1]}) CloseIf(*fd);
    close_stdio();
    close_notify();
  };
  auto make_pipe = [&](int p[2], const char* step) {
    if (pipe2(p, O_CLOEXEC) == 0) return;
    int e = errno;
    close_launch_fds();
    throw StepError(env, step, e);
  };
  make_pipe(release, "release-pipe");
  make_pipe(killp, "kill-pipe");
  make_pipe(reportp, "report-pipe");
  st.plan.kill_fd = killp[0];
  st.plan.release_fd = release[0];
  st.plan.release_wfd = release[1];
  st.plan.report_fd = reportp[1];
  st.keep = {release[0], reportp[1], st.plan.stdio[0], st.plan.stdio[1], st.plan.stdio[2]};
  st.keep.push_back(killp[0]);
  for (int32_t fd : st.cgroup_fds) st.keep.push_back(fd);
  if (notify[1] >= 0) st.keep.push_back(notify[1]);
  if (command[1] >= 0) st.keep.push_back(command[1]);
  std::sort(st.keep.begin(), st.keep.end());
  st.plan.keep_fds = st.keep.data();
  st.plan.nkeep = static_cast<int32_t>(st.keep.size());
  double t1 = NowNs();

  // Block every signal across the clone: the child must not run a Node or
  // libuv handler in its copy of the process before it resets them.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int pidfd = -1;
  bool used_clone3 = false;
  long pid = CloneChild(ns_flags, mem.get(), &pidfd, &used_clone3);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  double t2 = NowNs();

  close(release[0]);
  close(reportp[1]);
  close(killp[0]);
  int kill_w = killp[1];
  for (int& fd : sandbox_end) CloseIf(fd);
  CloseIf(notify[1]);
  CloseIf(command[1]);
  int release_w = release[1];
  int report_r = reportp[0];
  if (pid < 0) {
    close(release_w);
    close(report_r);
    close(kill_w);
    CloseIf(command[0]);
    close_stdio();
    close_notify();
    throw StepError(env, "clone", static_cast<int>(-pid));
  }

  auto fail = [&](const char* step, int err) {
    KillAndReap(pidfd);
    close(pidfd);
    CloseIf(command[0]);
    CloseIf(release_w);
    CloseIf(report_r);
    CloseIf(kill_w);
    close_stdio();
    close_notify();
    return StepError(env, step, err);
  };

  if (!defer) {
    // The user namespace is the first thing: until its maps are written the
    // child is nobody and can do nothing. setgroups must be denied before an
    // unprivileged process may write gid_map.
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld", pid);
    int procdir = open(path, O_DIRECTORY | O_PATH | O_CLOEXEC);
    if (procdir < 0) throw fail("proc-open", errno);
    int err = WriteProcFile(procdir, "setgroups", "deny");
    const char* step = "setgroups";
    if (!err) {
      err = WriteProcFile(procdir, "uid_map", uid_map);
      step = "uid-map";
    }
    if (!err) {
      err = WriteProcFile(procdir, "gid_map", gid_map);
      step = "gid-map";
    }
    close(procdir);
    if (err) throw fail(step, err);
  }
  double t3 = NowNs();
  if (!defer) {
    char go = 1;
    if (write(release_w, &go, 1) != 1) throw fail("release", errno);
    CloseIf(release_w);
  }
  fcntl(report_r, F_SETFL, O_NONBLOCK);
  double t4 = NowNs();

  auto child = std::make_unique<Child>();
  child->pid = static_cast<int>(pid);
  child->pidfd = pidfd;
  child->report_fd = report_r;
  child->release_wfd = release_w;
  child->kill_wfd = kill_w;
  child->on_exit = Napi::Persistent(on_exit);
  child->memory = mem.release();
  child->notify_mode = notify_mode;
  child->output_limit = static_cast<uint64_t>(GetInt(js, "outputLimit", 0));
  child->native_arch = static_cast<uint32_t>(GetInt(js, "auditArch", 0));
  if (notify[0] >= 0) fcntl(notify[0], F_SETFL, O_NONBLOCK);
  child->notify_sock = notify[0];
  notify[0] = -1;
  child->command_fd = command[0];
  child->idle = pooled;
  for (int i = 0; i < 3; i++) {
    child->io[i] = std::move(streams[i]);
    streams[i].fd = -1;
  }
  data->watcher->Add(std::move(child));

  Napi::Object out = Napi::Object::New(env);
  out.Set("pid", Napi::Number::New(env, static_cast<double>(pid)));
  out.Set("pidfd", Napi::Number::New(env, pidfd));
  out.Set("clone3", Napi::Boolean::New(env, used_clone3));
  Napi::Array t = Napi::Array::New(env, 4);
  t.Set(0u, Napi::Number::New(env, (t1 - t0) / 1e6));  // plan conversion, pipes
  t.Set(1u, Napi::Number::New(env, (t2 - t1) / 1e6));  // clone
  t.Set(2u, Napi::Number::New(env, (t3 - t2) / 1e6));  // id maps
  t.Set(3u, Napi::Number::New(env, (t4 - t3) / 1e6));  // release
  out.Set("timings", t);
  out.Set("startNs", Napi::Number::New(env, t0));
  return out;
}

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

  int send_fds[3];
  Napi::Array stdio = js.Get("stdio").As<Napi::Array>();
  for (uint32_t i = 0; i < 3; i++) send_fds[i] = stdio.Get(i).As<Napi::Number>().Int32Value();
  Stream streams[3];
  int sandbox_end[3] = {-1, -1, -1};
  auto close_stdio = [&]() {
    for (int i = 0; i < 3; i++) {
      CloseIf(sandbox_end[i]);
      CloseIf(streams[i].fd);
    }
  };
  auto make_stream = [&](int i) {
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) {
      int e = errno;
      close_stdio();
      throw StepError(env, i == 0 ? "stdin-pipe" : "output-pipe", e);
    }
    sandbox_end[i] = i == 0 ? p[0] : p[1];
    streams[i].fd = i == 0 ? p[1] : p[0];
    streams[i].used = true;
    fcntl(streams[i].fd, F_SETFL, O_NONBLOCK);
    send_fds[i] = sandbox_end[i];
  };
  Napi::Value input = js.Get("stdinData");
  if (input.IsBuffer()) {
    auto b = input.As<Napi::Buffer<char>>();
    make_stream(0);
    streams[0].data.assign(b.Data(), b.Length());
  }
  Napi::Value capture = js.Get("capture");
  if (capture.IsArray()) {
    Napi::Array caps = capture.As<Napi::Array>();
    for (uint32_t i = 1; i <= 2; i++) {
      Napi::Value v = caps.Get(i - 1);
      if (!v.IsNumber()) continue;
      make_stream(static_cast<int>(i));
      streams[i].limit = static_cast<size_t>(v.As<Napi::Number>().Int64Value());
    }
  }
  for (int fd : send_fds)
    if (fd < 0) {
      close_stdio();
      throw StepError(env, "pool-start", EBADF);
    }

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

  char go = 1;
  struct iovec iov = {&go, 1};
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof send_fds)];
  memset(control, 0, sizeof control);
  struct msghdr mh;
  memset(&mh, 0, sizeof mh);
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  mh.msg_control = control;
  mh.msg_controllen = sizeof control;
  struct cmsghdr* cm = CMSG_FIRSTHDR(&mh);
  cm->cmsg_level = SOL_SOCKET;
  cm->cmsg_type = SCM_RIGHTS;
  cm->cmsg_len = CMSG_LEN(sizeof send_fds);
  memcpy(CMSG_DATA(cm), send_fds, sizeof send_fds);
  ssize_t w;
  do w = sendmsg(c->command_fd, &mh, MSG_NOSIGNAL);
  while (w < 0 && errno == EINTR);
  int err = errno;
  for (int& fd : sandbox_end) CloseIf(fd);
  if (w != 1) {
    // The sandbox died while idle (its exit is on its way to the pool).
    close_stdio();
    throw StepError(env, "pool-start", err);
  }
  CloseIf(c->command_fd);
  double t2 = NowNs();

  c->on_exit.Reset();
  c->on_exit = Napi::Persistent(on_exit);
  c->output_limit = static_cast<uint64_t>(GetInt(js, "outputLimit", 0));
  for (int i = 0; i < 3; i++) {
    c->io[i] = std::move(streams[i]);
    streams[i].fd = -1;
  }
  data->watcher->Started(c);

  Napi::Object out = Napi::Object::New(env);
  out.Set("pid", Napi::Number::New(env, c->pid));
  out.Set("pidfd", Napi::Number::New(env, pidfd));
  out.Set("clone3", Napi::Boolean::New(env, false));
  Napi::Array t = Napi::Array::New(env, 4);
  t.Set(0u, Napi::Number::New(env, (t1 - t0) / 1e6));  // command into the plan, pipes
  t.Set(1u, Napi::Number::New(env, 0));                 // no clone: made ahead
  t.Set(2u, Napi::Number::New(env, 0));                 // no maps: written ahead
  t.Set(3u, Napi::Number::New(env, (t2 - t1) / 1e6));  // the command sent
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

}  // namespace brig
