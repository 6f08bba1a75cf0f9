#ifndef TERN_CSYSTEM_H
#define TERN_CSYSTEM_H
// Syscalls that Glibc's Swift module does not expose.
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/sendfile.h>
#include <unistd.h>
#include <fcntl.h>
#include <errno.h>
#include <sys/prctl.h>

static inline int tern_errno(void) { return errno; }
// readdir reports both the end of a directory and an error as NULL; only errno tells them apart,
// so the caller clears errno before the call.
static inline void tern_set_errno(int value) { errno = value; }
// Names the calling thread (shown by top -H, gdb, /proc/*/task/*/comm); at most 15 bytes kept.
// pthread_setname_np needs _GNU_SOURCE, which Swift's Glibc module is not built with.
static inline int tern_set_thread_name(const char *name) { return prctl(PR_SET_NAME, name, 0, 0, 0); }
#endif
