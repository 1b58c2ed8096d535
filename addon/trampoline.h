#pragma once
#include <stddef.h>

extern "C" {
// Both return the child's pid (or -errno) in the parent; the child runs
// fn(arg) on the stack the arguments name and exits with 127 if fn returns.
long brig_clone3_call(void* clone_args, size_t size, void (*fn)(void*), void* arg);
long brig_clone_call(unsigned long flags, void* stack_top, int* parent_tid, void (*fn)(void*), void* arg);
}
