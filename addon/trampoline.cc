// Clone into a function on a stack of our own.
//
// With CLONE_VM the child shares the parent's memory, so it cannot return
// from the system call into the caller's stack frame: the parent is using
// that stack. These routines make the call with fn and arg kept in registers
// the kernel preserves, and the child calls fn(arg) on the new stack at once.
// Written out because glibc's clone() wrapper may not be used in the child of
// a multithreaded process only by accident of its implementation.
#include "trampoline.h"

#if defined(__x86_64__)
__asm__(
    ".text\n"
    ".globl brig_clone3_call\n"
    ".type brig_clone3_call,@function\n"
    // long brig_clone3_call(struct clone_args* args, size_t size, fn, arg)
    "brig_clone3_call:\n"
    "  mov %rdx, %r9\n"      // fn (r8, r9 survive the syscall)
    "  mov %rcx, %r8\n"      // arg
    "  mov $435, %eax\n"     // __NR_clone3
    "  syscall\n"
    "  test %rax, %rax\n"
    "  jnz 1f\n"
    ".Lbrig_x86_child:\n"    // both calls' children start here
    "  xor %ebp, %ebp\n"     // the child's outermost frame
    "  and $-16, %rsp\n"
    "  mov %r8, %rdi\n"
    "  call *%r9\n"
    "  mov $127, %edi\n"     // fn never returns; if it does, exit
    "  mov $60, %eax\n"      // __NR_exit
    "  syscall\n"
    "  hlt\n"
    "1: ret\n"
    ".size brig_clone3_call, .-brig_clone3_call\n"

    ".globl brig_clone_call\n"
    ".type brig_clone_call,@function\n"
    // long brig_clone_call(unsigned long flags, void* stack_top, int* parent_tid, fn, arg)
    "brig_clone_call:\n"
    "  mov %rcx, %r9\n"      // fn; clone does not use r9
    // r8 holds arg and is clone's tls argument, ignored without CLONE_SETTLS
    "  xor %r10d, %r10d\n"   // child_tid
    "  mov $56, %eax\n"      // __NR_clone
    "  syscall\n"
    "  test %rax, %rax\n"
    "  jz .Lbrig_x86_child\n"
    "  ret\n"
    ".size brig_clone_call, .-brig_clone_call\n");
#elif defined(__aarch64__)
__asm__(
    ".text\n"
    ".globl brig_clone3_call\n"
    ".type brig_clone3_call,%function\n"
    // x0 = args, x1 = size, x2 = fn, x3 = arg
    "brig_clone3_call:\n"
    "  mov x9, x2\n"
    "  mov x10, x3\n"
    "  mov x8, #435\n"
    "  svc #0\n"
    "  cbnz x0, 1f\n"
    ".Lbrig_arm_child:\n"    // both calls' children start here
    "  mov x29, #0\n"
    "  mov x30, #0\n"
    "  mov x0, x10\n"
    "  blr x9\n"
    "  mov x0, #127\n"
    "  mov x8, #93\n"
    "  svc #0\n"
    "1: ret\n"
    ".size brig_clone3_call, .-brig_clone3_call\n"

    ".globl brig_clone_call\n"
    ".type brig_clone_call,%function\n"
    // x0 = flags, x1 = stack_top, x2 = parent_tid, x3 = fn, x4 = arg
    "brig_clone_call:\n"
    "  mov x9, x3\n"
    "  mov x10, x4\n"
    "  mov x3, #0\n"          // tls
    "  mov x4, #0\n"          // child_tid
    "  mov x8, #220\n"        // __NR_clone
    "  svc #0\n"
    "  cbz x0, .Lbrig_arm_child\n"
    "  ret\n"
    ".size brig_clone_call, .-brig_clone_call\n");
#else
#error "brig supports x86_64 and aarch64"
#endif
