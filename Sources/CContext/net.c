// Socket and address shims for GreenThreads/Net.
//
// Every call returns its result or a negative errno (see poll.c for why).
// Sockets are created non-blocking and close-on-exec; writes use
// MSG_NOSIGNAL so a peer that went away is an EPIPE error, not a SIGPIPE
// that kills the process.
#define _GNU_SOURCE
#include "CContext.h"
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

_Static_assert(sizeof(((gt_sockaddr *)0)->storage) >= sizeof(struct sockaddr_storage),
               "gt_sockaddr must hold any sockaddr");

int gt_socket(int family, int type) {
    int fd = socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    return fd < 0 ? -errno : fd;
}

int gt_setsockopt_int(int fd, int level, int name, int value) {
    return setsockopt(fd, level, name, &value, sizeof value) < 0 ? -errno : 0;
}

int gt_set_linger_zero(int fd) {
    struct linger l = { .l_onoff = 1, .l_linger = 0 };
    return setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l) < 0 ? -errno : 0;
}

int gt_socket_error(int fd) {
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) return -errno;
    return -err;
}

int gt_bind(int fd, const gt_sockaddr *addr) {
    return bind(fd, (const struct sockaddr *)&addr->storage, addr->length) < 0 ? -errno : 0;
}

int gt_listen(int fd, int backlog) {
    return listen(fd, backlog) < 0 ? -errno : 0;
}

int gt_accept(int fd, gt_sockaddr *peer) {
    socklen_t len = sizeof peer->storage;
    int c = accept4(fd, (struct sockaddr *)&peer->storage, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (c < 0) return -errno;
    peer->length = len;
    return c;
}

int gt_connect(int fd, const gt_sockaddr *addr) {
    return connect(fd, (const struct sockaddr *)&addr->storage, addr->length) < 0 ? -errno : 0;
}

int gt_local_address(int fd, gt_sockaddr *out) {
    socklen_t len = sizeof out->storage;
    if (getsockname(fd, (struct sockaddr *)&out->storage, &len) < 0) return -errno;
    out->length = len;
    return 0;
}

int gt_peer_address(int fd, gt_sockaddr *out) {
    socklen_t len = sizeof out->storage;
    if (getpeername(fd, (struct sockaddr *)&out->storage, &len) < 0) return -errno;
    out->length = len;
    return 0;
}

// The hot calls go through syscall(2), not their libc wrappers: read and
// send are cancellation points, and glibc brackets each with
// enable/disable_asynccancel, 2 % of a loaded echo server's CPU. Nothing in
// a runtime's threads is ever cancelled.
long gt_read(int fd, void *buf, size_t len) {
    long n;
    do { n = syscall(SYS_read, fd, buf, len); } while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
}

long gt_write(int fd, const void *buf, size_t len) {
    long n;
    do { n = syscall(SYS_sendto, fd, buf, len, MSG_NOSIGNAL, NULL, 0); } while (n < 0 && errno == EINTR);
    if (n < 0 && errno == ENOTSOCK) {
        do { n = syscall(SYS_write, fd, buf, len); } while (n < 0 && errno == EINTR);
    }
    return n < 0 ? -errno : n;
}

long gt_sendto(int fd, const void *buf, size_t len, const gt_sockaddr *to) {
    ssize_t n;
    do {
        n = sendto(fd, buf, len, MSG_NOSIGNAL, (const struct sockaddr *)&to->storage, to->length);
    } while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
}

long gt_recvfrom(int fd, void *buf, size_t len, gt_sockaddr *from) {
    socklen_t alen = sizeof from->storage;
    ssize_t n;
    do {
        n = recvfrom(fd, buf, len, 0, (struct sockaddr *)&from->storage, &alen);
    } while (n < 0 && errno == EINTR);
    if (n < 0) return -errno;
    from->length = alen;
    return n;
}

int gt_shutdown(int fd, int how) {
    return shutdown(fd, how) < 0 ? -errno : 0;
}

// MARK: Addresses

int gt_sockaddr_from_numeric(const char *host, int port, gt_sockaddr *out) {
    memset(out, 0, sizeof *out);
    if (port < 0 || port > 65535) return -EINVAL;
    struct sockaddr_in *v4 = (struct sockaddr_in *)&out->storage;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        out->length = sizeof *v4;
        return 0;
    }
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&out->storage;
    // Accept "[::1]" as well as "::1".
    char buf[INET6_ADDRSTRLEN + 2];
    size_t hl = strlen(host);
    if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']' && hl - 2 < sizeof buf) {
        memcpy(buf, host + 1, hl - 2);
        buf[hl - 2] = 0;
        host = buf;
    }
    if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        out->length = sizeof *v6;
        return 0;
    }
    return -EINVAL;
}

int gt_sockaddr_from_path(const char *path, gt_sockaddr *out) {
    memset(out, 0, sizeof *out);
    struct sockaddr_un *un = (struct sockaddr_un *)&out->storage;
    size_t len = strlen(path);
    if (len == 0) return -EINVAL;
    if (len >= sizeof un->sun_path) return -ENAMETOOLONG;
    un->sun_family = AF_UNIX;
    memcpy(un->sun_path, path, len + 1);
    out->length = (uint32_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
    return 0;
}

int gt_sockaddr_family(const gt_sockaddr *addr) {
    return ((const struct sockaddr *)&addr->storage)->sa_family;
}

int gt_sockaddr_port(const gt_sockaddr *addr) {
    const struct sockaddr *sa = (const struct sockaddr *)&addr->storage;
    if (sa->sa_family == AF_INET) return ntohs(((const struct sockaddr_in *)sa)->sin_port);
    if (sa->sa_family == AF_INET6) return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
    return -1;
}

int gt_sockaddr_host(const gt_sockaddr *addr, char *out, size_t cap) {
    const struct sockaddr *sa = (const struct sockaddr *)&addr->storage;
    const void *src;
    if (sa->sa_family == AF_INET) src = &((const struct sockaddr_in *)sa)->sin_addr;
    else if (sa->sa_family == AF_INET6) src = &((const struct sockaddr_in6 *)sa)->sin6_addr;
    else if (sa->sa_family == AF_UNIX) {
        const struct sockaddr_un *un = (const struct sockaddr_un *)sa;
        size_t max = addr->length > offsetof(struct sockaddr_un, sun_path)
            ? addr->length - offsetof(struct sockaddr_un, sun_path) : 0;
        size_t n = strnlen(un->sun_path, max < sizeof un->sun_path ? max : sizeof un->sun_path);
        if (n >= cap) n = cap - 1;
        memcpy(out, un->sun_path, n);
        out[n] = 0;
        return 0;
    } else return -EAFNOSUPPORT;
    return inet_ntop(sa->sa_family, src, out, (socklen_t)cap) ? 0 : -errno;
}

int gt_resolve(const char *host, int port, int socktype, gt_sockaddr *out, int cap) {
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = socktype;
    char service[8];
    snprintf(service, sizeof service, "%d", port);
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, service, &hints, &res);
    if (rc != 0) {
        // Map resolver failures onto errno space, tagged so Swift can tell
        // them apart: GT_EAI_BASE + the positive EAI code.
        if (rc == EAI_SYSTEM) return -errno;
        return -(GT_EAI_BASE - rc);
    }
    int n = 0;
    for (struct addrinfo *ai = res; ai && n < cap; ai = ai->ai_next) {
        if (ai->ai_addrlen > sizeof out[n].storage) continue;
        memset(&out[n], 0, sizeof out[n]);
        memcpy(&out[n].storage, ai->ai_addr, ai->ai_addrlen);
        out[n].length = ai->ai_addrlen;
        n++;
    }
    freeaddrinfo(res);
    return n;
}

const char *gt_resolve_error(int code) {
    return gai_strerror(-(code - GT_EAI_BASE));
}

const char *gt_strerror(int err, char *buf, size_t cap) {
    // The GNU strerror_r returns a pointer that may or may not be buf.
    return strerror_r(err, buf, cap);
}
