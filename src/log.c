/* log.c - structured logs: one JSON object per line on stderr.
 * SPDX-License-Identifier: MIT
 */
#include "recgate/log.h"

#include <event2/event.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

/* Warnings and errors of one kind (one message text) are written at most
 * this many times a second; the rest are counted and summed up in one
 * line, so a failing neighbour cannot fill the disk. */
#define LOG_BURST_PER_S 10
#define LOG_BUDGETS 64

/* The longest string value written; a line's few fields then always fit
 * in LOG_LINE_MAX. */
#define LOG_VALUE_MAX 1024

typedef struct {
    const char *msg; /* a static string: compared by address */
    time_t second;
    int count;
    long suppressed;
} msg_budget;

static log_level current_level = LOG_INFO;

/* Buffered lines: a write(2) per access log line costs more than the
 * rest of a cache hit. */
static char pending[LOG_BUFFER_MAX];
static size_t pending_len;
static size_t buffer_size;
static msg_budget budgets[LOG_BUDGETS];

static const char *const level_names[] = {"debug", "info", "warn", "error"};

/* The start of a line changes once a second and the pid once a fork: both
 * are kept, since an access log line is written for every cache hit and
 * getpid(2) is a real system call in current glibc. */
static time_t stamp_second = -1;
static char stamp[40]; /* {"ts":"YYYY-MM-DDTHH:MM:SS. */
static size_t stamp_len;
static pid_t cached_pid;
static bool fork_hook_set;

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

/* Length of the well-formed UTF-8 sequence at s (1 to 4), or 0 when the
 * bytes there are not one. */
static size_t
utf8_sequence(const unsigned char *s)
{
    size_t n;
    unsigned cp;

    if (s[0] < 0x80) {
        return 1;
    } else if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        n = 2;
        cp = s[0] & 0x1f;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        n = 3;
        cp = s[0] & 0x0f;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        n = 4;
        cp = s[0] & 0x07;
    } else {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (n == 4 && (cp < 0x10000 || cp > 0x10ffff))) {
        return 0;
    }
    return n;
}

/* The bytes JSON takes as they are inside a string: printable ASCII but
 * the quote and the backslash. A table, made at the first use, because
 * every byte of every access line's path and request id is looked up. */
static bool plain_byte[256];
static bool plain_table_made;

static void
make_plain_table(void)
{
    for (int c = 0x20; c < 0x7f; c++) {
        plain_byte[c] = c != '"' && c != '\\';
    }
    plain_table_made = true;
}

/* Length of the run of bytes at s that JSON takes as they are, at most
 * max bytes. */
static size_t
plain_run(const unsigned char *s, size_t max)
{
    size_t n = 0;

    if (!plain_table_made) {
        make_plain_table();
    }
    while (n < max && plain_byte[s[n]]) {
        n++;
    }
    return n;
}

/* Writes s as the inside of a JSON string, at most LOG_VALUE_MAX bytes of
 * it (then "..."), never cutting an escape or a character in two. Bytes
 * that are not UTF-8 are written as \u00XX, so the line stays JSON
 * whatever a client sent. */
static void
append_escaped(log_line *line, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    size_t budget = LOG_VALUE_MAX;

    while (*p != '\0') {
        char out[6] = {'\\', 'u', '0', '0', 0, 0};
        size_t n = plain_run(p, budget);
        size_t len;

        /* Most of a value (a path, a request id) needs no escape: copy
         * it in one go instead of a character at a time. */
        if (n > 0) {
            append(line, (const char *)p, n);
            budget -= n;
            p += n;
            continue;
        }

        n = utf8_sequence(p);
        if (*p == '"' || *p == '\\') {
            out[1] = (char)*p;
            len = 2;
            n = 1;
        } else if (n == 0 || *p < 0x20 || *p == 0x7f) {
            out[4] = hex[*p >> 4];
            out[5] = hex[*p & 0xf];
            len = 6;
            n = 1;
        } else {
            memcpy(out, p, n);
            len = n;
        }
        if (len > budget) {
            append(line, "...", 3);
            return;
        }
        append(line, out, len);
        budget -= len;
        p += n;
    }
}

static void
append_key(log_line *line, const char *key)
{
    append(line, ",\"", 2);
    append(line, key, strlen(key));
    append(line, "\":", 2);
}

/* Decimal digits of v, without printf: this runs several times a line. */
static void
append_unsigned(log_line *line, unsigned long long v, int min_digits)
{
    char digits[24];
    int n = 0;

    do {
        digits[sizeof(digits) - 1 - n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0 || n < min_digits);
    append(line, digits + sizeof(digits) - n, (size_t)n);
}

static void
forget_pid(void)
{
    cached_pid = 0;
}

static pid_t
my_pid(void)
{
    if (!fork_hook_set) {
        pthread_atfork(NULL, NULL, forget_pid);
        fork_hook_set = true;
    }
    if (cached_pid == 0) {
        cached_pid = getpid();
    }
    return cached_pid;
}

static void
append_timestamp(log_line *line)
{
    struct timeval now;
    struct tm tm;

    gettimeofday(&now, NULL);
    if (now.tv_sec != stamp_second) {
        gmtime_r(&now.tv_sec, &tm);
        stamp_len = (size_t)snprintf(
            stamp, sizeof(stamp), "{\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.",
            tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
            tm.tm_sec);
        stamp_second = now.tv_sec;
    }
    append(line, stamp, stamp_len);
    append_unsigned(line, (unsigned long long)(now.tv_usec / 1000), 3);
    append(line, "Z\"", 2);
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
    line->active =
        log_enabled(level) && (level < LOG_WARN || !over_budget(msg));
    line->len = 0;
    line->level = level;
    if (!line->active) {
        return;
    }

    append_timestamp(line);
    log_str(line, "level", level_names[level]);
    log_str(line, "msg", msg);
    log_int(line, "pid", (long long)my_pid());
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
    if (!line->active) {
        return;
    }
    append_key(line, key);
    if (value < 0) {
        append(line, "-", 1);
        append_unsigned(line, 0ULL - (unsigned long long)value, 1);
    } else {
        append_unsigned(line, (unsigned long long)value, 1);
    }
}

/* Three decimals, as "%.3f" would print them; JSON has no NaN, so a
 * value that is not finite is written as null. */
void
log_num(log_line *line, const char *key, double value)
{
    char num[48];
    unsigned long long thousandths;

    if (!line->active) {
        return;
    }
    append_key(line, key);
    if (!isfinite(value)) {
        append(line, "null", 4);
        return;
    }
    if (fabs(value) >= 1e15) {
        append(line, num, (size_t)snprintf(num, sizeof(num), "%.3f", value));
        return;
    }
    if (value < 0) {
        append(line, "-", 1);
        value = -value;
    }
    thousandths = (unsigned long long)llround(value * 1000.0);
    append_unsigned(line, thousandths / 1000, 1);
    append(line, ".", 1);
    append_unsigned(line, thousandths % 1000, 3);
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

    /* Debug and info lines (the access log) may wait in the buffer for
     * up to a flush interval; anything worse goes out at once, after
     * what is buffered, so the order of lines is kept. */
    if (line->level < LOG_WARN && buffer_size > 0) {
        if (pending_len + line->len > buffer_size) {
            log_flush();
        }
        if (line->len <= buffer_size) {
            memcpy(pending + pending_len, line->buf, line->len);
            pending_len += line->len;
            return;
        }
    }
    log_flush();
    written = write(STDERR_FILENO, line->buf, line->len);
    (void)written;
}

void
log_flush(void)
{
    ssize_t written;

    if (pending_len == 0) {
        return;
    }
    /* Whole lines, in one write: on a pipe at most PIPE_BUF bytes, which
     * the kernel keeps whole even when several workers share it; a file
     * takes each write whole (see log_set_buffer). */
    written = write(STDERR_FILENO, pending, pending_len);
    (void)written;
    pending_len = 0;
}

/* Linux writes to a regular file under the file's lock, so a write of
 * any size lands whole beside other processes' writes; a pipe (a
 * container's log, a terminal's pager) keeps only PIPE_BUF bytes whole.
 * Large writes matter on a file: each one also updates the file's
 * times, which costs a file system journal entry. */
static size_t
largest_whole_write(void)
{
    struct stat st;

    if (fstat(STDERR_FILENO, &st) == 0 && S_ISREG(st.st_mode)) {
        return LOG_BUFFER_MAX;
    }
    return PIPE_BUF;
}

void
log_set_buffer(size_t bytes)
{
    size_t most = largest_whole_write();

    log_flush();
    buffer_size = bytes < most ? bytes : most;
}

size_t
log_get_buffer(void)
{
    return buffer_size;
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

/* libevent's messages are made at run time: under one fixed msg, with
 * the text in a field, they share one budget, as a flood of failed
 * accepts must not fill the disk. An EVENT_LOG_ERR is fatal: libevent
 * exits after it. */
void
log_libevent(int severity, const char *text)
{
    static const char msg[] = "libevent";
    log_level level = LOG_WARN;

    if (severity == EVENT_LOG_DEBUG) {
        level = LOG_DEBUG;
    } else if (severity == EVENT_LOG_MSG) {
        level = LOG_INFO;
    } else if (severity == EVENT_LOG_ERR) {
        level = LOG_ERROR;
    }
    log_msg(level, msg, "detail", text);
}
