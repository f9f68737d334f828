#include "CEpoll.h"
#include <errno.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int lg_epoll_wait_ns(int epfd, struct epoll_event *events, int maxevents, long long timeout_ns) {
#ifdef SYS_epoll_pwait2
    static int unsupported;
    if (!unsupported) {
        struct timespec ts = {timeout_ns / 1000000000LL, timeout_ns % 1000000000LL};
        long n = syscall(SYS_epoll_pwait2, epfd, events, maxevents, timeout_ns < 0 ? NULL : &ts, NULL, 0);
        if (n >= 0) return (int)n;
        if (errno != ENOSYS) return -errno;
        unsupported = 1;
    }
#endif
    int ms = timeout_ns < 0 ? -1 : (int)((timeout_ns + 999999) / 1000000);
    int n = epoll_wait(epfd, events, maxevents, ms);
    return n < 0 ? -errno : n;
}
