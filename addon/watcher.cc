// Exit watching for every sandbox through one epoll set of pidfds, polled by
// one uv_poll handle on the Node event loop: no thread per child, no SIGCHLD
// handler competing with libuv's, no blocking wait anywhere.
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

#include "addon.h"
#include "plan.h"

namespace brig {

Watcher::Watcher(Napi::Env env) : env_(env) {
  epfd_ = epoll_create1(EPOLL_CLOEXEC);
  if (epfd_ < 0) throw StepError(env, "epoll-create", errno);
  uv_loop_t* loop = nullptr;
  napi_get_uv_event_loop(env, &loop);
  poll_ = new uv_poll_t;
  uv_poll_init(loop, poll_, epfd_);
  poll_->data = this;
  uv_poll_start(poll_, UV_READABLE, OnReadable);
  uv_unref(reinterpret_cast<uv_handle_t*>(poll_));
  async_ = new Napi::AsyncContext(env, "brig:sandbox");
}

Watcher::~Watcher() {
  // The environment is going away (worker exit or process exit): no sandbox
  // may outlive it. PDEATHSIG covers a dying process; this covers a worker.
  for (auto& kv : children_) {
    Child* c = kv.second.get();
    syscall(SYS_pidfd_send_signal, c->pidfd, SIGKILL, nullptr, 0);
    siginfo_t si;
    syscall(SYS_waitid, P_PIDFD, c->pidfd, &si, WEXITED | __WALL, nullptr);
    close(c->pidfd);
    if (c->report_fd >= 0) close(c->report_fd);
    if (c->release_wfd >= 0) close(c->release_wfd);
  }
  children_.clear();
  delete async_;
  if (poll_) {
    uv_poll_stop(poll_);
    uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
  }
  if (epfd_ >= 0) close(epfd_);
}

void Watcher::Add(std::unique_ptr<Child> child) {
  struct epoll_event ev;
  ev.events = EPOLLIN;
  ev.data.fd = child->pidfd;
  epoll_ctl(epfd_, EPOLL_CTL_ADD, child->pidfd, &ev);
  children_[child->pidfd] = std::move(child);
  UpdateRef();
}

Child* Watcher::Find(int pidfd) {
  auto it = children_.find(pidfd);
  return it == children_.end() ? nullptr : it->second.get();
}

// The loop stays alive while a sandbox runs, and only then.
void Watcher::UpdateRef() {
  if (children_.empty())
    uv_unref(reinterpret_cast<uv_handle_t*>(poll_));
  else
    uv_ref(reinterpret_cast<uv_handle_t*>(poll_));
}

void Watcher::OnReadable(uv_poll_t* handle, int status, int events) {
  static_cast<Watcher*>(handle->data)->Drain();
}

void Watcher::Drain() {
  struct epoll_event evs[32];
  for (;;) {
    int n = epoll_wait(epfd_, evs, 32, 0);
    if (n <= 0) break;
    for (int i = 0; i < n; i++) {
      int pidfd = evs[i].data.fd;
      auto it = children_.find(pidfd);
      if (it == children_.end()) continue;
      std::unique_ptr<Child> c = std::move(it->second);
      children_.erase(it);
      epoll_ctl(epfd_, EPOLL_CTL_DEL, pidfd, nullptr);

      // waitid's fifth argument (not in the libc prototype) is the rusage of
      // init, which includes every process it reaped: the whole tree.
      siginfo_t si{};
      struct rusage ru{};
      long r;
      do r = syscall(SYS_waitid, P_PIDFD, pidfd, &si, WEXITED | __WALL, &ru);
      while (r < 0 && errno == EINTR);

      Napi::HandleScope scope(env_);
      Napi::Array reports = Napi::Array::New(env_);
      if (c->report_fd >= 0) {
        Report rec;
        uint32_t k = 0;
        while (read(c->report_fd, &rec, sizeof rec) == sizeof rec) {
          if (rec.magic != REPORT_MAGIC) continue;
          Napi::Object o = Napi::Object::New(env_);
          o.Set("kind", rec.kind);
          o.Set("step", rec.step);
          o.Set("errno", rec.err);
          o.Set("wstatus", rec.wstatus);
          if (rec.kind == REPORT_MARK) o.Set("ns", static_cast<double>(rec.ns));
          reports.Set(k++, o);
        }
        close(c->report_fd);
      }
      if (c->release_wfd >= 0) close(c->release_wfd);
      close(pidfd);

      Napi::Object res = Napi::Object::New(env_);
      res.Set("initCode", si.si_code == CLD_EXITED ? si.si_status : -1);
      res.Set("initSignal", si.si_code == CLD_EXITED ? 0 : si.si_status);
      res.Set("userUs", static_cast<double>(ru.ru_utime.tv_sec) * 1e6 + ru.ru_utime.tv_usec);
      res.Set("systemUs", static_cast<double>(ru.ru_stime.tv_sec) * 1e6 + ru.ru_stime.tv_usec);
      res.Set("maxRssKb", static_cast<double>(ru.ru_maxrss));
      res.Set("minflt", static_cast<double>(ru.ru_minflt));
      res.Set("majflt", static_cast<double>(ru.ru_majflt));
      res.Set("nvcsw", static_cast<double>(ru.ru_nvcsw));
      res.Set("nivcsw", static_cast<double>(ru.ru_nivcsw));
      res.Set("reports", reports);
      Napi::FunctionReference cb = std::move(c->on_exit);
      c.reset();
      UpdateRef();
      cb.Value().MakeCallback(env_.Global(), {res}, *async_);
    }
  }
}

}  // namespace brig
