/* supervisor.c - a parent process that keeps N worker processes running.
 * SPDX-License-Identifier: MIT
 */
#include "recgate/supervisor.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "recgate/log.h"

/* A worker that keeps dying is restarted at most this often. */
#define RESTART_MIN_INTERVAL_MS 200

typedef struct {
    int n;
    pid_t *pids;
    struct timespec *started;
    int (*worker)(int index, void *arg);
    void (*reload)(void *arg);
    void *arg;
    const int64_t *drain_timeout_ms; /* NULL: a stop has no bound */
    bool stopping;
    bool fatal;
    bool bounded;                 /* a stop with a kill deadline pending */
    struct timespec stop_started; /* monotonic */
    bool killed;                  /* a worker had to be killed */
} supervisor;

static sigset_t
handled_signals(void)
{
    sigset_t set;

    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    return set;
}

static void
log_worker(log_level level, const char *msg, int index, pid_t pid, int status)
{
    log_line line;

    log_begin(&line, level, msg);
    log_int(&line, "worker", index);
    log_int(&line, "worker_pid", pid);
    if (status >= 0) {
        if (WIFSIGNALED(status)) {
            log_int(&line, "signal", WTERMSIG(status));
        } else {
            log_int(&line, "exit_status", WEXITSTATUS(status));
        }
    }
    log_end(&line);
}

/* A worker without its supervisor would go on serving the port unseen,
 * never restarted and never stopped by the service manager, which only
 * knows the parent. Asks the kernel for SIGTERM when the parent dies (the
 * worker then drains as after any SIGTERM); a parent that died before
 * that request took effect sends nothing, hence the check after it. */
static void
die_with_parent(pid_t parent)
{
    prctl(PR_SET_PDEATHSIG, SIGTERM);

    if (getppid() != parent) {
        log_msg(LOG_WARN, "supervisor gone: worker not starting", NULL, NULL);
        exit(0);
    }
}

/* Forks worker index. The child gets the signals back unblocked and
 * never returns here. */
static void
spawn(supervisor *sv, int index)
{
    sigset_t set = handled_signals();
    pid_t parent = getpid();
    pid_t pid = fork();

    if (pid == 0) {
        die_with_parent(parent);
        signal(SIGHUP, SIG_IGN);
        sigprocmask(SIG_UNBLOCK, &set, NULL);
        exit(sv->worker(index, sv->arg));
    }
    if (pid < 0) {
        log_msg(LOG_ERROR, "cannot fork a worker", "error", strerror(errno));
        sv->pids[index] = 0;
        return;
    }
    sv->pids[index] = pid;
    clock_gettime(CLOCK_MONOTONIC, &sv->started[index]);
    log_worker(LOG_INFO, "worker started", index, pid, -1);
}

static void
signal_all(supervisor *sv, int sig)
{
    for (int i = 0; i < sv->n; i++) {
        if (sv->pids[i] > 0) {
            kill(sv->pids[i], sig);
        }
    }
}

static int
index_of(const supervisor *sv, pid_t pid)
{
    for (int i = 0; i < sv->n; i++) {
        if (sv->pids[i] == pid) {
            return i;
        }
    }
    return -1;
}

static long
ms_since(const struct timespec *t)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - t->tv_sec) * 1000 +
           (now.tv_nsec - t->tv_nsec) / 1000000;
}

/* Asks every worker to drain. The drain timeout is read now, so that a
 * value reloaded since the start counts. */
static void
begin_stop(supervisor *sv)
{
    if (!sv->stopping) {
        sv->stopping = true;
        sv->bounded = sv->drain_timeout_ms != NULL;
        clock_gettime(CLOCK_MONOTONIC, &sv->stop_started);
    }
    signal_all(sv, SIGTERM);
}

/* Handles every child that has exited: restart, or note the stop. */
static void
reap(supervisor *sv)
{
    int status;
    pid_t pid;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        int i = index_of(sv, pid);
        if (i < 0) {
            continue;
        }
        sv->pids[i] = 0;

        if (sv->stopping) {
            log_worker(LOG_INFO, "worker stopped", i, pid, status);
            continue;
        }
        if (WIFEXITED(status) && WEXITSTATUS(status) == SUPERVISOR_EXIT_FATAL) {
            log_worker(LOG_ERROR, "worker failed for good: stopping", i, pid,
                       status);
            sv->fatal = true;
            begin_stop(sv);
            continue;
        }

        log_worker(LOG_ERROR, "worker died: restarting it", i, pid, status);
        if (ms_since(&sv->started[i]) < RESTART_MIN_INTERVAL_MS) {
            struct timespec pause = {0, RESTART_MIN_INTERVAL_MS * 1000000L};
            nanosleep(&pause, NULL);
        }
        spawn(sv, i);
    }
}

static bool
any_running(const supervisor *sv)
{
    for (int i = 0; i < sv->n; i++) {
        if (sv->pids[i] > 0) {
            return true;
        }
    }
    return false;
}

static void
on_signal(supervisor *sv, int sig)
{
    bool first;

    switch (sig) {
    case SIGCHLD:
        reap(sv);
        break;
    case SIGHUP:
        sv->reload(sv->arg);
        signal_all(sv, SIGHUP);
        break;
    default:
        /* The workers are told first: the log line may block on a full
         * stderr pipe. */
        first = !sv->stopping;
        begin_stop(sv);
        if (first) {
            log_msg(LOG_INFO, "stopping workers", "signal",
                    sig == SIGTERM ? "SIGTERM" : "SIGINT");
        }
        break;
    }
}

/* A worker that has not exited by the end of its drain timeout plus a
 * grace is stuck (stopped by SIGSTOP, say, or spinning, or blocked on a
 * full stderr pipe): it would keep the port and the service manager
 * waiting for ever. All are killed before the log lines are written,
 * since those writes may block on the same pipe. */
static void
kill_stragglers(supervisor *sv)
{
    for (int i = 0; i < sv->n; i++) {
        if (sv->pids[i] > 0) {
            kill(sv->pids[i], SIGKILL);
            sv->killed = true;
        }
    }
    for (int i = 0; i < sv->n; i++) {
        if (sv->pids[i] > 0) {
            log_worker(LOG_WARN,
                       "worker did not stop within server.drain_timeout: "
                       "killed it",
                       i, sv->pids[i], -1);
        }
    }
    /* Their exits are reaped as they come, with no deadline left. */
    sv->bounded = false;
}

/* The next signal, or 0 once a stop's kill deadline has passed. */
static int
next_signal(supervisor *sv, const sigset_t *set)
{
    long left;
    struct timespec wait;
    int sig;

    if (!sv->bounded) {
        return sigwaitinfo(set, NULL);
    }
    left = (long)*sv->drain_timeout_ms + SUPERVISOR_KILL_GRACE_MS -
           ms_since(&sv->stop_started);
    if (left <= 0) {
        return 0;
    }
    wait.tv_sec = left / 1000;
    wait.tv_nsec = (left % 1000) * 1000000L;
    sig = sigtimedwait(set, NULL, &wait);
    if (sig < 0 && errno == EAGAIN) {
        return 0;
    }
    return sig;
}

int
supervisor_run(int n, int (*worker)(int index, void *arg),
               void (*reload)(void *arg), void *arg,
               const int64_t *drain_timeout_ms)
{
    sigset_t set = handled_signals();
    supervisor sv = {.n = n,
                     .worker = worker,
                     .reload = reload,
                     .arg = arg,
                     .drain_timeout_ms = drain_timeout_ms};
    int sig;

    sv.pids = calloc((size_t)n, sizeof(pid_t));
    sv.started = calloc((size_t)n, sizeof(struct timespec));
    sigprocmask(SIG_BLOCK, &set, NULL);

    for (int i = 0; i < n; i++) {
        spawn(&sv, i);
    }

    /* Signals are taken synchronously: no handler runs in the middle of
     * the bookkeeping. */
    while (any_running(&sv)) {
        sig = next_signal(&sv, &set);
        if (sig > 0) {
            on_signal(&sv, sig);
        } else if (sig == 0) {
            kill_stragglers(&sv);
        }
    }

    free(sv.pids);
    free(sv.started);
    return sv.fatal || sv.killed ? 1 : 0;
}
