/* Thin wrapper over the BLAS thread pool, so daemons that already run one
 * worker per core can stop OpenBLAS from spawning its own threads on top
 * (the deployment target has 2 cores). */
#ifndef MFL_NN_BLAS_H
#define MFL_NN_BLAS_H

/* Sets the number of BLAS worker threads (n >= 1; 1 = run in the caller). */
void mfl_blas_set_threads(int n);

#endif
