// Parent-side declarations shared by the addon's translation units.
#pragma once
#include <napi.h>
#include <uv.h>

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace brig {

// Thrown into JS as an Error with .step and .errno, so the TS side can say
// which part of the launch failed.
Napi::Error StepError(Napi::Env env, const char* step, int err, const std::string& detail = "");

// The plan and the stacks a sandbox's init and program run on, in the
// parent's memory: freed only once init has been reaped.
struct LaunchMemory;
void FreeLaunchMemory(LaunchMemory* m);

// One sandbox whose init has not been reaped yet. Keyed by its pidfd.
struct Child {
  int pid = -1;
  int pidfd = -1;
  int report_fd = -1;    // read end, non-blocking
  int release_wfd = -1;  // write end while the release is deferred
  LaunchMemory* memory = nullptr;
  Napi::FunctionReference on_exit;
  Child() = default;
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child() { FreeLaunchMemory(memory); }
};

// Watches every live child through one epoll set on one uv_poll handle:
// readiness of a pidfd means the sandbox's init has exited.
class Watcher {
 public:
  explicit Watcher(Napi::Env env);
  ~Watcher();
  void Add(std::unique_ptr<Child> child);
  Child* Find(int pidfd);
  void Forget(int pidfd);  // child reaped synchronously after a failed launch
  size_t Size() const { return children_.size(); }

 private:
  static void OnReadable(uv_poll_t* handle, int status, int events);
  void Drain();
  void UpdateRef();
  Napi::Env env_;
  int epfd_ = -1;
  uv_poll_t* poll_ = nullptr;
  Napi::AsyncContext* async_ = nullptr;
  std::unordered_map<int, std::unique_ptr<Child>> children_;
};

struct AddonData {
  std::unique_ptr<Watcher> watcher;
};

Napi::Value Launch(const Napi::CallbackInfo& info);
Napi::Value Release(const Napi::CallbackInfo& info);
Napi::Value PrepareSteps(const Napi::CallbackInfo& info);

}  // namespace brig
