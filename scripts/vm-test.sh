#!/usr/bin/env bash
# npm run test:vm: the cgroup tests on a pure cgroup v2 host, in a VM.
#
# Boots Debian's 6.1 kernel under qemu (TCG: no KVM needed) with a busybox
# initramfs that mounts this machine's root read-only over 9p, switches root
# to it (switch_root, not chroot: a chrooted process may not create user
# namespaces), mounts cgroup2 alone, delegates a subtree to an unprivileged
# user the way systemd's Delegate=yes does, and runs test/cgroup.test.ts as
# that user with BRIG_CGROUP_PARENT pointing at the subtree.
#
#   VM_USER (default: brigci if it exists, else nobody)   VM_TIMEOUT (s, default 900)
#   VM_CMD: another command to run there instead (debugging)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
vm=$root/build/vm
mkdir -p "$vm"

need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
[ -x /bin/busybox ] && /bin/busybox --list 2>/dev/null | grep -qx switch_root || need+=(busybox-static)
command -v cpio >/dev/null || need+=(cpio)
if ((${#need[@]})); then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "test:vm needs ${need[*]} (apt-get install ${need[*]})" >&2
    exit 1
  fi
fi

# The kernel: Debian's newest 6.1 image, once.
if ! ls "$vm"/kernel/boot/vmlinuz-* >/dev/null 2>&1; then
  find_kernel() { apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-amd64$' | cut -d' ' -f1 | sort -V | tail -1; }
  pkg=$(find_kernel)
  if [ -z "$pkg" ] && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && pkg=$(find_kernel)
  fi
  [ -n "$pkg" ] || { echo "no linux-image-6.1.0-*-amd64 in the package index (apt-get update?)" >&2; exit 1; }
  (cd "$vm" && rm -f linux-image-*.deb && apt-get download "$pkg" >/dev/null && dpkg-deb -x linux-image-*.deb kernel && rm -f linux-image-*.deb)
fi
kver=$(ls "$vm/kernel/lib/modules" | head -1)
vmlinuz=$(ls "$vm"/kernel/boot/vmlinuz-* | head -1)

user=${VM_USER:-$(id -u brigci >/dev/null 2>&1 && echo brigci || echo nobody)}
uid=$(id -u "$user")
gid=$(id -g "$user")

# What the tests need that they would otherwise build: the addon and dist
# exist already (npm test ran); the C probe is built here, on the host.
node -e "import('$root/dist/test/probe.js').then((m) => m.probe())"

# The initramfs: busybox, the modules for virtio and 9p, and two scripts.
ird=$vm/initramfs
rm -rf "$ird"
mkdir -p "$ird"/{bin,proc,sys,dev,host,mods}
cp /bin/busybox "$ird/bin/busybox"
for m in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci netfs fscache 9pnet 9pnet_virtio 9p; do
  f=$(find "$vm/kernel/lib/modules/$kver" -name "$m.ko" | head -1)
  [ -n "$f" ] && cp "$f" "$ird/mods/"
done
cat > "$ird/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t devtmpfs dev /dev
for m in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci netfs fscache 9pnet 9pnet_virtio 9p; do
  [ -f /mods/$m.ko ] && insmod /mods/$m.ko
done
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=524288,cache=loose host /host || { echo "BRIG-VM-EXIT=99 (no 9p)"; poweroff -f; }
mount -t proc proc /host/proc
mount -t sysfs sys /host/sys
mount -t devtmpfs dev /host/dev
# Scratch space on /run, not /tmp: the project itself may live under /tmp.
mount -t tmpfs -o mode=755 run /host/run
mkdir -p /host/run/brig-vm/tmp
chmod 1777 /host/run/brig-vm/tmp
mount -t cgroup2 cgroup2 /host/sys/fs/cgroup
cp /stage2.sh /host/run/brig-vm/stage2.sh
exec switch_root /host /bin/sh /run/brig-vm/stage2.sh
INIT
chmod +x "$ird/init"
cat > "$ird/stage2.sh" <<STAGE2
#!/bin/sh
# On the host's filesystem, as the VM's pid 1.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
cg=/sys/fs/cgroup
echo "cgroup v2 controllers: \$(cat \$cg/cgroup.controllers)"
[ -n "${VM_DEBUG:-}" ] && { cat /proc/mounts; ls -la /proc/self/ | head -5; ls /proc | head; }
# Delegation, as systemd does it: a subtree the user owns, controllers
# enabled down to it, and the user's process inside it.
echo "+memory +pids +cpu +cpuset" > \$cg/cgroup.subtree_control
mkdir -p \$cg/brig-vm/runner
echo "+memory +pids +cpu +cpuset" > \$cg/brig-vm/cgroup.subtree_control
chown -R $uid:$gid \$cg/brig-vm
echo \$\$ > \$cg/brig-vm/runner/cgroup.procs
cd "$root"
setpriv --reuid=$uid --regid=$gid --clear-groups -- env -i HOME=/run/brig-vm/tmp TMPDIR=/run/brig-vm/tmp PATH=\$PATH LANG=C.UTF-8 BRIG_CGROUP_PARENT=\$cg/brig-vm \
  ${VM_CMD:-node --test --test-reporter=spec dist/test/cgroup.test.js}
rc=\$?
echo "BRIG-VM-EXIT=\$rc"
# pid 1 exits: the kernel panics, panic=-1 reboots, -no-reboot ends qemu.
exit \$rc
STAGE2
(cd "$ird" && find . | cpio -o -H newc --quiet | gzip -1 > "$vm/initramfs.gz")

log=$vm/console.log
echo "booting $(basename "$vmlinuz") under qemu (TCG) as $user (uid $uid)..."
set +e
timeout "${VM_TIMEOUT:-900}" qemu-system-x86_64 -accel tcg,thread=multi -cpu max -smp 2 -m 2048 \
  -kernel "$vmlinuz" -initrd "$vm/initramfs.gz" \
  -append "console=ttyS0 quiet panic=-1 systemd.unified_cgroup_hierarchy=1" \
  -virtfs local,path=/,mount_tag=host,security_model=none,readonly=on,multidevs=remap \
  -nographic -no-reboot -monitor none -serial stdio > "$log" 2>&1
set -e
grep -vE '^\[ *[0-9.]+\]|Kernel panic|end Kernel panic|Rebooting|^$' "$log" | tr -d '\r' || true
rc=$(grep -o 'BRIG-VM-EXIT=[0-9]*' "$log" | tail -1 | cut -d= -f2)
if [ -z "$rc" ]; then
  echo "test:vm: the VM did not report (see $log)" >&2
  exit 1
fi
exit "$rc"
