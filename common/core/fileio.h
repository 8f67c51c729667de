/* Crash-safe file writes and bounded reads, for checkpoints, audit logs and
 * anything else that must never be seen half-written.
 *
 * An atomic write goes to a temp file "PATH.tmp-XXXXXX" in the same
 * directory, is fsync'd, renamed over PATH, and the directory is fsync'd,
 * so after a crash PATH holds either the old or the new contents, never a
 * mix. A leftover temp file (crash before the rename) is harmless: readers
 * never look at "*.tmp-*" names. */
#ifndef MFL_CORE_FILEIO_H
#define MFL_CORE_FILEIO_H

#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

/* The infix of temp files made by mfl_file_write_atomic; directory scanners
 * skip names containing it. */
#define MFL_FILE_TMP_INFIX ".tmp-"

/* Writes data[0..len) to `path` atomically (see above). Borrows everything.
 * The file gets mode 0644 exactly (set with fchmod, so the umask does not
 * apply; see the _mode variant).
 * Returns 0, or -1 with "PATH: what failed: strerror" in err; on failure
 * the temp file is removed and `path` is untouched. Thread-safe (distinct
 * temp names), but two writers of the same path race: the last rename wins. */
int mfl_file_write_atomic(const char *path, const void *data, size_t len, char *err,
                          size_t errlen);

/* As mfl_file_write_atomic with an explicit file mode (e.g. 0600 for files
 * holding secrets). */
int mfl_file_write_atomic_mode(const char *path, const void *data, size_t len, mode_t mode,
                               char *err, size_t errlen);

/* Replaces `path` with data[0..len) atomically FOR READERS, not durably:
 * the same temp file + rename (mode 0644), so a reader sees the old or the
 * new contents, never a mix, but neither the file nor the directory is
 * fsync'd, so after a power loss PATH may hold the old contents, or be
 * empty or missing. For views rebuilt often from state kept elsewhere
 * (status.json); anything a restart relies on uses mfl_file_write_atomic.
 * Returns 0, or -1 with "PATH: what failed: strerror" in err (the temp file
 * is then removed). Thread-safe as mfl_file_write_atomic. */
int mfl_file_replace(const char *path, const void *data, size_t len, char *err, size_t errlen);

/* Reads the whole file into a malloc'd buffer (caller frees *data) with a
 * NUL appended (not counted in *len), so text can be parsed in place.
 * Refuses a file larger than `max_bytes` before reading it (and if it grows
 * while being read), and anything but a regular file (a FIFO or device is
 * refused at once, without blocking). Returns 0, or -1 with "PATH: reason" in err (*data is
 * then NULL). Thread-safe. */
int mfl_file_read_all(const char *path, size_t max_bytes, char **data, size_t *len, char *err,
                      size_t errlen);

/* write(2)s all of data[0..len) to fd, retrying after EINTR and short
 * writes. Returns 0, or -1 with errno set by the failing write. */
int mfl_file_write_full(int fd, const void *data, size_t len);

/* Opens `path` read-only (O_CLOEXEC) and checks it is a regular file; its
 * stat into *st if st is non-NULL. Opens with O_NONBLOCK, so a FIFO or
 * device is refused at once instead of blocking open() (on a regular file
 * the flag changes nothing). Returns the fd, or -1 with "PATH: cannot
 * open: why" or "PATH: not a regular file" in err. Thread-safe. */
int mfl_file_open_regular(const char *path, struct stat *st, char *err, size_t errlen);

/* Creates `path` and any missing parents with `mode` (like mkdir -p). An
 * existing directory is fine; an existing non-directory is an error.
 * Returns 0 or -1 with the failing component in err. */
int mfl_mkdir_p(const char *path, mode_t mode, char *err, size_t errlen);

/* fsyncs a directory (after creating, renaming or removing entries in it),
 * so the entry itself survives a crash. 0 or -1 with err. */
int mfl_fsync_dir(const char *dir, char *err, size_t errlen);

/* fsyncs the directory containing `path` (its dirname; "." if none). */
int mfl_fsync_parent(const char *path, char *err, size_t errlen);

#endif
