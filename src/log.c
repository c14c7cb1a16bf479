/* log.c - structured logs: one JSON object per line on stderr.
 * SPDX-License-Identifier: MIT
 */
#include "recgate/log.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

/* Warnings and errors of one kind (one message text) are written at most
 * this many times a second; the rest are counted and summed up in one
 * line, so a failing neighbour cannot fill the disk. */
#define LOG_BURST_PER_S 10
#define LOG_BUDGETS 64

typedef struct {
    const char *msg; /* a static string: compared by address */
    time_t second;
    int count;
    long suppressed;
} msg_budget;

static log_level current_level = LOG_INFO;
static msg_budget budgets[LOG_BUDGETS];

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void
log_set_level(log_level level)
{
    current_level = level;
}

log_level
log_get_level(void)
{
    return current_level;
}

bool
log_enabled(log_level level)
{
    return level >= current_level;
}

int
log_level_parse(const char *text, log_level *out)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcmp(text, level_names[i]) == 0) {
            *out = (log_level)i;
            return 0;
        }
    }
    return -1;
}

const char *
log_level_name(log_level level)
{
    return level_names[level];
}

/* Appends raw bytes, keeping room for the closing "}\n". */
static void
append(log_line *line, const char *s, size_t n)
{
    size_t room = sizeof(line->buf) - 2 - line->len;

    if (n > room) {
        n = room;
    }
    memcpy(line->buf + line->len, s, n);
    line->len += n;
}

static void
append_escaped(log_line *line, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    char esc[6] = {'\\', 'u', '0', '0', 0, 0};

    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;

        if (c == '"' || c == '\\') {
            char pair[2] = {'\\', (char)c};
            append(line, pair, 2);
        } else if (c < 0x20 || c == 0x7f) {
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 0xf];
            append(line, esc, sizeof(esc));
        } else {
            append(line, (const char *)&c, 1);
        }
    }
}

static void
append_key(log_line *line, const char *key)
{
    append(line, ",\"", 2);
    append(line, key, strlen(key));
    append(line, "\":", 2);
}

static void
report_suppressed(const msg_budget *b)
{
    log_line line;

    log_begin(&line, LOG_WARN, "similar log lines suppressed");
    log_str(&line, "suppressed_msg", b->msg);
    log_int(&line, "count", b->suppressed);
    log_end(&line);
}

void
log_flush_suppressed(bool at_exit)
{
    time_t now = time(NULL);

    for (int i = 0; i < LOG_BUDGETS; i++) {
        msg_budget *b = &budgets[i];

        if (b->suppressed > 0 && (at_exit || b->second != now)) {
            msg_budget old = *b;
            b->suppressed = 0;
            report_suppressed(&old);
        }
    }
}

/* True when a line with this message is over its budget this second. */
static bool
over_budget(const char *msg)
{
    msg_budget *b = &budgets[((uintptr_t)msg >> 3) % LOG_BUDGETS];
    time_t now = time(NULL);
    msg_budget old = *b;

    if (b->msg != msg || b->second != now) {
        *b = (msg_budget){.msg = msg, .second = now};
        if (old.suppressed > 0) {
            report_suppressed(&old);
        }
    }
    if (++b->count > LOG_BURST_PER_S) {
        b->suppressed++;
        return true;
    }
    return false;
}

void
log_begin(log_line *line, log_level level, const char *msg)
{
    struct timeval now;
    struct tm tm;
    char ts[40];
    int n;

    line->active =
        log_enabled(level) && (level < LOG_WARN || !over_budget(msg));
    line->len = 0;
    if (!line->active) {
        return;
    }

    gettimeofday(&now, NULL);
    gmtime_r(&now.tv_sec, &tm);
    n = snprintf(ts, sizeof(ts),
                 "{\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03dZ\"",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                 tm.tm_min, tm.tm_sec, (int)(now.tv_usec / 1000));
    append(line, ts, (size_t)n);

    log_str(line, "level", level_names[level]);
    log_str(line, "msg", msg);
    log_int(line, "pid", (long long)getpid());
}

void
log_str(log_line *line, const char *key, const char *value)
{
    if (!line->active) {
        return;
    }
    append_key(line, key);
    if (value == NULL) {
        append(line, "null", 4);
        return;
    }
    append(line, "\"", 1);
    append_escaped(line, value);
    append(line, "\"", 1);
}

void
log_int(log_line *line, const char *key, long long value)
{
    char num[32];
    int n;

    if (!line->active) {
        return;
    }
    n = snprintf(num, sizeof(num), "%lld", value);
    append_key(line, key);
    append(line, num, (size_t)n);
}

void
log_num(log_line *line, const char *key, double value)
{
    char num[32];
    int n;

    if (!line->active) {
        return;
    }
    n = snprintf(num, sizeof(num), "%.3f", value);
    append_key(line, key);
    append(line, num, (size_t)n);
}

void
log_end(log_line *line)
{
    ssize_t written;

    if (!line->active) {
        return;
    }
    line->buf[line->len++] = '}';
    line->buf[line->len++] = '\n';

    /* One write per line: the kernel keeps lines from several workers
     * whole when stderr is a pipe and the line fits PIPE_BUF-ish sizes. */
    written = write(STDERR_FILENO, line->buf, line->len);
    (void)written;
}

void
log_msg(log_level level, const char *msg, const char *key, const char *value)
{
    log_line line;

    log_begin(&line, level, msg);
    if (key != NULL) {
        log_str(&line, key, value);
    }
    log_end(&line);
}

bool
log_once_per(time_t *last, int interval_s)
{
    time_t now = time(NULL);

    if (*last != 0 && now - *last < interval_s) {
        return false;
    }
    *last = now;
    return true;
}
