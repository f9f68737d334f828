// Glibc's Swift module map leaves out <sys/epoll.h>; this target makes it
// (with <netinet/tcp.h>, which also brings the socket type constants)
// importable for the load generator, which must not depend on GreenThreads
// or its CContext shims, and adds the one wait it needs that glibc may lack.
#ifndef CEPOLL_H
#define CEPOLL_H
#include <sys/epoll.h>
#include <netinet/tcp.h>

/// epoll_wait with a timeout in nanoseconds (< 0: forever). A fixed-rate
/// load sends every few microseconds, which epoll_wait's millisecond
/// timeout cannot express; epoll_pwait2 (Linux 5.11) can. On older kernels
/// the timeout rounds up to whole milliseconds. Returns the event count, or
/// -errno.
int lg_epoll_wait_ns(int epfd, struct epoll_event *events, int maxevents, long long timeout_ns);
#endif
