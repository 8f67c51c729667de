/* A file replaced in the background: the latest text posted is written to
 * PATH (mfl_file_replace: temp file + rename, atomic for readers, not
 * fsync'd) on a helper thread, so the caller never waits for the file
 * system. For views rebuilt often from state kept elsewhere (the
 * coordinator's status.json): on ext4, renaming over an existing file
 * starts the new file's writeback (auto_da_alloc), which blocked the
 * coordinator's event loop for 0.1-12 ms per write on a busy disk.
 *
 * Texts posted while a write is in progress replace each other: only the
 * newest is written next (a view, not a log). */
#ifndef MFL_CORE_FILE_WRITER_H
#define MFL_CORE_FILE_WRITER_H

#include <stddef.h>

typedef struct mfl_file_writer mfl_file_writer_t;

/* A writer for `path` (copied) with its thread started. NULL with err on
 * out of memory or if the thread cannot start. */
mfl_file_writer_t *mfl_file_writer_new(const char *path, char *err, size_t errlen);

/* Waits for what was posted to be written, stops the thread, frees;
 * accepts NULL; nulls *self_p. A failed last write is logged (warn). */
void mfl_file_writer_destroy(mfl_file_writer_t **self_p);

/* Queues data[0..len) (copied) to replace the file, dropping a text posted
 * earlier and not yet written; returns at once. Returns 0, or -1 with err:
 * out of memory (nothing queued), or the error of a background write since
 * the last call (the text is queued all the same; each failure is reported
 * once). Not for concurrent callers (one owner thread). */
int mfl_file_writer_post(mfl_file_writer_t *self, const char *data, size_t len, char *err,
                         size_t errlen);

/* Waits until everything posted so far is written. Returns 0, or -1 with
 * the error of a write not yet reported. */
int mfl_file_writer_flush(mfl_file_writer_t *self, char *err, size_t errlen);

#endif
