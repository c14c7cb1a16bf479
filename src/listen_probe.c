/* listen_probe.c - is another process already listening on our address?
 * SPDX-License-Identifier: MIT
 */
#include "recgate/listen_probe.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

/* Binds a socket the way a worker would, minus SO_REUSEPORT. Returns 0,
 * or the errno of the step that failed. */
static int
try_bind(const struct addrinfo *ai)
{
    int one = 1;
    int fd =
        socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    int rc = 0;

    if (fd < 0) {
        return errno;
    }

    /* SO_REUSEADDR, as the workers set it: a restart is not refused
     * because of connections of the previous run still in TIME_WAIT. */
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        rc = errno;
    }

    /* Never listened on: closing it leaves nothing behind. */
    close(fd);
    return rc;
}

int
listen_probe(const char *host, int port, const char *shown, char *err,
             size_t err_size)
{
    /* The same lookup as the workers' own bind, so the probe tests the
     * very address they are about to take. */
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    char service[8];
    int rc;

    snprintf(service, sizeof(service), "%d", port);
    rc = getaddrinfo(host, service, &hints, &ai);
    if (rc != 0) {
        snprintf(err, err_size, "cannot resolve server.listen %s: %s", shown,
                 gai_strerror(rc));
        return -1;
    }

    rc = try_bind(ai);
    freeaddrinfo(ai);
    if (rc == 0) {
        return 0;
    }

    /* Plainer than strerror's "Address already in use" about the likely
     * cause: another recgate (or other server) already runs there. */
    snprintf(err, err_size, "cannot listen on %s: %s", shown,
             rc == EADDRINUSE
                 ? "address in use (another process is listening there)"
                 : strerror(rc));
    return -1;
}
