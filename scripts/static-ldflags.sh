#!/bin/sh
# Prints -static when this machine's C compiler can link a static executable
# (glibc's libc.a is in Debian's libc6-dev; Fedora needs glibc-static), else
# nothing: brig-client is then linked dynamically, which works the same and
# costs the dynamic loader's start (about 1-2 ms of CPU per `brig` command).
# node-gyp runs this for binding.gyp's brig-client target.
probe=$(mktemp "${TMPDIR:-/tmp}/static-probe.XXXXXX") || exit 0
if printf 'int main(void) { return 0; }\n' | "${CC:-cc}" -static -x c -o "$probe" - 2>/dev/null && "$probe"; then
  echo -static
fi
rm -f "$probe"
