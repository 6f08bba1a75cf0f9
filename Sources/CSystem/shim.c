#define _GNU_SOURCE
#include "CSystem.h"
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

int tern_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

int tern_epoll_control(int epoll_descriptor, int op, int descriptor, uint32_t events, uint64_t token) {
    struct epoll_event event;
    memset(&event, 0, sizeof event);
    event.events = events;
    event.data.u64 = token;
    int operation = op == 0 ? EPOLL_CTL_ADD : (op == 1 ? EPOLL_CTL_MOD : EPOLL_CTL_DEL);
    return epoll_ctl(epoll_descriptor, operation, descriptor, &event);
}

int tern_epoll_wait(int epoll_descriptor, uint64_t *tokens, uint32_t *events, int capacity, int timeout_milliseconds) {
    enum { batch = 256 };
    struct epoll_event ready[batch];
    int count = epoll_wait(epoll_descriptor, ready, capacity < batch ? capacity : batch, timeout_milliseconds);
    for (int index = 0; index < count; index++) {
        tokens[index] = ready[index].data.u64;
        events[index] = ready[index].events;
    }
    return count;
}

static void termination_set(sigset_t *set) {
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
}

int tern_block_termination_signals(void) {
    signal(SIGPIPE, SIG_IGN);
    sigset_t set;
    termination_set(&set);
    int code = pthread_sigmask(SIG_BLOCK, &set, NULL);
    if (code != 0) { errno = code; return -1; }
    return 0;
}

int tern_termination_signal_descriptor(void) {
    sigset_t set;
    termination_set(&set);
    return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

int tern_read_signal(int descriptor) {
    struct signalfd_siginfo information;
    ssize_t count = read(descriptor, &information, sizeof information);
    if (count < 0) return errno == EAGAIN ? 0 : -1;
    if (count != (ssize_t)sizeof information) { errno = EIO; return -1; }
    return (int)information.ssi_signo;
}

int tern_tcp_accept(int listener) {
    int descriptor;
    do {
        descriptor = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    } while (descriptor < 0 && errno == EINTR);
    if (descriptor >= 0) tern_set_no_delay(descriptor);
    return descriptor;
}

int tern_socket_error(int descriptor) {
    int error = 0;
    socklen_t length = sizeof error;
    if (getsockopt(descriptor, SOL_SOCKET, SO_ERROR, &error, &length) < 0) return errno;
    return error;
}

int tern_set_no_delay(int descriptor) {
    int enabled = 1;
    return setsockopt(descriptor, IPPROTO_TCP, TCP_NODELAY, &enabled, sizeof enabled);
}

long tern_send_vectors(int descriptor, const struct iovec *vectors, int count) {
    struct msghdr message;
    memset(&message, 0, sizeof message);
    message.msg_iov = (struct iovec *)vectors;
    message.msg_iovlen = (size_t)count;
    return (long)sendmsg(descriptor, &message, MSG_NOSIGNAL);
}

uint64_t tern_random_seed(void) {
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) == (ssize_t)sizeof seed) return seed;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return ((uint64_t)now.tv_sec << 32) ^ (uint64_t)now.tv_nsec ^ ((uint64_t)getpid() << 16);
}
