/* tests/fuzz/fuzz_ir_parse.c: libFuzzer target for the IR text parser.
 *
 * Build: configure with -DKILN_FUZZ=ON and clang (tests/CMakeLists.txt
 * registers it as fuzz_ir_parse, linked with kiln_ir). For coverage-guided
 * fuzzing kiln_ir itself should be compiled with -fsanitize=fuzzer-no-link
 * (plus address,undefined), e.g.
 *     CC=clang-19 cmake -S . -B build-fuzz -DKILN_FUZZ=ON -DKILN_SANITIZE_ADDRESS=ON \
 *         -DCMAKE_C_FLAGS=-fsanitize=fuzzer-no-link
 *     ./build-fuzz/tests/fuzz_ir_parse -max_len=4096 corpus/
 *
 * For any input: kiln_ir_parse returns a status and never crashes, hangs or
 * leaks; on failure *out is NULL and at least one error was reported. When it
 * parses: the graph verifies (unless it has no outputs, which the text allows
 * and the verifier does not), the DOT writer accepts it, and
 * print(parse(print(g))) is byte-identical to print(g). A broken property
 * aborts (this is a fuzz target; library code never aborts). */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/graph.h"

/* The input is parsed as if read from a file in the current directory, so
 * weights paths are stored as written and print back unchanged. */
#define FUZZ_FILE "fuzz.kir"

static char *print_graph(const kiln_graph *g, size_t *len)
{
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);
    if (f == NULL)
        abort();
    kiln_status st = kiln_ir_print(g, f, NULL);
    fclose(f);
    if (st != KILN_OK) {
        fprintf(stderr, "print of a parsed graph failed: %d\n", (int)st);
        abort();
    }
    return buf;
}

static void check_dot(const kiln_graph *g)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (f == NULL)
        abort();
    if (kiln_ir_print_dot(g, f) != KILN_OK)
        abort();
    fclose(f);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kiln_diag d;
    kiln_diag_init(&d);
    kiln_graph *g = (kiln_graph *)&d; /* the parser must set it */
    kiln_status st = kiln_ir_parse((const char *)data, size, FUZZ_FILE, &g, &d);
    if (st != KILN_OK) {
        if (g != NULL || st != KILN_ERR_PARSE || d.errors == 0)
            abort();
        kiln_diag_release(&d);
        return 0;
    }
    if (g == NULL)
        abort();

    if (g->n_outputs > 0) {
        kiln_diag vd;
        kiln_diag_init(&vd);
        if (kiln_ir_verify(g, &vd) != KILN_OK) {
            fprintf(stderr, "a parsed graph does not verify:\n");
            kiln_diag_print(&vd, stderr);
            abort();
        }
        kiln_diag_release(&vd);
    }
    check_dot(g);

    size_t len1 = 0, len2 = 0;
    char *t1 = print_graph(g, &len1);
    kiln_diag d2;
    kiln_diag_init(&d2);
    kiln_graph *g2 = NULL;
    if (kiln_ir_parse(t1, len1, FUZZ_FILE, &g2, &d2) != KILN_OK) {
        fprintf(stderr, "the printed text does not parse:\n%s\n", t1);
        kiln_diag_print(&d2, stderr);
        abort();
    }
    char *t2 = print_graph(g2, &len2);
    if (len1 != len2 || memcmp(t1, t2, len1) != 0) {
        fprintf(stderr, "round trip differs:\n--- first\n%s--- second\n%s", t1, t2);
        abort();
    }
    free(t2);
    free(t1);
    kiln_graph_destroy(g2);
    kiln_diag_release(&d2);
    kiln_graph_destroy(g);
    kiln_diag_release(&d);
    return 0;
}
