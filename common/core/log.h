/* Logging and internal assertions shared by every metafl program.
 *
 * One line per event on stderr: "2026-11-24T07:10:26Z coordinator warn: text".
 * Messages about bad input name the file, line, key or peer themselves; the
 * logger only adds time, program and level, and replaces control
 * characters (newlines, escapes; not tabs) with '?' so quoted input cannot
 * forge a line. Thread-safe (one fprintf per line, stdio locks the
 * stream). */
#ifndef MFL_CORE_LOG_H
#define MFL_CORE_LOG_H

#include <stdio.h>
#include <stdlib.h>

typedef enum {
    MFL_LOG_DEBUG = 0,
    MFL_LOG_INFO  = 1,
    MFL_LOG_WARN  = 2,
    MFL_LOG_ERROR = 3,
} mfl_log_level_t;

/* Sets the program name shown on each line (borrowed; keep it alive). */
void mfl_log_set_program(const char *program);

/* Lines below `level` are dropped. Default: MFL_LOG_INFO. */
void mfl_log_set_level(mfl_log_level_t level);

/* Parses "debug", "info", "warn" or "error"; returns -1 for anything else. */
int mfl_log_level_parse(const char *text, mfl_log_level_t *level);

/* Writes one line at `level`. */
void mfl_log(mfl_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define mfl_debug(...) mfl_log(MFL_LOG_DEBUG, __VA_ARGS__)
#define mfl_info(...)  mfl_log(MFL_LOG_INFO, __VA_ARGS__)
#define mfl_warn(...)  mfl_log(MFL_LOG_WARN, __VA_ARGS__)
#define mfl_error(...) mfl_log(MFL_LOG_ERROR, __VA_ARGS__)

/* An always-on check of an internal invariant (never of input: bad input
 * gets an error message and a return code). Prints file:line and aborts. */
#define MFL_ASSERT(cond)                                                        \
    do {                                                                        \
        if (!(cond)) {                                                          \
            fprintf(stderr, "%s:%d: internal error: assertion '%s' failed\n",   \
                    __FILE__, __LINE__, #cond);                                 \
            abort();                                                            \
        }                                                                       \
    } while (0)

/* Writes a formatted message into a caller's error buffer (may be NULL),
 * control characters replaced with '?' as in mfl_log: one line. */
void mfl_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
