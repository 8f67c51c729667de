/* Reading a whole (bounded) file into memory, for the loaders and config
 * parser. A file bigger than the caller's cap is refused before it is
 * read, so a hostile or mistaken path cannot exhaust memory. */
#ifndef MFL_DATA_FILE_H
#define MFL_DATA_FILE_H

#include <stddef.h>

/* Reads `path` into a malloc'd buffer (caller frees) with a NUL appended
 * (not counted in *len). Returns 0, or -1 with "PATH: reason" in err if it
 * cannot be opened/read or is larger than `max_bytes`. */
int mfl_data_read_file(const char *path, size_t max_bytes, char **buf, size_t *len, char *err,
                       size_t errlen);

/* Like mfl_data_read_file, but transparently gunzips (zlib) when the file
 * starts with the gzip magic; `max_bytes` caps the decompressed size (and
 * so defeats zip bombs). */
int mfl_data_read_file_gz(const char *path, size_t max_bytes, char **buf, size_t *len, char *err,
                          size_t errlen);

#endif
