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
    if (!c->exited) {
      syscall(SYS_pidfd_send_signal, c->pidfd, SIGKILL, nullptr, 0);
      siginfo_t si;
      syscall(SYS_waitid, P_PIDFD, c->pidfd, &si, WEXITED | __WALL, nullptr);
    }
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

Child::~Child() {
  for (Stream& st : io)
    if (st.fd >= 0) close(st.fd);
  FreeLaunchMemory(memory);
}

void Watcher::Add(std::unique_ptr<Child> child) {
  struct epoll_event ev;
  ev.events = EPOLLIN;
  ev.data.ptr = &child->tags[0];
  epoll_ctl(epfd_, EPOLL_CTL_ADD, child->pidfd, &ev);
  for (int i = 0; i < 3; i++) {
    Stream& st = child->io[i];
    if (st.fd < 0) continue;
    ev.events = i == 0 ? EPOLLOUT : EPOLLIN;
    ev.data.ptr = &child->tags[i + 1];
    epoll_ctl(epfd_, EPOLL_CTL_ADD, st.fd, &ev);
  }
  children_[child->pidfd] = std::move(child);
  UpdateRef();
}

Child* Watcher::Find(int pidfd) {
  auto it = children_.find(pidfd);
  if (it == children_.end() || it->second->exited) return nullptr;
  return it->second.get();
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

void Watcher::CloseStream(Child* c, int which) {
  Stream& st = c->io[which];
  if (st.fd < 0) return;
  epoll_ctl(epfd_, EPOLL_CTL_DEL, st.fd, nullptr);
  close(st.fd);
  st.fd = -1;
}

void Watcher::Service(Child* c, int which, uint32_t events) {
  Stream& st = c->io[which];
  if (st.fd < 0) return;
  if (which == 0) {
    // Feed stdin; a program that stops reading or exits gets EPIPE here,
    // which is its business, not an error of ours.
    while (st.offset < st.data.size()) {
      ssize_t n = write(st.fd, st.data.data() + st.offset, st.data.size() - st.offset);
      if (n > 0) {
        st.offset += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) return;
      break;
    }
    CloseStream(c, 0);  // all written (EOF for the program), or the reader is gone
    return;
  }
  // Drain output, keeping up to the limit; past it, read and drop, so that a
  // flood cannot block the program on a full pipe nor grow our memory.
  char scratch[65536];
  for (int rounds = 0; rounds < 64; rounds++) {
    size_t room = st.limit > st.data.size() ? st.limit - st.data.size() : 0;
    ssize_t n;
    if (room > 0) {
      size_t want = room < 65536 ? room : 65536;
      size_t old = st.data.size();
      st.data.resize(old + want);
      n = read(st.fd, &st.data[old], want);
      st.data.resize(old + (n > 0 ? static_cast<size_t>(n) : 0));
    } else {
      n = read(st.fd, scratch, sizeof scratch);
      if (n > 0) st.truncated = true;
    }
    if (n > 0) continue;
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    CloseStream(c, which);  // EOF: every writer in the sandbox is gone
    return;
  }
}

void Watcher::Reap(Child* c) {
  // waitid's fifth argument (not in the libc prototype) is the rusage of
  // init, which includes every process it reaped: the whole tree.
  long r;
  do r = syscall(SYS_waitid, P_PIDFD, c->pidfd, &c->si, WEXITED | __WALL, &c->ru);
  while (r < 0 && errno == EINTR);
  epoll_ctl(epfd_, EPOLL_CTL_DEL, c->pidfd, nullptr);
  c->exited = true;
  if (c->report_fd >= 0) {
    Report rec;
    while (read(c->report_fd, &rec, sizeof rec) == sizeof rec)
      if (rec.magic == REPORT_MAGIC) c->reports.push_back(rec);
    close(c->report_fd);
    c->report_fd = -1;
  }
  if (c->release_wfd >= 0) close(c->release_wfd);
  c->release_wfd = -1;
  // Nobody is left to read what stdin still holds. Output pipes stay: their
  // last bytes are read until EOF, which comes now that the sandbox's
  // processes are gone.
  CloseStream(c, 0);
}

static Napi::Value OutputBuffer(Napi::Env env, Stream& st) {
  if (!st.used) return env.Undefined();
  auto* owned = new std::string(std::move(st.data));
  return Napi::Buffer<char>::NewOrCopy(env, owned->empty() ? nullptr : &(*owned)[0], owned->size(),
                                       [](Napi::Env, char*, std::string* s) { delete s; }, owned);
}

void Watcher::Deliver(std::unique_ptr<Child> c) {
  Napi::HandleScope scope(env_);
  Napi::Array reports = Napi::Array::New(env_, c->reports.size());
  uint32_t k = 0;
  for (const Report& rec : c->reports) {
    Napi::Object o = Napi::Object::New(env_);
    o.Set("kind", rec.kind);
    o.Set("step", rec.step);
    o.Set("errno", rec.err);
    o.Set("wstatus", rec.wstatus);
    if (rec.kind == REPORT_MARK) o.Set("ns", static_cast<double>(rec.ns));
    reports.Set(k++, o);
  }
  const siginfo_t& si = c->si;
  const struct rusage& ru = c->ru;
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
  res.Set("stdout", OutputBuffer(env_, c->io[1]));
  res.Set("stderr", OutputBuffer(env_, c->io[2]));
  res.Set("stdoutTruncated", c->io[1].truncated);
  res.Set("stderrTruncated", c->io[2].truncated);
  Napi::FunctionReference cb = std::move(c->on_exit);
  close(c->pidfd);
  c.reset();
  UpdateRef();
  cb.Value().MakeCallback(env_.Global(), {res}, *async_);
}

void Watcher::Drain() {
  struct epoll_event evs[64];
  for (;;) {
    int n = epoll_wait(epfd_, evs, 64, 0);
    if (n <= 0) break;
    // Children are only destroyed after the whole batch: a later event of
    // the batch may point at the same child.
    std::vector<int> done;
    for (int i = 0; i < n; i++) {
      auto* tag = static_cast<WatchTag*>(evs[i].data.ptr);
      Child* c = tag->child;
      if (tag->which < 0) {
        if (c->exited) continue;
        Reap(c);
      } else {
        Service(c, tag->which, evs[i].events);
      }
      if (c->Done()) done.push_back(c->pidfd);
    }
    for (int pidfd : done) {
      auto it = children_.find(pidfd);
      if (it == children_.end()) continue;
      std::unique_ptr<Child> c = std::move(it->second);
      children_.erase(it);
      Deliver(std::move(c));
    }
  }
}

}  // namespace brig
