/* tests/install/blas/main.c: runs blasnet once at batch 1 on ones and
 * checks that the outputs are finite; prints NEEDS_BLAS. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "blasnet.h"

int main(void)
{
    float *x = malloc(blasnet_x_ELEMENTS_PER_ITEM * sizeof *x);
    float *y = malloc(blasnet_proj_ELEMENTS_PER_ITEM * sizeof *y);
    if (!x || !y)
        return 2;
    for (size_t i = 0; i < blasnet_x_ELEMENTS_PER_ITEM; i++)
        x[i] = 1.0f;
    kiln_options o = KILN_OPTIONS_INIT;
    o.num_threads = 1;
    blasnet *m;
    if (blasnet_create(&m, &o) != KILN_OK)
        return 3;
    kiln_status st = blasnet_run(m, 1, x, y);
    if (st != KILN_OK) {
        fprintf(stderr, "blasnet_run: %s\n", blasnet_last_error(m));
        return 4;
    }
    for (size_t i = 0; i < blasnet_proj_ELEMENTS_PER_ITEM; i++)
        if (!isfinite(y[i]))
            return 5;
    blasnet_destroy(m);
    free(x);
    free(y);
    printf("blasnet ran; NEEDS_BLAS %d\n", blasnet_NEEDS_BLAS);
    return 0;
}
