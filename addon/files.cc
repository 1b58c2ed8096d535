// Host-side file operations Node's fs lacks, for image layers: overlayfs
// whiteouts (character device 0:0, which the kernel lets an unprivileged
// user create) and extended attributes (overlay's user.overlay.opaque, and
// the xattrs layer tarballs carry). Errors throw with the errno, named.
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#include <cerrno>
#include <string>
#include <vector>

#include "addon.h"

namespace brig {

// mknodWhiteout(path)
Napi::Value MknodWhiteout(const Napi::CallbackInfo& info) {
  std::string path = info[0].As<Napi::String>().Utf8Value();
  if (mknod(path.c_str(), S_IFCHR | 0, makedev(0, 0)) < 0) throw StepError(info.Env(), "whiteout", errno, path);
  return info.Env().Undefined();
}

// setXattr(path, name, value: Buffer): on the link itself, never followed.
Napi::Value SetXattr(const Napi::CallbackInfo& info) {
  std::string path = info[0].As<Napi::String>().Utf8Value();
  std::string name = info[1].As<Napi::String>().Utf8Value();
  auto value = info[2].As<Napi::Buffer<char>>();
  if (lsetxattr(path.c_str(), name.c_str(), value.Data(), value.Length(), 0) < 0) throw StepError(info.Env(), "setxattr", errno, path + " " + name);
  return info.Env().Undefined();
}

// getXattr(path, name) -> Buffer | null (null: no such attribute)
Napi::Value GetXattr(const Napi::CallbackInfo& info) {
  std::string path = info[0].As<Napi::String>().Utf8Value();
  std::string name = info[1].As<Napi::String>().Utf8Value();
  for (;;) {
    ssize_t n = lgetxattr(path.c_str(), name.c_str(), nullptr, 0);
    if (n < 0) {
      if (errno == ENODATA || errno == ENOTSUP) return info.Env().Null();
      throw StepError(info.Env(), "getxattr", errno, path + " " + name);
    }
    std::vector<char> buf(static_cast<size_t>(n) + 1);
    ssize_t m = lgetxattr(path.c_str(), name.c_str(), buf.data(), buf.size());
    if (m < 0 && errno == ERANGE) continue;  // grew in between
    if (m < 0) throw StepError(info.Env(), "getxattr", errno, path + " " + name);
    return Napi::Buffer<char>::Copy(info.Env(), buf.data(), static_cast<size_t>(m));
  }
}

// listXattr(path) -> string[]
Napi::Value ListXattr(const Napi::CallbackInfo& info) {
  std::string path = info[0].As<Napi::String>().Utf8Value();
  Napi::Array out = Napi::Array::New(info.Env());
  for (;;) {
    ssize_t n = llistxattr(path.c_str(), nullptr, 0);
    if (n < 0) {
      if (errno == ENOTSUP) return out;
      throw StepError(info.Env(), "listxattr", errno, path);
    }
    std::vector<char> buf(static_cast<size_t>(n) + 1);
    ssize_t m = llistxattr(path.c_str(), buf.data(), buf.size());
    if (m < 0 && errno == ERANGE) continue;
    if (m < 0) throw StepError(info.Env(), "listxattr", errno, path);
    uint32_t k = 0;
    for (ssize_t i = 0; i < m;) {
      std::string name(&buf[static_cast<size_t>(i)]);
      out.Set(k++, Napi::String::New(info.Env(), name));
      i += static_cast<ssize_t>(name.size()) + 1;
    }
    return out;
  }
}

}  // namespace brig
