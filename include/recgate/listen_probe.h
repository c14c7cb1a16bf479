/* listen_probe.h - is another process already listening on our address?
 * SPDX-License-Identifier: MIT
 *
 * recgate's workers each bind the listening address with SO_REUSEPORT, so
 * that the kernel spreads connections over them. The flip side: a second
 * recgate started on the same address would bind it too and silently
 * take a share of the traffic. The probe asks the kernel first, once per
 * start, before any worker exists.
 */
#ifndef RECGATE_LISTEN_PROBE_H
#define RECGATE_LISTEN_PROBE_H

#include <stddef.h>

/* Binds a throwaway socket to host:port with SO_REUSEADDR but without
 * SO_REUSEPORT, then closes it. Linux refuses that bind (EADDRINUSE)
 * while any other socket listens on the address, with SO_REUSEPORT or
 * not; connections in TIME_WAIT from an earlier run do not count.
 * shown is the address as the user wrote it, for the message. Returns 0
 * when the address is free to listen on, or -1 with a message in err. */
int listen_probe(const char *host, int port, const char *shown, char *err,
                 size_t err_size);

#endif /* RECGATE_LISTEN_PROBE_H */
