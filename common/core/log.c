#include "core/log.h"

#include <stdarg.h>
#include <string.h>
#include <time.h>

static const char *s_program = "metafl";
static mfl_log_level_t s_level = MFL_LOG_INFO;

static const char *s_level_names[] = {"debug", "info", "warn", "error"};

/* Messages quote input (a config value, a peer's name): a newline or
 * terminal escape in it must not forge a log line or drive the terminal,
 * so control characters (not tabs) become '?'. */
static void s_one_line(char *text)
{
    for (char *p = text; *p; p++)
        if ((unsigned char)*p < 0x20 ? *p != '\t' : *p == 0x7f)
            *p = '?';
}

void mfl_log_set_program(const char *program) { s_program = program; }

void mfl_log_set_level(mfl_log_level_t level) { s_level = level; }

int mfl_log_level_parse(const char *text, mfl_log_level_t *level)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(text, s_level_names[i]) == 0) {
            *level = (mfl_log_level_t)i;
            return 0;
        }
    }
    return -1;
}

void mfl_log(mfl_log_level_t level, const char *fmt, ...)
{
    if (level < s_level)
        return;
    char stamp[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm);

    char text[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    s_one_line(text);
    fprintf(stderr, "%s %s %s: %s\n", stamp, s_program, s_level_names[level], text);
}

void mfl_errf(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    s_one_line(err); /* errors end up in logs and on terminals too */
}
