/* supervisor.h - a parent process that keeps N worker processes running.
 * SPDX-License-Identifier: MIT
 *
 * Workers share the listening port through SO_REUSEPORT, so the kernel
 * spreads connections over them. The parent only watches: it restarts a
 * worker that dies, passes SIGTERM, SIGINT and SIGHUP on, and exits once
 * every worker has drained after a stop signal. A worker whose parent
 * dies (SIGKILL, say) gets SIGTERM from the kernel and drains too, so no
 * orphan goes on serving the port.
 */
#ifndef RECGATE_SUPERVISOR_H
#define RECGATE_SUPERVISOR_H

/* A worker's exit status that means "restarting would not help" (the
 * port cannot be bound, say): the supervisor stops the others and fails. */
#define SUPERVISOR_EXIT_FATAL 2

/* Runs worker(index, arg) in n child processes and supervises them until
 * they have all stopped after a stop signal. On SIGHUP it calls
 * reload(arg) in the parent, then passes the signal to the workers.
 * Returns the process's exit status: 0 after a clean stop, 1 after a
 * fatal worker failure. */
int supervisor_run(int n, int (*worker)(int index, void *arg),
                   void (*reload)(void *arg), void *arg);

#endif /* RECGATE_SUPERVISOR_H */
