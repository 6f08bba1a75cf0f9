#ifndef TERN_CSYSTEM_H
#define TERN_CSYSTEM_H
// Syscalls that Glibc's Swift module does not expose (or exposes awkwardly: epoll_event is a
// packed struct on x86-64, socket type flags are C enums, signal sets are macros).
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/sendfile.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include <fcntl.h>
#include <errno.h>
#include <stdint.h>
#include <sys/prctl.h>

static inline int tern_errno(void) { return errno; }
// readdir reports both the end of a directory and an error as NULL; only errno tells them apart,
// so the caller clears errno before the call.
static inline void tern_set_errno(int value) { errno = value; }
// Names the calling thread (shown by top -H, gdb, /proc/*/task/*/comm); at most 15 bytes kept.
// pthread_setname_np needs _GNU_SOURCE, which Swift's Glibc module is not built with.
static inline int tern_set_thread_name(const char *name) { return prctl(PR_SET_NAME, name, 0, 0, 0); }

// MARK: epoll (the event's 64-bit data word carries the registration's token)

static const uint32_t TERN_EPOLL_IN = EPOLLIN;
static const uint32_t TERN_EPOLL_OUT = EPOLLOUT;
static const uint32_t TERN_EPOLL_ERROR = EPOLLERR;
static const uint32_t TERN_EPOLL_HANG_UP = EPOLLHUP;
int tern_epoll_create(void);
// op: 0 add, 1 modify, 2 delete.
int tern_epoll_control(int epoll_descriptor, int op, int descriptor, uint32_t events, uint64_t token);
// Fills tokens[i] and events[i] for each ready registration; returns the count or -1 (errno).
int tern_epoll_wait(int epoll_descriptor, uint64_t *tokens, uint32_t *events, int capacity, int timeout_milliseconds);

// MARK: signals

// Blocks SIGTERM and SIGINT in the calling thread's mask (threads created later inherit it) and
// ignores SIGPIPE for the process: a write to a closed socket must be an EPIPE error, not a death.
int tern_block_termination_signals(void);
// A non-blocking, close-on-exec signalfd for SIGTERM and SIGINT.
int tern_termination_signal_descriptor(void);
// Reads one pending signal: its number, 0 if none is pending, -1 on error (errno).
int tern_read_signal(int descriptor);

// MARK: TCP (IPv4 and IPv6; addresses are resolved and bound in Swift, in Posix)

// Accepts one connection as non-blocking and close-on-exec with TCP_NODELAY: the descriptor or
// -1 (errno; EAGAIN when none is waiting).
int tern_tcp_accept(int listener);
// The pending error of a socket (SO_ERROR): 0 when a non-blocking connect succeeded.
int tern_socket_error(int descriptor);
// Sets TCP_NODELAY; 0 or -1 (errno).
int tern_set_no_delay(int descriptor);
// Gathers and sends without raising SIGPIPE; bytes sent or -1 (errno).
long tern_send_vectors(int descriptor, const struct iovec *vectors, int count);

// MARK: randomness

// 64 bits from the kernel's random pool (getrandom), falling back to the clock and pid.
uint64_t tern_random_seed(void);
#endif
