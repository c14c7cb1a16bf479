/* log.h - structured logs: one JSON object per line on stderr.
 * SPDX-License-Identifier: MIT
 *
 * A line is built field by field in a fixed buffer. Warnings and errors
 * are written at once; info lines (the access log) may be buffered for a
 * moment. Every write(2) holds whole lines, at most PIPE_BUF bytes, so
 * lines from several processes never interleave. Callers must never hand
 * a secret to the logger: there is no masking here.
 */
#ifndef RECGATE_LOG_H
#define RECGATE_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

typedef enum {
    LOG_DEBUG = 0,
    LOG_INFO,
    LOG_WARN,
    LOG_ERROR,
} log_level;

#define LOG_LINE_MAX 4096

typedef struct {
    char buf[LOG_LINE_MAX];
    size_t len;
    bool active; /* false when the level is off: every call is a no-op */
    log_level level;
} log_line;

void log_set_level(log_level level);
log_level log_get_level(void);
bool log_enabled(log_level level);

/* Parses "debug", "info", "warn" or "error". Returns 0, or -1. */
int log_level_parse(const char *text, log_level *out);
const char *log_level_name(log_level level);

/* Starts a line with ts, level and msg. Values are JSON-escaped; a value
 * that would overflow the line is cut short rather than dropped. */
void log_begin(log_line *line, log_level level, const char *msg);
void log_str(log_line *line, const char *key, const char *value);
void log_int(log_line *line, const char *key, long long value);
void log_num(log_line *line, const char *key, double value);
void log_end(log_line *line);

/* The largest buffer log_set_buffer takes. */
#define LOG_BUFFER_MAX 65536

/* Lets debug and info lines wait in a buffer of up to bytes (0: every
 * line written at once); log_flush() writes them. The caller flushes at
 * an interval and at exit. The buffer is at most LOG_BUFFER_MAX when
 * stderr is a regular file, and at most PIPE_BUF otherwise (a pipe keeps
 * only that much of a write whole): stderr is looked at here, so this is
 * called again when it changes. log_get_buffer() says what was taken. */
void log_set_buffer(size_t bytes);
size_t log_get_buffer(void);
void log_flush(void);

/* One-call form for a message with up to one string field. */
void log_msg(log_level level, const char *msg, const char *key,
             const char *value);

/* Writes the summary of lines suppressed in seconds now past (and in the
 * current one too at exit). Called every second and at exit, so that the
 * end of a flood is reported too. */
void log_flush_suppressed(bool at_exit);

/* True at most once per interval_s for the given clock slot, for errors
 * that would otherwise repeat on every request. */
bool log_once_per(time_t *last, int interval_s);

/* libevent's log callback (event_set_log_callback): its messages become
 * lines with msg "libevent" and the text in "detail", at debug, info,
 * warn or error as libevent rates them, rate-limited as one kind. */
void log_libevent(int severity, const char *text);

#endif /* RECGATE_LOG_H */
