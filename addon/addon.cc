// Module entry: the small typed surface described in src/native.ts.
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <termios.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <mutex>

#include "addon.h"

namespace brig {
namespace {

// Growing the fd table of a multithreaded process waits for an RCU grace
// period (milliseconds). Grow it once here, so no launch pays for it when the
// pipes and pidfds it opens cross a table boundary.
void PregrowFdTable() {
  struct rlimit lim;
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0) return;
  long want = 1023;
  if (lim.rlim_cur != RLIM_INFINITY && static_cast<long>(lim.rlim_cur) - 1 < want) want = static_cast<long>(lim.rlim_cur) - 1;
  if (want < 64) return;
  int fd = fcntl(2, F_DUPFD_CLOEXEC, want);
  if (fd < 0) {
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (devnull < 0) return;
    fd = fcntl(devnull, F_DUPFD_CLOEXEC, want);
    close(devnull);
  }
  if (fd >= 0) close(fd);
}

// The fd a sandboxed program hands its seccomp listener over on (see
// src/seccomp/compile.ts). Held open on /dev/null for the life of the
// process, so that no launch is ever given this number for a pipe the
// program needs: the program dup3s the handoff socket onto it.
int g_handoff_fd = -1;
std::once_flag g_handoff_once;

int HandoffFd() {
  std::call_once(g_handoff_once, [] {
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (devnull < 0) return;
    // High, out of the way of the fds programs use; under a file limit of
    // 200 or less (EINVAL) any number will do, as it is held all the same.
    g_handoff_fd = fcntl(devnull, F_DUPFD_CLOEXEC, 200);
    if (g_handoff_fd >= 0) close(devnull);
    else g_handoff_fd = devnull;
  });
  return g_handoff_fd;
}

Napi::Value Kill(const Napi::CallbackInfo& info) {
  int pidfd = info[0].As<Napi::Number>().Int32Value();
  int sig = info[1].As<Napi::Number>().Int32Value();
  auto* data = info.Env().GetInstanceData<AddonData>();
  // Only a pidfd this addon owns and has not reaped: never a recycled pid.
  Child* c = data->watcher->Find(pidfd);
  if (!c) return Napi::Boolean::New(info.Env(), false);
  // An idle pooled sandbox being ended: its exit is awaited like a run's.
  if (c->idle) data->watcher->Wake(c);
  if (sig == SIGKILL) return Napi::Boolean::New(info.Env(), c->KillAll());
  long r = syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0);
  return Napi::Boolean::New(info.Env(), r == 0);
}

// pidfdOpen(pid) -> a close-on-exec pidfd; throws (step pidfd-open) with the errno.
Napi::Value PidfdOpen(const Napi::CallbackInfo& info) {
  int pid = info[0].As<Napi::Number>().Int32Value();
  long fd = syscall(SYS_pidfd_open, pid, 0);
  if (fd < 0) throw StepError(info.Env(), "pidfd-open", errno);
  fcntl(static_cast<int>(fd), F_SETFD, FD_CLOEXEC);
  return Napi::Number::New(info.Env(), static_cast<double>(fd));
}

// pidfdSignal(pidfd, sig) -> 0 or -errno: a signal that cannot reach a recycled pid.
Napi::Value PidfdSignal(const Napi::CallbackInfo& info) {
  int fd = info[0].As<Napi::Number>().Int32Value();
  int sig = info[1].As<Napi::Number>().Int32Value();
  long r = syscall(SYS_pidfd_send_signal, fd, sig, nullptr, 0);
  return Napi::Number::New(info.Env(), r < 0 ? -errno : 0);
}

// flock(fd, exclusive, wait) -> 0 or -errno (EWOULDBLOCK when !wait and held).
// Several brig processes change one container's state: each change is made
// under this lock, and the kernel drops it when a process dies holding it.
Napi::Value Flock(const Napi::CallbackInfo& info) {
  int fd = info[0].As<Napi::Number>().Int32Value();
  int op = info[1].ToBoolean() ? LOCK_EX : LOCK_SH;
  if (!info[2].ToBoolean()) op |= LOCK_NB;
  int r;
  do r = flock(fd, op);
  while (r < 0 && errno == EINTR);
  return Napi::Number::New(info.Env(), r < 0 ? -errno : 0);
}

// openPty() -> [master, slave], both close-on-exec: a terminal for exec -t.
Napi::Value OpenPty(const Napi::CallbackInfo& info) {
  int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (m < 0) throw StepError(info.Env(), "openpty", errno);
  int unlock = 0;
  int n = -1;
  if (ioctl(m, TIOCSPTLCK, &unlock) < 0 || (n = ioctl(m, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC)) < 0) {
    int e = errno;
    close(m);
    throw StepError(info.Env(), "openpty", e);
  }
  Napi::Array a = Napi::Array::New(info.Env(), 2);
  a.Set(0u, m);
  a.Set(1u, n);
  return a;
}

Napi::Value SetWinsize(const Napi::CallbackInfo& info) {
  struct winsize ws = {};
  ws.ws_col = static_cast<unsigned short>(info[1].As<Napi::Number>().Uint32Value());
  ws.ws_row = static_cast<unsigned short>(info[2].As<Napi::Number>().Uint32Value());
  int r = ioctl(info[0].As<Napi::Number>().Int32Value(), TIOCSWINSZ, &ws);
  return Napi::Number::New(info.Env(), r < 0 ? -errno : 0);
}

// pipe() -> [readFd, writeFd], both close-on-exec.
Napi::Value Pipe(const Napi::CallbackInfo& info) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) < 0) throw StepError(info.Env(), "pipe", errno);
  Napi::Array a = Napi::Array::New(info.Env(), 2);
  a.Set(0u, fds[0]);
  a.Set(1u, fds[1]);
  return a;
}

// socketPair() -> [a, b]: a connected AF_UNIX SOCK_SEQPACKET pair, both
// close-on-exec (a pty's master comes back over one: STEP_OWN_PTY).
Napi::Value SocketPair(const Napi::CallbackInfo& info) {
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) < 0) throw StepError(info.Env(), "socketpair", errno);
  Napi::Array a = Napi::Array::New(info.Env(), 2);
  a.Set(0u, fds[0]);
  a.Set(1u, fds[1]);
  return a;
}

Napi::Value Close(const Napi::CallbackInfo& info) {
  close(info[0].As<Napi::Number>().Int32Value());
  return info.Env().Undefined();
}

// The Landlock ABI version the kernel offers, or -errno (for brig doctor).
Napi::Value LandlockAbi(const Napi::CallbackInfo& info) {
#ifdef SYS_landlock_create_ruleset
  long r = syscall(SYS_landlock_create_ruleset, nullptr, 0, 1 /* LANDLOCK_CREATE_RULESET_VERSION */);
  return Napi::Number::New(info.Env(), r < 0 ? -errno : r);
#else
  return Napi::Number::New(info.Env(), -ENOSYS);
#endif
}

Napi::Value Live(const Napi::CallbackInfo& info) {
  auto* data = info.Env().GetInstanceData<AddonData>();
  return Napi::Number::New(info.Env(), static_cast<double>(data->watcher->Size()));
}

// Teardown of the environment (a worker ending, or Node exiting). The poll
// handle's close callback is code in this library: Node must not unload it
// before libuv has run that callback, which an async cleanup hook guarantees
// (teardown waits until the hook is removed).
void FinishCleanup(void* arg) {
  auto* data = static_cast<AddonData*>(arg);
  napi_async_cleanup_hook_handle hook = data->cleanup;
  delete data;
  napi_remove_async_cleanup_hook(hook);
}

void AfterLauncher(void* arg) {
  static_cast<AddonData*>(arg)->watcher->Shutdown(FinishCleanup, arg);
}

void OnEnvTeardown(napi_async_cleanup_hook_handle, void* arg) {
  StopLauncher(static_cast<AddonData*>(arg), AfterLauncher, arg);
}

// AddonData is freed by FinishCleanup, not by the instance-data finalizer.
void KeepInstanceData(Napi::Env, AddonData*) {}

// Every export goes through this. node-addon-api turns a thrown Napi::Error
// into a JS exception, but while a worker is being terminated that
// conversion fails and throws again, out of the callback: std::terminate.
// Here the error is thrown with the C API, and a failure to do so is left
// alone (there is no JS left to see it).
template <Napi::Value (*F)(const Napi::CallbackInfo&)>
Napi::Value Guarded(const Napi::CallbackInfo& info) {
  try {
    return F(info);
  } catch (const Napi::Error& e) {
    napi_value v = nullptr;
    napi_ref ref = e;
    if (ref && napi_get_reference_value(info.Env(), ref, &v) == napi_ok && v) napi_throw(info.Env(), v);
    return Napi::Value();
  }
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  PregrowFdTable();
  auto* data = new AddonData();
  data->watcher = std::make_unique<Watcher>(env);
  env.SetInstanceData<AddonData, KeepInstanceData>(data);
  napi_add_async_cleanup_hook(env, OnEnvTeardown, data, &data->cleanup);

  exports.Set("launch", Napi::Function::New(env, Guarded<Launch>, "launch"));
  exports.Set("release", Napi::Function::New(env, Guarded<Release>, "release"));
  exports.Set("netnsConnect", Napi::Function::New(env, Guarded<NetnsConnectFn>, "netnsConnect"));
  exports.Set("start", Napi::Function::New(env, Guarded<Start>, "start"));
  exports.Set("launchAsync", Napi::Function::New(env, Guarded<LaunchAsync>, "launchAsync"));
  exports.Set("makeWarm", Napi::Function::New(env, Guarded<MakeWarm>, "makeWarm"));
  exports.Set("makeSkeleton", Napi::Function::New(env, Guarded<MakeSkeleton>, "makeSkeleton"));
  exports.Set("makeWarmHold", Napi::Function::New(env, Guarded<MakeWarmHold>, "makeWarmHold"));
  exports.Set("endWarmHold", Napi::Function::New(env, Guarded<EndWarmHold>, "endWarmHold"));
  exports.Set("closeHeld", Napi::Function::New(env, Guarded<CloseHeld>, "closeHeld"));
  exports.Set("prepareSteps", Napi::Function::New(env, Guarded<PrepareSteps>, "prepareSteps"));
  exports.Set("kill", Napi::Function::New(env, Guarded<Kill>, "kill"));
  exports.Set("pipe", Napi::Function::New(env, Guarded<Pipe>, "pipe"));
  exports.Set("pidfdOpen", Napi::Function::New(env, Guarded<PidfdOpen>, "pidfdOpen"));
  exports.Set("pidfdSignal", Napi::Function::New(env, Guarded<PidfdSignal>, "pidfdSignal"));
  exports.Set("flock", Napi::Function::New(env, Guarded<Flock>, "flock"));
  exports.Set("openPty", Napi::Function::New(env, Guarded<OpenPty>, "openPty"));
  exports.Set("setWinsize", Napi::Function::New(env, Guarded<SetWinsize>, "setWinsize"));
  exports.Set("close", Napi::Function::New(env, Guarded<Close>, "close"));
  exports.Set("socketPair", Napi::Function::New(env, Guarded<SocketPair>, "socketPair"));
  exports.Set("live", Napi::Function::New(env, Guarded<Live>, "live"));
  exports.Set("landlockAbi", Napi::Function::New(env, Guarded<LandlockAbi>, "landlockAbi"));
  exports.Set("mknodWhiteout", Napi::Function::New(env, Guarded<MknodWhiteout>, "mknodWhiteout"));
  exports.Set("setXattr", Napi::Function::New(env, Guarded<SetXattr>, "setXattr"));
  exports.Set("getXattr", Napi::Function::New(env, Guarded<GetXattr>, "getXattr"));
  exports.Set("listXattr", Napi::Function::New(env, Guarded<ListXattr>, "listXattr"));
  exports.Set("peerCred", Napi::Function::New(env, Guarded<PeerCred>, "peerCred"));
  exports.Set("recvWithFds", Napi::Function::New(env, Guarded<RecvWithFds>, "recvWithFds"));
  exports.Set("lockExclusive", Napi::Function::New(env, Guarded<LockExclusive>, "lockExclusive"));
  exports.Set("rlimits", Napi::Function::New(env, Guarded<Rlimits>, "rlimits"));
  exports.Set("handoffFd", Napi::Number::New(env, HandoffFd()));

  Napi::Object c = Napi::Object::New(env);
  c.Set("CLONE_NEWUSER", static_cast<double>(CLONE_NEWUSER));
  c.Set("CLONE_NEWPID", static_cast<double>(CLONE_NEWPID));
  c.Set("CLONE_NEWNS", static_cast<double>(CLONE_NEWNS));
  c.Set("CLONE_NEWIPC", static_cast<double>(CLONE_NEWIPC));
  c.Set("CLONE_NEWUTS", static_cast<double>(CLONE_NEWUTS));
  c.Set("CLONE_NEWNET", static_cast<double>(CLONE_NEWNET));
  c.Set("CLONE_NEWCGROUP", static_cast<double>(CLONE_NEWCGROUP));
  exports.Set("constants", c);
  return exports;
}

}  // namespace
}  // namespace brig

static Napi::Object InitBrig(Napi::Env env, Napi::Object exports) { return brig::Init(env, exports); }
NODE_API_MODULE(brig, InitBrig)
