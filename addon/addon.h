// Parent-side declarations shared by the addon's translation units.
#pragma once
#include <napi.h>
#include <uv.h>
#include <unistd.h>

#include <memory>
#include <unordered_set>

#include <signal.h>
#include <sys/resource.h>

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "plan.h"

namespace brig {

// Thrown into JS as an Error with .step and .errno, so the TS side can say
// which part of the launch failed.
Napi::Error StepError(Napi::Env env, const char* step, int err, const std::string& detail = "");

// The fd a sandbox or helper sent with one byte (SCM_RIGHTS; see send_fds
// in plan.h), close-on-exec, without waiting: the fd, or -errno (-EAGAIN:
// nothing yet; -EPROTO: a message without one fd).
int ReceiveFd(int sock);

// The plan and the stacks a sandbox's init and program run on, in the
// parent's memory: freed only once init has been reaped.
struct LaunchMemory;
void FreeLaunchMemory(LaunchMemory* m);

struct Child;

// What epoll hands back: which child, and which of its fds (-1: the pidfd,
// 0: stdin to feed, 1 and 2: output to capture, 3: the listener handoff
// socket, 4: the seccomp listener).
struct WatchTag {
  Child* child;
  int which;
};

// A stdio pipe end the watcher services itself, so that the common judge
// case (input from a buffer, output captured) needs no JS stream at all.
struct Stream {
  int fd = -1;
  std::string data;  // stdin: what to write; stdout/stderr: what was read
  size_t offset = 0; // stdin: bytes written so far
  size_t limit = 0;  // capture: keep at most this many bytes
  bool truncated = false;
  bool used = false;
};

// A call the seccomp filter sent to brig: a violation, a refusal brig
// answered (err: its errno), or (learn) a call seen.
struct SeccompCall {
  int32_t nr;
  uint32_t arch;
  uint64_t args[6];
  uint32_t count;
  int32_t err = 0;
};

enum NotifyMode { NOTIFY_NONE = 0, NOTIFY_REPORT = 1, NOTIFY_LEARN = 2 };

// One sandbox whose result has not been delivered yet. Keyed by its pidfd.
struct Child {
  int pid = -1;
  int pidfd = -1;
  int report_fd = -1;    // read end, non-blocking
  int release_wfd = -1;  // write end while the release is deferred
  int kill_wfd = -1;     // a byte here asks init to kill and reap the whole sandbox
  // Pooled sandboxes: our end of the command socket while the sandbox waits
  // for its command. An idle sandbox does not keep the event loop alive.
  int command_fd = -1;
  bool idle = false;
  LaunchMemory* memory = nullptr;
  Napi::FunctionReference on_exit;
  Stream io[3];
  WatchTag tags[6];
  int notify_mode = NOTIFY_NONE;
  int notify_sock = -1;  // our end of the handoff socket
  int listener = -1;     // the seccomp notification fd, once handed over
  uint32_t native_arch = 0;
  // Total bytes read from stdout and stderr, kept or dropped; past
  // output_limit (when > 0) the sandbox is killed.
  uint64_t output_bytes = 0;
  uint64_t output_limit = 0;
  bool output_limit_hit = false;
  std::vector<SeccompCall> violations;
  std::vector<SeccompCall> learned;
  // Report mode: the calls (native arch) brig answers with an errno instead
  // of a kill, as flat pairs nr, errno; and those it answered, once each.
  std::vector<int32_t> refusals;
  std::vector<SeccompCall> denials;
  // Filled in when init is reaped; delivered once the output pipes are drained.
  bool exited = false;
  bool queued = false;  // on its way to Deliver: queue once only
  siginfo_t si{};
  struct rusage ru{};
  std::vector<Report> reports;

  Child() {
    for (int i = 0; i < 6; i++) tags[i] = WatchTag{this, i - 1};
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child();
  bool Done() const { return exited && io[0].fd < 0 && io[1].fd < 0 && io[2].fd < 0; }
  // Ends the sandbox: init kills and reaps everything (so CPU time is
  // accounted), or, if init cannot be asked, the kernel does.
  bool KillAll();
};

// Watches every live child through one epoll set on one uv_poll handle:
// readiness of a pidfd means the sandbox's init has exited.
class Watcher {
 public:
  explicit Watcher(Napi::Env env);
  ~Watcher();
  // Environment teardown: kill and reap every sandbox, close every fd, and
  // close the poll handle; `done` runs once libuv has really closed it.
  void Shutdown(void (*done)(void*), void* arg);
  void Add(std::unique_ptr<Child> child);
  // A pooled sandbox got its command: watch its new stdio pipes, and let it
  // keep the loop alive.
  void Started(Child* child);
  // A sandbox the loop must wait for from now on (an idle one being ended).
  void Wake(Child* child);
  Child* Find(int pidfd);
  size_t Size() const { return children_.size(); }

 private:
  static void OnReadable(uv_poll_t* handle, int status, int events);
  void Drain();
  void Reap(Child* c);
  void Service(Child* c, int which, uint32_t events);
  void CloseStream(Child* c, int which);
  void CloseNotify(Child* c);
  void TakeListener(Child* c);
  void OnNotification(Child* c);
  void Deliver(std::unique_ptr<Child> c);
  void UpdateRef();
  void WatchStreams(Child* child);
  void KillAll();
  Napi::Env env_;
  int epfd_ = -1;
  uv_poll_t* poll_ = nullptr;
  Napi::AsyncContext* async_ = nullptr;
  std::unordered_map<int, std::unique_ptr<Child>> children_;
};

class Launcher;
void DeleteLauncher(Launcher* l);

// What an environment holds for later launches: warm namespace pairs
// (src/launch/warm.ts) and skeletons (src/launch/skeleton.ts). JS keeps them and gives
// them back through closeHeld(); whatever it still holds when the
// environment goes (a worker thread ending) is closed here. Shared with the
// pool-thread jobs that make them, which may finish after the environment.
struct HeldFds {
  std::unordered_set<int> fds;
  bool gone = false;
  // Teardown: every fd closed, and nothing more taken in.
  void Release() {
    gone = true;
    for (int fd : fds) close(fd);
    fds.clear();
  }
};

struct AddonData {
  std::unique_ptr<Watcher> watcher;
  std::shared_ptr<HeldFds> held = std::make_shared<HeldFds>();
  // The thread that makes sandboxes for launchAsync(), started on first use.
  Launcher* launcher = nullptr;
  napi_async_cleanup_hook_handle cleanup = nullptr;
  ~AddonData() {
    held->Release();
    if (launcher) DeleteLauncher(launcher);
  }
};

// Teardown: stops the launcher thread (undoing launches it has not handed
// over), then calls closed(arg).
void StopLauncher(AddonData* data, void (*closed)(void*), void* arg);

Napi::Value Launch(const Napi::CallbackInfo& info);
Napi::Value Start(const Napi::CallbackInfo& info);
Napi::Value LaunchAsync(const Napi::CallbackInfo& info);
Napi::Value MknodWhiteout(const Napi::CallbackInfo& info);
Napi::Value SetXattr(const Napi::CallbackInfo& info);
Napi::Value GetXattr(const Napi::CallbackInfo& info);
Napi::Value ListXattr(const Napi::CallbackInfo& info);
Napi::Value Release(const Napi::CallbackInfo& info);
// netnsConnect(userFd, netFd, family, address, port, timeoutMs): see netns.cc.
Napi::Value NetnsConnectFn(const Napi::CallbackInfo& info);
Napi::Value PrepareSteps(const Napi::CallbackInfo& info);
Napi::Value MakeWarm(const Napi::CallbackInfo& info);
Napi::Value MakeSkeleton(const Napi::CallbackInfo& info);
Napi::Value CloseHeld(const Napi::CallbackInfo& info);
Napi::Value MakeWarmHold(const Napi::CallbackInfo& info);
Napi::Value EndWarmHold(const Napi::CallbackInfo& info);
// The agent's socket (agent.cc).
Napi::Value PeerCred(const Napi::CallbackInfo& info);
Napi::Value RecvWithFds(const Napi::CallbackInfo& info);
Napi::Value Rlimits(const Napi::CallbackInfo& info);
Napi::Value LockExclusive(const Napi::CallbackInfo& info);

}  // namespace brig
