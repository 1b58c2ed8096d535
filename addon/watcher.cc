// Exit watching for every sandbox through one epoll set of pidfds, polled by
// one uv_poll handle on the Node event loop: no thread per child, no SIGCHLD
// handler competing with libuv's, no blocking wait anywhere.
#include <signal.h>
#include <linux/seccomp.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

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

void Watcher::KillAll() {
  // No sandbox may outlive the environment that started it. PDEATHSIG
  // covers a dying process; this covers a worker thread's environment.
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
}

struct CloseDone {
  void (*done)(void*);
  void* arg;
};

void Watcher::Shutdown(void (*done)(void*), void* arg) {
  KillAll();
  delete async_;
  async_ = nullptr;
  if (epfd_ >= 0) close(epfd_);
  epfd_ = -1;
  uv_poll_t* poll = poll_;
  poll_ = nullptr;
  uv_poll_stop(poll);
  poll->data = new CloseDone{done, arg};
  uv_close(reinterpret_cast<uv_handle_t*>(poll), [](uv_handle_t* h) {
    auto* cd = static_cast<CloseDone*>(h->data);
    delete reinterpret_cast<uv_poll_t*>(h);
    cd->done(cd->arg);
    delete cd;
  });
}

// Only after Shutdown (the async cleanup hook owns teardown).
Watcher::~Watcher() {}

bool Child::KillAll() {
  if (exited) return false;
  // A pooled sandbox waiting for its command, or an init not yet released
  // (its id maps or network being set up), does not read the kill pipe, and
  // has nothing running whose CPU time could be lost.
  if (command_fd >= 0 || release_wfd >= 0) return syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, nullptr, 0) == 0;
  char b = 'k';
  if (kill_wfd >= 0 && write(kill_wfd, &b, 1) == 1) return true;
  return syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, nullptr, 0) == 0;
}

Child::~Child() {
  if (kill_wfd >= 0) close(kill_wfd);
  if (command_fd >= 0) close(command_fd);
  for (Stream& st : io)
    if (st.fd >= 0) close(st.fd);
  if (notify_sock >= 0) close(notify_sock);
  if (listener >= 0) close(listener);
  FreeLaunchMemory(memory);
}

void Watcher::Add(std::unique_ptr<Child> child) {
  struct epoll_event ev;
  ev.events = EPOLLIN;
  ev.data.ptr = &child->tags[0];
  epoll_ctl(epfd_, EPOLL_CTL_ADD, child->pidfd, &ev);
  WatchStreams(child.get());
  if (child->notify_sock >= 0) {
    ev.events = EPOLLIN;
    ev.data.ptr = &child->tags[4];
    epoll_ctl(epfd_, EPOLL_CTL_ADD, child->notify_sock, &ev);
  }
  children_[child->pidfd] = std::move(child);
  UpdateRef();
}

void Watcher::Started(Child* child) {
  WatchStreams(child);
  Wake(child);
}

void Watcher::Wake(Child* child) {
  child->idle = false;
  UpdateRef();
}

void Watcher::WatchStreams(Child* child) {
  struct epoll_event ev;
  for (int i = 0; i < 3; i++) {
    Stream& st = child->io[i];
    if (st.fd < 0) continue;
    ev.events = i == 0 ? EPOLLOUT : EPOLLIN;
    ev.data.ptr = &child->tags[i + 1];
    epoll_ctl(epfd_, EPOLL_CTL_ADD, st.fd, &ev);
  }
}

Child* Watcher::Find(int pidfd) {
  auto it = children_.find(pidfd);
  if (it == children_.end() || it->second->exited) return nullptr;
  return it->second.get();
}

// The loop stays alive while a sandbox runs, and only then: a pooled
// sandbox waiting for its command does not count.
void Watcher::UpdateRef() {
  bool running = false;
  for (auto& [fd, c] : children_)
    if (!c->idle) {
      running = true;
      break;
    }
  if (!running)
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

void Watcher::CloseNotify(Child* c) {
  for (int* fd : {&c->notify_sock, &c->listener}) {
    if (*fd < 0) continue;
    epoll_ctl(epfd_, EPOLL_CTL_DEL, *fd, nullptr);
    close(*fd);
    *fd = -1;
  }
}

int ReceiveFd(int sock) {
  char byte;
  struct iovec iov = {&byte, 1};
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  struct msghdr mh;
  memset(&mh, 0, sizeof mh);
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  mh.msg_control = control;
  mh.msg_controllen = sizeof control;
  ssize_t n = recvmsg(sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  if (n < 0 && errno == EAGAIN) return -EAGAIN;
  if (n < 1) return -EPROTO;  // an error, or the sender gone without a message
  struct cmsghdr* cm = CMSG_FIRSTHDR(&mh);
  if (!cm || cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS || cm->cmsg_len != CMSG_LEN(sizeof(int))) return -EPROTO;
  int fd;
  memcpy(&fd, CMSG_DATA(cm), sizeof fd);
  return fd;
}

// The program sends its listener right after installing the filter.
void Watcher::TakeListener(Child* c) {
  int fd = ReceiveFd(c->notify_sock);
  if (fd == -EAGAIN) return;
  if (fd >= 0 && c->listener < 0) {
    c->listener = fd;
    struct epoll_event ev;
    ev.events = EPOLLIN;
    ev.data.ptr = &c->tags[5];
    epoll_ctl(epfd_, EPOLL_CTL_ADD, c->listener, &ev);
  } else if (fd >= 0) {
    close(fd);
  }
  // One handoff per sandbox: the socket has done its work (or was closed).
  epoll_ctl(epfd_, EPOLL_CTL_DEL, c->notify_sock, nullptr);
  close(c->notify_sock);
  c->notify_sock = -1;
}

// A call the filter sent to us. Report mode: the policy said kill-process,
// or refuse with an errno and report. A refusal is answered with its errno
// (never let through: brig sends no CONTINUE in report mode) and counted;
// anything else is a violation: the sandbox is killed before the call can
// run, and the call is kept for the result. Learn mode: the call is recorded
// and let through.
void Watcher::OnNotification(Child* c) {
  struct seccomp_notif req;
  memset(&req, 0, sizeof req);
  if (ioctl(c->listener, SECCOMP_IOCTL_NOTIF_RECV, &req) < 0) {
    if (errno != EINTR && errno != ENOENT) CloseNotify(c);  // the filter has no users left
    return;
  }
  SeccompCall call;
  call.nr = req.data.nr;
  call.arch = req.data.arch;
  for (int i = 0; i < 6; i++) call.args[i] = req.data.args[i];
  call.count = 1;
  struct seccomp_notif_resp resp;
  memset(&resp, 0, sizeof resp);
  resp.id = req.id;
  bool native = call.arch == c->native_arch;
  if (c->notify_mode == NOTIFY_LEARN && native) {
    bool seen = false;
    for (SeccompCall& l : c->learned)
      if (l.nr == call.nr) {
        l.count++;
        seen = true;
        break;
      }
    if (!seen) c->learned.push_back(call);
    resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
    ioctl(c->listener, SECCOMP_IOCTL_NOTIF_SEND, &resp);  // ENOENT if the caller is gone: fine
    return;
  }
  int32_t err = 0;
  if (c->notify_mode == NOTIFY_REPORT && native)
    for (size_t i = 0; i + 1 < c->refusals.size(); i += 2)
      if (c->refusals[i] == call.nr) {
        err = c->refusals[i + 1];
        break;
      }
  if (err > 0) {
    // The errno, as the filter would have returned it: flags 0 and a
    // negative error mean "fail the call", the kernel runs nothing.
    resp.error = -err;
    resp.val = 0;
    resp.flags = 0;
    ioctl(c->listener, SECCOMP_IOCTL_NOTIF_SEND, &resp);  // ENOENT if the caller is gone: fine
    for (SeccompCall& d : c->denials)
      if (d.nr == call.nr) {
        d.count++;
        return;
      }
    call.err = err;
    if (c->denials.size() < 512) c->denials.push_back(call);  // more than any policy names
    return;
  }
  // A violation. No answer: the call stays blocked until the kill of the
  // whole sandbox reaches the caller, so neither the call nor anything after
  // it runs.
  if (c->violations.size() < 16) c->violations.push_back(call);
  c->KillAll();
}

void Watcher::Service(Child* c, int which, uint32_t events) {
  if (which == 3) {
    if (c->notify_sock >= 0) TakeListener(c);
    return;
  }
  if (which == 4) {
    // NOTIF_RECV blocks until a call comes: only call it when one is there.
    // Hang-up alone means the filter has no tasks left.
    if (c->listener >= 0 && (events & EPOLLIN)) OnNotification(c);
    else if (c->listener >= 0 && (events & (EPOLLHUP | EPOLLERR))) CloseNotify(c);
    return;
  }
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
    if (n > 0) {
      c->output_bytes += static_cast<uint64_t>(n);
      if (c->output_limit && c->output_bytes > c->output_limit && !c->output_limit_hit) {
        c->output_limit_hit = true;
        c->KillAll();
      }
      continue;
    }
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
  if (c->kill_wfd >= 0) close(c->kill_wfd);
  c->kill_wfd = -1;
  // Every process of the sandbox is gone: no call can come any more.
  CloseNotify(c);
  // Nobody is left to read what stdin still holds. Output pipes stay: their
  // last bytes are read until EOF, which comes now that the sandbox's
  // processes are gone.
  CloseStream(c, 0);
}

namespace {

// Builds the result with the C API and checks every status: while a worker
// is being terminated JS can no longer run, calls fail, and the result is
// dropped quietly (node-addon-api would abort the process instead).
struct ResultBuilder {
  napi_env env;
  napi_value obj = nullptr;
  bool ok = true;

  explicit ResultBuilder(napi_env e) : env(e) { ok = napi_create_object(env, &obj) == napi_ok; }
  ResultBuilder(napi_env e, napi_value o) : env(e), obj(o) {}
  void Set(const char* key, napi_value v) {
    if (ok && v) ok = napi_set_named_property(env, obj, key, v) == napi_ok;
    else ok = false;
  }
  void Num(const char* key, double d) {
    napi_value v = nullptr;
    if (ok) ok = napi_create_double(env, d, &v) == napi_ok;
    Set(key, v);
  }
  void Bool(const char* key, bool b) {
    napi_value v = nullptr;
    if (ok) ok = napi_get_boolean(env, b, &v) == napi_ok;
    Set(key, v);
  }
  void Output(const char* key, Stream& st) {
    if (!ok || !st.used) return;
    auto* owned = new std::string(std::move(st.data));
    napi_value buf = nullptr;
    if (owned->empty()) {
      delete owned;
      ok = napi_create_buffer(env, 0, nullptr, &buf) == napi_ok;
    } else {
      void* copy = nullptr;
      // A copy, not an external buffer: external memory is refused where
      // Node runs with a V8 sandbox, and one memcpy is cheap next to a run.
      ok = napi_create_buffer_copy(env, owned->size(), owned->data(), &copy, &buf) == napi_ok;
      delete owned;
    }
    Set(key, buf);
  }
};

napi_value CallList(napi_env env, const std::vector<SeccompCall>& calls) {
  napi_value arr = nullptr;
  if (napi_create_array_with_length(env, calls.size(), &arr) != napi_ok) return nullptr;
  uint32_t k = 0;
  for (const SeccompCall& call : calls) {
    ResultBuilder o(env);
    o.Num("nr", call.nr);
    o.Num("arch", call.arch);
    o.Num("count", call.count);
    if (call.err) o.Num("errno", call.err);
    napi_value args = nullptr;
    if (o.ok) o.ok = napi_create_array_with_length(env, 6, &args) == napi_ok;
    for (uint32_t i = 0; o.ok && i < 6; i++) {
      napi_value v = nullptr;
      o.ok = napi_create_bigint_uint64(env, call.args[i], &v) == napi_ok && napi_set_element(env, args, i, v) == napi_ok;
    }
    o.Set("args", args);
    if (!o.ok || napi_set_element(env, arr, k++, o.obj) != napi_ok) return nullptr;
  }
  return arr;
}

}  // namespace

void Watcher::Deliver(std::unique_ptr<Child> c) {
  napi_env env = env_;
  Napi::FunctionReference cb = std::move(c->on_exit);
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) {
    close(c->pidfd);
    UpdateRef();
    return;
  }
  ResultBuilder res(env);
  napi_value reports = nullptr;
  if (res.ok) res.ok = napi_create_array_with_length(env, c->reports.size(), &reports) == napi_ok;
  uint32_t k = 0;
  for (const Report& rec : c->reports) {
    ResultBuilder o(env);
    o.Num("kind", rec.kind);
    o.Num("step", rec.step);
    o.Num("errno", rec.err);
    o.Num("wstatus", rec.wstatus);
    if (rec.kind == REPORT_MARK || rec.kind == REPORT_EXIT) o.Num("ns", static_cast<double>(rec.ns));
    if (!o.ok || !res.ok || napi_set_element(env, reports, k++, o.obj) != napi_ok) res.ok = false;
  }
  const siginfo_t& si = c->si;
  struct rusage ru = c->ru;
  // Prefer what init counted for its children: init itself runs in Node's
  // memory. (No exit record: init was killed, and waitid's figures stand.)
  for (const Report& rec : c->reports) {
    if (rec.kind != REPORT_EXIT) continue;
    ru.ru_utime.tv_sec = rec.utime_us / 1000000;
    ru.ru_utime.tv_usec = rec.utime_us % 1000000;
    ru.ru_stime.tv_sec = rec.stime_us / 1000000;
    ru.ru_stime.tv_usec = rec.stime_us % 1000000;
    ru.ru_maxrss = rec.maxrss_kb;
    ru.ru_minflt = rec.minflt;
    ru.ru_majflt = rec.majflt;
    ru.ru_nvcsw = rec.nvcsw;
    ru.ru_nivcsw = rec.nivcsw;
  }
  res.Num("initCode", si.si_code == CLD_EXITED ? si.si_status : -1);
  res.Num("initSignal", si.si_code == CLD_EXITED ? 0 : si.si_status);
  res.Num("userUs", static_cast<double>(ru.ru_utime.tv_sec) * 1e6 + ru.ru_utime.tv_usec);
  res.Num("systemUs", static_cast<double>(ru.ru_stime.tv_sec) * 1e6 + ru.ru_stime.tv_usec);
  res.Num("maxRssKb", static_cast<double>(ru.ru_maxrss));
  res.Num("minflt", static_cast<double>(ru.ru_minflt));
  res.Num("majflt", static_cast<double>(ru.ru_majflt));
  res.Num("nvcsw", static_cast<double>(ru.ru_nvcsw));
  res.Num("nivcsw", static_cast<double>(ru.ru_nivcsw));
  res.Set("reports", reports);
  res.Output("stdout", c->io[1]);
  res.Output("stderr", c->io[2]);
  res.Bool("stdoutTruncated", c->io[1].truncated);
  res.Num("outputBytes", static_cast<double>(c->output_bytes));
  res.Bool("outputLimitHit", c->output_limit_hit);
  res.Set("violations", CallList(env, c->violations));
  res.Set("learned", CallList(env, c->learned));
  res.Set("denials", CallList(env, c->denials));
  res.Bool("stderrTruncated", c->io[2].truncated);
  close(c->pidfd);
  c.reset();
  UpdateRef();
  if (res.ok) {
    // The C API, status-checked: node-addon-api's Value() throws when JS
    // cannot run (a worker being terminated), and nothing may throw here.
    napi_value global = nullptr, fn = nullptr, ret = nullptr;
    if (napi_get_reference_value(env, cb, &fn) == napi_ok && napi_get_global(env, &global) == napi_ok && fn &&
        napi_make_callback(env, static_cast<napi_async_context>(*async_), global, fn, 1, &res.obj, &ret) == napi_pending_exception) {
      // Nothing of JS is below us on the stack: hand it to Node's
      // uncaught-exception handling, as an event emitter's would be.
      napi_value err = nullptr;
      if (napi_get_and_clear_last_exception(env, &err) == napi_ok) napi_fatal_exception(env, err);
    }
  }
  napi_close_handle_scope(env, scope);
}

void Watcher::Drain() {
  struct epoll_event evs[64];
  for (;;) {
    int n = epoll_wait(epfd_, evs, 64, 0);
    if (n <= 0) break;
    // Children are only destroyed after the whole batch: a later event of
    // the batch may point at the same child. Each is queued once, and found
    // again by its pointer: delivering one runs JS, which may launch a
    // sandbox that is given the pidfd number just closed.
    std::vector<std::pair<int, Child*>> done;
    for (int i = 0; i < n; i++) {
      auto* tag = static_cast<WatchTag*>(evs[i].data.ptr);
      Child* c = tag->child;
      if (tag->which < 0) {
        if (c->exited) continue;
        Reap(c);
      } else {
        Service(c, tag->which, evs[i].events);
      }
      if (c->Done() && !c->queued) {
        c->queued = true;
        done.emplace_back(c->pidfd, c);
      }
    }
    for (auto [pidfd, c] : done) {
      auto it = children_.find(pidfd);
      if (it == children_.end() || it->second.get() != c || !it->second->queued) continue;
      std::unique_ptr<Child> owned = std::move(it->second);
      children_.erase(it);
      Deliver(std::move(owned));
    }
  }
}

}  // namespace brig
