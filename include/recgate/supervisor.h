/* supervisor.h - a parent process that keeps N worker processes running.
 * SPDX-License-Identifier: MIT
 *
 * Workers share the listening port through SO_REUSEPORT, so the kernel
 * spreads connections over them. The parent only watches: it restarts a
 * worker that dies, passes SIGTERM, SIGINT and SIGHUP on, and exits once
 * every worker has drained after a stop signal; one still running after
 * its drain timeout and a grace is killed. A worker whose parent
 * dies (SIGKILL, say) gets SIGTERM from the kernel and drains too, so no
 * orphan goes on serving the port.
 */
#ifndef RECGATE_SUPERVISOR_H
#define RECGATE_SUPERVISOR_H

#include <stdint.h>

/* A worker's exit status that means "restarting would not help" (the
 * port cannot be bound, say): the supervisor stops the others and fails. */
#define SUPERVISOR_EXIT_FATAL 2

/* After a stop signal, workers get their drain timeout and this much more
 * to exit before the supervisor kills them with SIGKILL. */
#define SUPERVISOR_KILL_GRACE_MS 2000

/* Runs worker(index, arg) in n child processes and supervises them until
 * they have all stopped after a stop signal. On SIGHUP it calls
 * reload(arg) in the parent, then passes the signal to the workers. A
 * stop is bounded by *drain_timeout_ms (server.drain_timeout, read when
 * the stop begins, so a reloaded value counts) plus
 * SUPERVISOR_KILL_GRACE_MS; with NULL, workers are waited for without a
 * bound.
 * Returns the process's exit status: 0 after a clean stop, 1 after a
 * fatal worker failure or when a worker had to be killed. */
int supervisor_run(int n, int (*worker)(int index, void *arg),
                   void (*reload)(void *arg), void *arg,
                   const int64_t *drain_timeout_ms);

#endif /* RECGATE_SUPERVISOR_H */
