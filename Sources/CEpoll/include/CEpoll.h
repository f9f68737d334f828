// Glibc's Swift module map leaves out <sys/epoll.h>; this target only makes
// it (with <netinet/tcp.h>, which also brings the socket type constants)
// importable for the load generator, which
// must not depend on GreenThreads or its CContext shims.
#ifndef CEPOLL_H
#define CEPOLL_H
#include <sys/epoll.h>
#include <netinet/tcp.h>
#endif
