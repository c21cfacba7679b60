/* tests/codegen/npy_compare.c: `npy_compare REF.npy GOT.npy [TOLERANCE]`:
 * exits 0 when both arrays have the same shape and every element is within
 * the tolerance (default 1e-4) in the measure of docs/codegen.md:
 * |got - ref| <= tol * max(|ref|, 0.01 * max|REF|). Prints the largest
 * error. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "npy.h"

int main(int argc, char **argv)
{
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: npy_compare REF.npy GOT.npy [TOLERANCE]\n");
        return 2;
    }
    double tol = argc == 4 ? atof(argv[3]) : 1e-4;
    kiln_npy a, b;
    char err[512];
    if (kiln_npy_read(argv[1], &a, err, sizeof err) != KILN_OK) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    if (kiln_npy_read(argv[2], &b, err, sizeof err) != KILN_OK) {
        fprintf(stderr, "%s\n", err);
        kiln_npy_free(&a);
        return 2;
    }
    int rc = 0;
    bool same = a.rank == b.rank && a.count == b.count;
    for (int i = 0; same && i < a.rank; i++)
        same = a.dims[i] == b.dims[i];
    if (!same) {
        fprintf(stderr, "%s and %s have different shapes\n", argv[1], argv[2]);
        rc = 1;
    } else {
        double maxref = 0.0, worst = 0.0;
        size_t at = 0;
        for (size_t i = 0; i < a.count; i++)
            if (isfinite(a.data[i]) && fabs(a.data[i]) > maxref)
                maxref = fabs(a.data[i]);
        for (size_t i = 0; i < a.count; i++) {
            double r = a.data[i], g = b.data[i], e;
            if (isnan(r) || isnan(g) || isinf(r) || isinf(g))
                e = (isnan(r) && isnan(g)) || r == g ? 0.0 : INFINITY;
            else
                e = fabs(g - r) / fmax(fmax(fabs(r), 0.01 * maxref), 1e-30);
            if (e > worst)
                worst = e, at = i;
        }
        printf("%s: %zu elements, largest relative error %.3g (element %zu)\n", argv[2], a.count, worst, at);
        if (worst > tol) {
            fprintf(stderr, "%s: element %zu is %.9g, the reference %.9g: error %.3g > %g\n", argv[2], at,
                    (double)b.data[at], (double)a.data[at], worst, tol);
            rc = 1;
        }
    }
    kiln_npy_free(&a);
    kiln_npy_free(&b);
    return rc;
}
