#include "nn/blas.h"

/* Declared by OpenBLAS's cblas.h; declared here so this file does not depend
 * on which cblas.h variant is first on the include path. */
void openblas_set_num_threads(int num_threads);

void mfl_blas_set_threads(int n) {
    openblas_set_num_threads(n < 1 ? 1 : n);
}
