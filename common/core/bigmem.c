/* Transparent huge pages for θ-sized buffers (see bigmem.h). */
#include "core/bigmem.h"

#include <stdint.h>
#include <sys/mman.h>

#define S_HUGE ((uintptr_t)2 << 20)

void mfl_mem_advise_huge(void *p, size_t bytes)
{
#ifdef MADV_HUGEPAGE
    if (!p || bytes < MFL_MEM_HUGE_MIN_BYTES)
        return;
    uintptr_t a = ((uintptr_t)p + S_HUGE - 1) & ~(S_HUGE - 1);
    uintptr_t b = ((uintptr_t)p + bytes) & ~(S_HUGE - 1);
    if (b > a)
        (void)madvise((void *)a, b - a, MADV_HUGEPAGE); /* advice: a refusal changes nothing */
#else
    (void)p;
    (void)bytes;
#endif
}
