/* ir/dot.c: the graph as Graphviz DOT, for looking at (`kiln dump --format
 * dot | dot -Tsvg`). One box per node (op, layer, result type), model inputs
 * and outputs as house shapes, parameters as small grey notes with dashed
 * edges; edges follow the operands. The members of a fusion group (after
 * the fuse pass: kiln_node.group) sit in one cluster, a dashed frame
 * labelled with the group and its layers: what runs as one kernel. Not read
 * back by anything. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "graph.h"

/* Text inside a DOT double-quoted label: quotes and backslashes escaped, a
 * newline becomes a line break, other control bytes are shown as \xHH. */
static void put_label_text(FILE *out, const char *s)
{
    if (s == NULL)
        return;
    for (const unsigned char *c = (const unsigned char *)s; *c != 0; c++) {
        if (*c == '"' || *c == '\\')
            fprintf(out, "\\%c", *c);
        else if (*c == '\n')
            fputs("\\n", out);
        else if (*c < 0x20 || *c == 0x7f)
            fprintf(out, "\\\\x%02x", *c);
        else
            fputc(*c, out);
    }
}

static void put_type(FILE *out, const kiln_graph *g, const kiln_type *t)
{
    char buf[320];
    put_label_text(out, kiln_type_format(t, g->batch_name, buf, sizeof buf));
}

/* The DOT id of whatever produces value v. */
static void put_source(FILE *out, const kiln_graph *g, kiln_id v)
{
    if (v < g->n_values && g->values[v].kind == KILN_VALUE_NODE && g->values[v].producer < g->n_nodes)
        fprintf(out, "n%" PRIu32, g->values[v].producer);
    else
        fprintf(out, "v%" PRIu32, v);
}

/* Opens the cluster of the fusion group that starts at node `first`:
 * "group G: layer+layer+..." (consecutive members with the same layer, such
 * as an `activation:`, named once). */
static void put_cluster_head(FILE *out, const kiln_graph *g, size_t first)
{
    uint32_t group = g->nodes[first].group;
    fprintf(out, "  subgraph cluster_g%" PRIu32 " {\n    style=dashed; color=\"#3d85c6\"; fontsize=9; label=\"group %" PRIu32 ":",
            group, group);
    const char *prev = NULL;
    size_t members = 0;
    for (size_t k = first; k < g->n_nodes && g->nodes[k].group == group; k++) {
        const char *name = g->nodes[k].layer;
        if (name == NULL && g->nodes[k].output < g->n_values)
            name = g->values[g->nodes[k].output].name;
        if (name == NULL || (prev != NULL && strcmp(prev, name) == 0))
            continue;
        fputs(members++ ? "+" : " ", out);
        put_label_text(out, name);
        prev = name;
    }
    fputs("\";\n", out);
}

kiln_status kiln_ir_print_dot(const kiln_graph *g, FILE *out)
{
    if (g == NULL || out == NULL)
        return KILN_ERR_INVALID_ARGUMENT;
    kiln_status st = KILN_OK;

    fputs("digraph \"", out);
    put_label_text(out, g->name);
    fputs("\" {\n", out);
    fputs("  rankdir=TB;\n", out);
    fputs("  node [fontname=\"Helvetica\", fontsize=10];\n", out);
    fputs("  edge [fontname=\"Helvetica\", fontsize=8, color=\"#555555\"];\n", out);

    /* Inputs and params: one DOT node per value. A value id that is out of
     * range (a broken graph) still gets a node so every edge has an end. */
    for (size_t i = 0; i < g->n_values; i++) {
        const kiln_value *v = &g->values[i];
        if (v->kind == KILN_VALUE_INPUT) {
            fprintf(out, "  v%zu [shape=invhouse, style=filled, fillcolor=\"#d9ead3\", label=\"", i);
        } else if (v->kind == KILN_VALUE_PARAM) {
            fprintf(out, "  v%zu [shape=note, style=filled, fillcolor=\"#eeeeee\", fontsize=8, label=\"", i);
        } else {
            continue;
        }
        put_label_text(out, v->name);
        fputs("\\n", out);
        put_type(out, g, &v->type);
        fputs("\"];\n", out);
    }

    uint32_t open_group = 0; /* the cluster being written, 0: none */
    for (size_t i = 0; i < g->n_nodes; i++) {
        const kiln_node *n = &g->nodes[i];
        if (n->group != open_group) {
            if (open_group != 0)
                fputs("  }\n", out);
            open_group = n->group;
            if (open_group != 0)
                put_cluster_head(out, g, i);
        }
        fprintf(out, "  n%zu [shape=box, style=rounded, label=\"", i);
        put_label_text(out, kiln_op_name(n->op));
        fputs("\\n", out);
        put_label_text(out, n->layer);
        if (n->output < g->n_values) {
            const kiln_value *v = &g->values[n->output];
            if (n->layer == NULL || v->name == NULL || strcmp(n->layer, v->name) != 0) {
                fputs("\\n%", out);
                put_label_text(out, v->name);
            }
            fputs("\\n", out);
            put_type(out, g, &v->type);
        } else {
            st = KILN_ERR_INVALID_ARGUMENT;
        }
        if (n->precision != KILN_PREC_DEFAULT) {
            fputs("\\nprecision ", out);
            put_label_text(out, kiln_precision_name(n->precision));
        }
        fputs("\"];\n", out);
        for (uint32_t j = 0; j < n->n_inputs; j++) {
            kiln_id v = n->inputs[j];
            if (v >= g->n_values) {
                st = KILN_ERR_INVALID_ARGUMENT;
                continue;
            }
            fputs("  ", out);
            put_source(out, g, v);
            fprintf(out, " -> n%zu", i);
            if (g->values[v].kind == KILN_VALUE_PARAM)
                fputs(" [style=dashed, arrowsize=0.5]", out);
            fputs(";\n", out);
        }
    }

    if (open_group != 0)
        fputs("  }\n", out);

    for (size_t i = 0; i < g->n_outputs; i++) {
        kiln_id v = g->outputs[i];
        if (v >= g->n_values) {
            st = KILN_ERR_INVALID_ARGUMENT;
            continue;
        }
        fprintf(out, "  out%zu [shape=house, style=filled, fillcolor=\"#fce5cd\", label=\"", i);
        put_label_text(out, g->values[v].name);
        fputs("\"];\n  ", out);
        put_source(out, g, v);
        fprintf(out, " -> out%zu;\n", i);
    }
    fputs("}\n", out);
    if (fflush(out) != 0 || ferror(out))
        return KILN_ERR_IO;
    return st;
}
