// Debian's libopenblas-dev installs cblas.h (OpenBLAS's, with openblas_set_num_threads)
// through update-alternatives. Note: it declares cblas_sbgemm but 0.3.21 does not export it.
#include <cblas.h>
