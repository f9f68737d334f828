// epoll, eventfd and poll(2) shims for the netpoller.
//
// Each returns its result or a negative errno, read right after the call:
// Swift code may switch green threads (and OS threads) before it could
// read errno itself, and an inlined errno address goes stale after a move.
#define _GNU_SOURCE
#include "CContext.h"
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

_Static_assert(GT_EPOLLIN == EPOLLIN && GT_EPOLLOUT == EPOLLOUT && GT_EPOLLERR == EPOLLERR &&
               GT_EPOLLHUP == EPOLLHUP && GT_EPOLLPRI == EPOLLPRI && GT_EPOLLRDHUP == EPOLLRDHUP && GT_EPOLLET == EPOLLET,
               "epoll bits");
_Static_assert(GT_POLLIN == POLLIN && GT_POLLOUT == POLLOUT && GT_POLLNVAL == POLLNVAL &&
               GT_POLLRDHUP == POLLRDHUP, "poll bits");

int gt_epoll_create(void) {
    int fd = epoll_create1(EPOLL_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

int gt_epoll_add(int epfd, int fd, uint32_t events, uint64_t data) {
    struct epoll_event ev = { .events = events, .data.u64 = data };
    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

int gt_epoll_del(int epfd, int fd) {
    // A non-NULL event keeps pre-2.6.9 kernels happy; it is ignored.
    struct epoll_event ev = { 0 };
    return epoll_ctl(epfd, EPOLL_CTL_DEL, fd, &ev) < 0 ? -errno : 0;
}

// epoll_event is packed on x86_64 (12 bytes) and not on arm64 (16); Swift
// sees only gt_poll_event (16). The kernel writes straight into the
// caller's buffer, which is then widened in place from the last event
// down: event i moves from byte 12i to 16i, never over an event below it
// that is still to be read. So no copy of the batch sits on the calling
// stack (a busy worker polls inside its switch, on a green thread's stack).
_Static_assert(sizeof(struct epoll_event) <= sizeof(gt_poll_event), "epoll_event fits in gt_poll_event");

int gt_epoll_wait(int epfd, gt_poll_event *out, int max, int64_t timeout_ns) {
    struct epoll_event *evs = (struct epoll_event *)(void *)out;
    int n;
    if (timeout_ns <= 0) {
        // Raw, like gt_read: epoll_wait's wrapper is a cancellation point.
        n = (int)syscall(SYS_epoll_pwait, epfd, evs, max, timeout_ns < 0 ? -1 : 0, NULL, 0);
    } else {
#ifdef SYS_epoll_pwait2
        // Nanosecond timeouts (Linux 5.11): timers fire on time, not at
        // the next whole millisecond.
        struct timespec ts = { .tv_sec = timeout_ns / 1000000000, .tv_nsec = timeout_ns % 1000000000 };
        n = (int)syscall(SYS_epoll_pwait2, epfd, evs, max, &ts, NULL, 0);
        if (n < 0 && errno == ENOSYS)
#endif
        {
            int64_t ms = (timeout_ns + 999999) / 1000000;  // round up: never wake early
            n = epoll_wait(epfd, evs, max, ms > INT32_MAX ? INT32_MAX : (int)ms);
        }
    }
    if (n < 0) return -errno;
    for (int i = n - 1; i >= 0; i--) {
        struct epoll_event ev;
        memcpy(&ev, (const char *)out + (size_t)i * sizeof(struct epoll_event), sizeof ev);
        out[i].events = ev.events;
        out[i].data = ev.data.u64;
    }
    return n;
}

int gt_eventfd_create(void) {
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

void gt_eventfd_signal(int fd) {
    uint64_t one = 1;
    // EAGAIN means the counter is saturated: a wake-up is pending anyway.
    while (write(fd, &one, sizeof one) < 0 && errno == EINTR) {}
}

void gt_eventfd_drain(int fd) {
    uint64_t value;
    while (read(fd, &value, sizeof value) < 0 && errno == EINTR) {}
}

int gt_poll_one(int fd, int16_t events, int64_t timeout_ns, int16_t *revents) {
    struct pollfd p = { .fd = fd, .events = events, .revents = 0 };
    int ms = timeout_ns < 0 ? -1 : (int)((timeout_ns + 999999) / 1000000 > INT32_MAX ? INT32_MAX : (timeout_ns + 999999) / 1000000);
    int n = poll(&p, 1, ms);
    if (n < 0) return -errno;
    *revents = p.revents;
    return n;
}

int gt_close(int fd) {
    // Linux closes the fd even when close returns EINTR: never retry.
    return close(fd) < 0 ? -errno : 0;
}

int gt_fd_is_open(int fd) {
    struct pollfd p = { .fd = fd, .events = 0, .revents = 0 };
    if (poll(&p, 1, 0) < 0) return -errno;
    return (p.revents & POLLNVAL) ? 0 : 1;
}
