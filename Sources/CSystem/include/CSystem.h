#ifndef TERN_CSYSTEM_H
#define TERN_CSYSTEM_H
// Syscalls that Glibc's Swift module does not expose.
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/sendfile.h>
#include <unistd.h>
#include <fcntl.h>
#include <errno.h>

static inline int tern_errno(void) { return errno; }
#endif
