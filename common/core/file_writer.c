/* A file replaced in the background (see file_writer.h). */
#include "core/file_writer.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "core/log.h"

struct mfl_file_writer {
    pthread_mutex_t lock;
    pthread_cond_t wake; /* to the thread: a text is pending, or stop */
    pthread_cond_t idle; /* to flush: nothing pending and no write running */
    pthread_t thread;
    char *path;
    char *pending;       /* the newest text not yet taken by the thread */
    size_t pending_len;
    bool busy;           /* the thread is writing a text */
    bool stop;
    char err[512];       /* a write's error not yet reported ("" if none) */
};

static void *s_main(void *arg)
{
    mfl_file_writer_t *self = arg;
    pthread_mutex_lock(&self->lock);
    for (;;) {
        while (!self->pending && !self->stop)
            pthread_cond_wait(&self->wake, &self->lock);
        if (!self->pending) /* stop, and everything is written */
            break;
        char *text = self->pending;
        size_t len = self->pending_len;
        self->pending = NULL;
        self->busy = true;
        pthread_mutex_unlock(&self->lock);
        char err[512];
        int rc = mfl_file_replace(self->path, text, len, err, sizeof err);
        free(text);
        pthread_mutex_lock(&self->lock);
        self->busy = false;
        if (rc < 0)
            memcpy(self->err, err, sizeof err);
        if (!self->pending)
            pthread_cond_broadcast(&self->idle);
    }
    pthread_mutex_unlock(&self->lock);
    return NULL;
}

mfl_file_writer_t *mfl_file_writer_new(const char *path, char *err, size_t errlen)
{
    mfl_file_writer_t *self = calloc(1, sizeof *self);
    if (!self || !(self->path = strdup(path))) {
        free(self);
        mfl_errf(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    pthread_mutex_init(&self->lock, NULL);
    pthread_cond_init(&self->wake, NULL);
    pthread_cond_init(&self->idle, NULL);
    if (pthread_create(&self->thread, NULL, s_main, self) != 0) {
        mfl_errf(err, errlen, "%s: cannot start the writer thread", path);
        pthread_cond_destroy(&self->idle);
        pthread_cond_destroy(&self->wake);
        pthread_mutex_destroy(&self->lock);
        free(self->path);
        free(self);
        return NULL;
    }
    return self;
}

/* The error of a write not yet reported, into err (then cleared). */
static int s_take_err(mfl_file_writer_t *self, char *err, size_t errlen)
{
    if (!self->err[0])
        return 0;
    mfl_errf(err, errlen, "%s", self->err);
    self->err[0] = '\0';
    return -1;
}

int mfl_file_writer_post(mfl_file_writer_t *self, const char *data, size_t len, char *err,
                         size_t errlen)
{
    char *copy = malloc(len ? len : 1);
    if (!copy) {
        mfl_errf(err, errlen, "%s: out of memory", self->path);
        return -1;
    }
    memcpy(copy, data, len);
    pthread_mutex_lock(&self->lock);
    free(self->pending); /* an older view, superseded */
    self->pending = copy;
    self->pending_len = len;
    pthread_cond_signal(&self->wake);
    int rc = s_take_err(self, err, errlen);
    pthread_mutex_unlock(&self->lock);
    return rc;
}

int mfl_file_writer_flush(mfl_file_writer_t *self, char *err, size_t errlen)
{
    pthread_mutex_lock(&self->lock);
    while (self->pending || self->busy)
        pthread_cond_wait(&self->idle, &self->lock);
    int rc = s_take_err(self, err, errlen);
    pthread_mutex_unlock(&self->lock);
    return rc;
}

void mfl_file_writer_destroy(mfl_file_writer_t **self_p)
{
    mfl_file_writer_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    pthread_mutex_lock(&self->lock);
    self->stop = true;
    pthread_cond_signal(&self->wake);
    pthread_mutex_unlock(&self->lock);
    pthread_join(self->thread, NULL); /* writes what is pending first */
    if (self->err[0])
        mfl_warn("%s", self->err);
    free(self->pending);
    pthread_cond_destroy(&self->idle);
    pthread_cond_destroy(&self->wake);
    pthread_mutex_destroy(&self->lock);
    free(self->path);
    free(self);
    *self_p = NULL;
}
