/* Large buffers (θ-sized: tens of MiB and up) and the kernel's page faults.
 *
 * A buffer that big comes from mmap, and each 4 KiB page costs a fault the
 * first time it is written (and again after it is given back with
 * MADV_DONTNEED). On the 2-core VM of the benchmarks a fault costs ≈ 15 µs
 * of CPU: 80 MiB of fresh int64 sums took ≈ 300 ms to touch, more than the
 * round's folding of four updates into them. Backed by transparent huge
 * pages (2 MiB) the same buffer takes one fault per 2 MiB: ≈ 6 ms
 * (docs/PERFORMANCE.md, "Encoded updates folded where they lie").
 *
 *   float *delta = malloc(n * sizeof(float));
 *   mfl_mem_advise_huge(delta, n * sizeof(float)); // before its first write
 *
 * Advice only: contents, sizes and every result stay the same; a no-op
 * for buffers below MFL_MEM_HUGE_MIN_BYTES, where the kernel has no
 * transparent huge pages, or when it declines. */
#ifndef MFL_CORE_BIGMEM_H
#define MFL_CORE_BIGMEM_H

#include <stddef.h>

/* Buffers smaller than this are left alone (4 MiB: below it the heap
 * reuses freed chunks and rarely faults, and a huge page's rounding would
 * be a large share). */
#define MFL_MEM_HUGE_MIN_BYTES ((size_t)4 << 20)

/* Asks for transparent huge pages on the 2 MiB-aligned part of
 * [p, p + bytes) (madvise MADV_HUGEPAGE); the unaligned ends keep small
 * pages. Call it before the buffer's first write. Thread-safe. */
void mfl_mem_advise_huge(void *p, size_t bytes);

#endif
