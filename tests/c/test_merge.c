/*
 * test_merge.c: the merge ops (ops_merge.c) through the public header. The core has one model
 * input, so the branches are dense layers of it: x (C) -> dense_b (C -> D_b) [-> reshape (r, c)]
 * -> merge(branches, or x itself) -> output. Forward against a naive double reference, gradients
 * (input and kernels) against a naive double backward and central finite differences of the MSE
 * loss, the same node twice among the inputs, ties of maximum, bad shapes and axes refused.
 * Prints "N passed, M failed" and exits non-zero on failure.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

/* not NULL: model.c memcpy's the metrics even when there are none */
static const pn_metric no_metrics[1] = {{.kind = PN_METRIC_MSE}};

#define MAXB 4 /* branches */

typedef struct {
    const char *what;
    int op, axis;
    int nb;            /* dense branches */
    int n_in;          /* merge inputs */
    int src[4];        /* per merge input: its branch, or -1 for the model input x */
    int rank;          /* per-sample rank of the branches: 1 (D) or 2 (reshaped to (r, c)) */
    int dims[MAXB][2]; /* per branch: (D, -) or (r, c) */
    int B, C;
    int same_kernels;  /* every branch gets the first branch's kernel (ties everywhere) */
} cfg;

/* per-sample size and shape of merge input j */
static int in_size(const cfg *t, int j) {
    if (t->src[j] < 0) return t->C;
    const int *d = t->dims[t->src[j]];
    return t->rank == 2 ? d[0] * d[1] : d[0];
}
static int in_dim(const cfg *t, int j, int i) {
    if (t->src[j] < 0) return t->C; /* rank 1 only */
    return t->dims[t->src[j]][i];
}
static int branch_size(const cfg *t, int b) {
    return t->rank == 2 ? t->dims[b][0] * t->dims[b][1] : t->dims[b][0];
}

static int out_size(const cfg *t) {
    if (t->op != PN_OP_CONCATENATE) return in_size(t, 0);
    int s = 0;
    for (int j = 0; j < t->n_in; j++) s += in_size(t, j);
    return s;
}

/* concatenate: output position p of a sample comes from position *q of input *j */
static void cat_src(const cfg *t, int p, int *j, int *q) {
    if (t->rank == 1) {
        int k = 0;
        while (p >= in_size(t, k)) p -= in_size(t, k++);
        *j = k, *q = p;
        return;
    }
    int cols = 0;
    if (t->axis == 0) { /* rows stacked: every input has the same number of columns */
        cols = in_dim(t, 0, 1);
        int r = p / cols, cc = p % cols, k = 0;
        while (r >= in_dim(t, k, 0)) r -= in_dim(t, k++, 0);
        *j = k, *q = r * in_dim(t, k, 1) + cc;
    } else { /* columns side by side */
        for (int k = 0; k < t->n_in; k++) cols += in_dim(t, k, 1);
        int r = p / cols, cc = p % cols, k = 0;
        while (cc >= in_dim(t, k, 1)) cc -= in_dim(t, k++, 1);
        *j = k, *q = r * in_dim(t, k, 1) + cc;
    }
}

/* ---- the double reference ------------------------------------------------------------------ */

typedef struct {
    double *x;         /* (B, C) */
    double *k[MAXB];   /* (C, D_b) */
    double *a[MAXB];   /* branch values (B, D_b) */
    double *out, *y;   /* (B, O) */
} ref;

static const double *in_val(const cfg *t, const ref *r, int j) {
    return t->src[j] < 0 ? r->x : r->a[t->src[j]];
}

static double ref_loss(const cfg *t, ref *r) {
    const int B = t->B, C = t->C, O = out_size(t);
    for (int b = 0; b < t->nb; b++) {
        const int D = branch_size(t, b);
        for (int s = 0; s < B; s++)
            for (int d = 0; d < D; d++) {
                double acc = 0;
                for (int c = 0; c < C; c++) acc += r->x[s * C + c] * r->k[b][c * D + d];
                r->a[b][s * D + d] = acc;
            }
    }
    for (int s = 0; s < B; s++)
        for (int p = 0; p < O; p++) {
            double v;
            if (t->op == PN_OP_CONCATENATE) {
                int j, q;
                cat_src(t, p, &j, &q);
                v = in_val(t, r, j)[s * in_size(t, j) + q];
            } else {
                v = in_val(t, r, 0)[s * O + p];
                for (int j = 1; j < t->n_in; j++) {
                    double w = in_val(t, r, j)[s * O + p];
                    switch (t->op) {
                    case PN_OP_ADD:
                    case PN_OP_AVERAGE: v += w; break;
                    case PN_OP_SUBTRACT: v -= w; break;
                    case PN_OP_MULTIPLY: v *= w; break;
                    default: v = w > v ? w : v;
                    }
                }
                if (t->op == PN_OP_AVERAGE) v /= t->n_in;
            }
            r->out[s * O + p] = v;
        }
    double l = 0;
    for (int i = 0; i < B * O; i++) l += (r->out[i] - r->y[i]) * (r->out[i] - r->y[i]);
    return l / (B * O);
}

/* The naive backward of ref_loss (after it): dx (B, C) and dk[b] (C, D_b). */
static void ref_grad(const cfg *t, const ref *r, double *dx, double **dk) {
    const int B = t->B, C = t->C, O = out_size(t);
    double *da[MAXB], *dxin = calloc((size_t)B * C, sizeof(double));
    for (int b = 0; b < t->nb; b++) da[b] = calloc((size_t)B * branch_size(t, b), sizeof(double));
    for (int s = 0; s < B; s++)
        for (int p = 0; p < O; p++) {
            const double g = 2.0 * (r->out[s * O + p] - r->y[s * O + p]) / (B * O);
            if (t->op == PN_OP_CONCATENATE) {
                int j, q;
                cat_src(t, p, &j, &q);
                double *d = t->src[j] < 0 ? dxin : da[t->src[j]];
                d[s * in_size(t, j) + q] += g;
                continue;
            }
            int win = 0;
            for (int j = 1; j < t->n_in; j++)
                if (in_val(t, r, j)[s * O + p] > in_val(t, r, win)[s * O + p]) win = j;
            for (int j = 0; j < t->n_in; j++) {
                double dj;
                switch (t->op) {
                case PN_OP_ADD: dj = g; break;
                case PN_OP_SUBTRACT: dj = j == 0 ? g : -g; break;
                case PN_OP_AVERAGE: dj = g / t->n_in; break;
                case PN_OP_MULTIPLY:
                    dj = g;
                    for (int k = 0; k < t->n_in; k++)
                        if (k != j) dj *= in_val(t, r, k)[s * O + p];
                    break;
                default: dj = j == win ? g : 0.0;
                }
                double *d = t->src[j] < 0 ? dxin : da[t->src[j]];
                d[s * O + p] += dj;
            }
        }
    memcpy(dx, dxin, (size_t)B * C * sizeof(double));
    for (int b = 0; b < t->nb; b++) {
        const int D = branch_size(t, b);
        memset(dk[b], 0, (size_t)C * D * sizeof(double));
        for (int s = 0; s < B; s++)
            for (int c = 0; c < C; c++)
                for (int d = 0; d < D; d++) {
                    dx[s * C + c] += da[b][s * D + d] * r->k[b][c * D + d];
                    dk[b][c * D + d] += r->x[s * C + c] * da[b][s * D + d];
                }
        free(da[b]);
    }
    free(dxin);
}

/* ---- the model ------------------------------------------------------------------------------ */

static pn_model *build(const cfg *t, unsigned seed, int *var) {
    pn_model *m;
    if (pn_model_create(&m)) return NULL;
    int xn, nodes[MAXB], merge, ok = 1;
    int64_t xs[1] = {t->C};
    for (int b = 0; b < t->nb; b++) {
        int64_t ks[2] = {t->C, branch_size(t, b)};
        ok &= pn_model_add_variable(m, 2, ks, 1, &var[b]) == PN_OK;
    }
    ok &= pn_model_alloc(m) == PN_OK;
    for (int b = 0; ok && b < t->nb; b++) {
        int64_t off, size;
        pn_model_variable(m, var[b], &off, &size, NULL, NULL);
        unsigned s = seed;
        for (int64_t i = 0; i < size; i++)
            pn_model_params(m)[off + i] = frand(t->same_kernels ? &s : &seed);
    }
    ok &= pn_model_add_input(m, 1, xs, PN_F32, &xn) == PN_OK;
    for (int b = 0; ok && b < t->nb; b++) {
        ok &= pn_model_add_node(m, PN_OP_DENSE, 1, &xn, 1, &var[b], NULL, NULL, &nodes[b]) ==
              PN_OK;
        if (t->rank == 2) {
            int ia[PN_MAX_ATTRS] = {2, t->dims[b][0], t->dims[b][1]};
            ok &= pn_model_add_node(m, PN_OP_RESHAPE, 1, &nodes[b], 0, NULL, ia, NULL,
                                    &nodes[b]) == PN_OK;
        }
    }
    int ins[4], ia[PN_MAX_ATTRS] = {t->axis};
    for (int j = 0; j < t->n_in; j++) ins[j] = t->src[j] < 0 ? xn : nodes[t->src[j]];
    ok = ok && pn_model_add_node(m, t->op, t->n_in, ins, 0, NULL, ia, NULL, &merge) == PN_OK;
    ok = ok && pn_model_set_output(m, merge) == PN_OK;
    ok = ok && pn_model_compile(m, PN_LOSS_MSE, 0, 0, no_metrics) == PN_OK;
    if (!ok) {
        printf("could not build %s: %s\n", t->what, pn_last_error());
        pn_model_destroy(m);
        return NULL;
    }
    int64_t shape[8];
    int nd = pn_model_output_shape(m, 0, shape);
    int64_t size = 1;
    for (int i = 0; i < nd; i++) size *= shape[i];
    CHECK(size == out_size(t), "%s: output size %lld, expected %d", t->what, (long long)size,
          out_size(t));
    return m;
}

static void run_case(const cfg *t, int fd) {
    int var[MAXB];
    pn_model *m = build(t, 1234u + (unsigned)t->op, var);
    CHECK(m != NULL, "%s: build", t->what);
    if (!m) return;
    const int B = t->B, C = t->C, O = out_size(t);
    unsigned seed = 77u + (unsigned)(t->n_in * 13 + t->axis);
    float *x = malloc(sizeof(float) * B * C), *y = malloc(sizeof(float) * B * O);
    float *out = malloc(sizeof(float) * B * O), *dx = malloc(sizeof(float) * B * C);
    ref r = {.x = malloc(sizeof(double) * B * C), .out = malloc(sizeof(double) * B * O),
             .y = malloc(sizeof(double) * B * O)};
    double *rdx = malloc(sizeof(double) * B * C), *rdk[MAXB];
    for (int i = 0; i < B * C; i++) r.x[i] = x[i] = frand(&seed);
    for (int i = 0; i < B * O; i++) r.y[i] = y[i] = frand(&seed);
    for (int b = 0; b < t->nb; b++) {
        const int D = branch_size(t, b);
        int64_t off;
        pn_model_variable(m, var[b], &off, NULL, NULL, NULL);
        r.k[b] = malloc(sizeof(double) * C * D);
        r.a[b] = malloc(sizeof(double) * B * D);
        rdk[b] = malloc(sizeof(double) * C * D);
        for (int i = 0; i < C * D; i++) r.k[b][i] = pn_model_params(m)[off + i];
    }
    pn_tensor tx = {.ndim = 2, .dims = {B, C}, .dtype = PN_F32, .data = x};
    pn_tensor ty = {.ndim = 2, .dims = {B, O}, .dtype = PN_F32, .data = y};

    /* forward: predict in batches of 3 (a short last batch), against the reference */
    double l0 = ref_loss(t, &r);
    int rc = pn_model_predict(m, &tx, 3, (float *[]){out});
    CHECK(rc == 0, "%s: predict rc %d", t->what, rc);
    double e = rel_err(out, r.out, (int64_t)B * O, 1e-12);
    CHECK(e < 1e-5, "%s: forward error %g", t->what, e);

    /* gradients against the naive backward */
    float loss = 0;
    rc = pn_model_gradients(m, &tx, &ty, &loss, (float *[]){dx});
    CHECK(rc == 0, "%s: gradients rc %d", t->what, rc);
    CHECK(fabs(loss - l0) <= 1e-5 * (1 + fabs(l0)), "%s: loss %g, reference %g", t->what, loss,
          l0);
    ref_grad(t, &r, rdx, rdk);
    e = rel_err(dx, rdx, (int64_t)B * C, 1e-12);
    CHECK(e < 1e-4, "%s: dx error %g", t->what, e);
    for (int b = 0; b < t->nb; b++) {
        int64_t off;
        pn_model_variable(m, var[b], &off, NULL, NULL, NULL);
        e = rel_err(pn_model_grads(m) + off, rdk[b], (int64_t)C * branch_size(t, b), 1e-12);
        CHECK(e < 1e-4, "%s: dkernel %d error %g", t->what, b, e);
    }

    /* and against central differences of the double loss */
    if (fd) {
        const double h = 1e-5;
        double *fdx = malloc(sizeof(double) * B * C);
        for (int i = 0; i < B * C; i++) {
            double v = r.x[i];
            r.x[i] = v + h;
            double lp = ref_loss(t, &r);
            r.x[i] = v - h;
            double lm = ref_loss(t, &r);
            r.x[i] = v;
            fdx[i] = (lp - lm) / (2 * h);
        }
        e = rel_err(dx, fdx, (int64_t)B * C, 1e-12);
        CHECK(e < 1e-3, "%s: dx vs finite differences %g", t->what, e);
        free(fdx);
        for (int b = 0; b < t->nb; b++) {
            const int D = branch_size(t, b);
            double *fdk = malloc(sizeof(double) * C * D);
            for (int i = 0; i < C * D; i++) {
                double v = r.k[b][i];
                r.k[b][i] = v + h;
                double lp = ref_loss(t, &r);
                r.k[b][i] = v - h;
                double lm = ref_loss(t, &r);
                r.k[b][i] = v;
                fdk[i] = (lp - lm) / (2 * h);
            }
            int64_t off;
            pn_model_variable(m, var[b], &off, NULL, NULL, NULL);
            e = rel_err(pn_model_grads(m) + off, fdk, (int64_t)C * D, 1e-12);
            CHECK(e < 1e-3, "%s: dkernel %d vs finite differences %g", t->what, b, e);
            free(fdk);
        }
    }

    for (int b = 0; b < t->nb; b++) free(r.k[b]), free(r.a[b]), free(rdk[b]);
    free(x), free(y), free(out), free(dx), free(r.x), free(r.out), free(r.y), free(rdx);
    pn_model_destroy(m);
}

static const int elementwise_ops[] = {PN_OP_ADD, PN_OP_SUBTRACT, PN_OP_MULTIPLY, PN_OP_AVERAGE,
                                      PN_OP_MAXIMUM};

static void test_elementwise(void) {
    char what[128];
    for (int o = 0; o < 5; o++) {
        const int op = elementwise_ops[o];
        const char *name = pn_op_name(op);
        for (int B = 1; B <= 5; B += 4) {
            /* distinct branches, n = 2, 3, 4 (subtract: 2) */
            for (int n = 2; n <= (op == PN_OP_SUBTRACT ? 2 : 4); n++) {
                snprintf(what, sizeof what, "%s of %d branches, batch %d", name, n, B);
                cfg t = {.what = what, .op = op, .nb = n, .n_in = n, .src = {0, 1, 2, 3},
                         .rank = 1, .dims = {{7}, {7}, {7}, {7}}, .B = B, .C = 5};
                run_case(&t, 1);
            }
            /* rank 2, reshaped branches */
            snprintf(what, sizeof what, "%s of 2 (3, 4) branches, batch %d", name, B);
            cfg t2 = {.what = what, .op = op, .nb = 2, .n_in = 2, .src = {0, 1}, .rank = 2,
                      .dims = {{3, 4}, {3, 4}}, .B = B, .C = 4};
            run_case(&t2, 1);
            /* the same branch twice: [a, a] */
            snprintf(what, sizeof what, "%s(a, a), batch %d", name, B);
            cfg t3 = {.what = what, .op = op, .nb = 1, .n_in = 2, .src = {0, 0}, .rank = 1,
                      .dims = {{6}}, .B = B, .C = 3};
            run_case(&t3, 1);
            /* the model input twice: [x, x] */
            snprintf(what, sizeof what, "%s(x, x), batch %d", name, B);
            cfg t4 = {.what = what, .op = op, .nb = 0, .n_in = 2, .src = {-1, -1}, .rank = 1,
                      .B = B, .C = 6};
            run_case(&t4, 1);
            if (op == PN_OP_SUBTRACT) continue;
            /* a repeat among others: [a, b, a] and [x, a, x, b] */
            snprintf(what, sizeof what, "%s(a, b, a), batch %d", name, B);
            cfg t5 = {.what = what, .op = op, .nb = 2, .n_in = 3, .src = {0, 1, 0}, .rank = 1,
                      .dims = {{5}, {5}}, .B = B, .C = 4};
            run_case(&t5, 1);
            snprintf(what, sizeof what, "%s(x, a, x, b), batch %d", name, B);
            cfg t6 = {.what = what, .op = op, .nb = 2, .n_in = 4, .src = {-1, 0, -1, 1},
                      .rank = 1, .dims = {{4}, {4}}, .B = B, .C = 4};
            run_case(&t6, 1);
        }
        /* large enough for the threaded path (> PN_PAR_MIN elements, a short last block) */
        snprintf(what, sizeof what, "%s of 3 large branches", name);
        int n = op == PN_OP_SUBTRACT ? 2 : 3;
        cfg tl = {.what = what, .op = op, .nb = n, .n_in = n, .src = {0, 1, 2}, .rank = 1,
                  .dims = {{2051}, {2051}, {2051}}, .B = 37, .C = 3};
        run_case(&tl, 0);
        snprintf(what, sizeof what, "%s(a, b, a) large", name);
        cfg tl2 = {.what = what, .op = op, .nb = 2, .n_in = op == PN_OP_SUBTRACT ? 2 : 3,
                   .src = {0, 1, 0}, .rank = 1, .dims = {{2051}, {2051}}, .B = 37, .C = 3};
        run_case(&tl2, 0);
    }
}

static void test_concatenate(void) {
    char what[128];
    for (int B = 1; B <= 4; B += 3) {
        for (int n = 2; n <= 4; n++) {
            snprintf(what, sizeof what, "concatenate of %d rank-1 branches, batch %d", n, B);
            cfg t = {.what = what, .op = PN_OP_CONCATENATE, .nb = n, .n_in = n,
                     .src = {0, 1, 2, 3}, .rank = 1, .dims = {{3}, {5}, {1}, {4}}, .B = B,
                     .C = 4};
            run_case(&t, 1);
            for (int axis = 0; axis <= 1; axis++) {
                /* (r_b, 3) stacked on axis 0, or (2, c_b) side by side on axis 1 */
                cfg t2 = {.what = what, .op = PN_OP_CONCATENATE, .axis = axis, .nb = n,
                          .n_in = n, .src = {0, 1, 2, 3}, .rank = 2, .B = B, .C = 3};
                const int var[4] = {2, 1, 4, 3};
                for (int b = 0; b < n; b++) {
                    t2.dims[b][axis] = var[b];
                    t2.dims[b][1 - axis] = axis == 0 ? 3 : 2;
                }
                snprintf(what, sizeof what, "concatenate of %d rank-2 branches on axis %d, "
                         "batch %d", n, axis, B);
                run_case(&t2, 1);
            }
        }
        snprintf(what, sizeof what, "concatenate(a, a), batch %d", B);
        cfg t3 = {.what = what, .op = PN_OP_CONCATENATE, .nb = 1, .n_in = 2, .src = {0, 0},
                  .rank = 1, .dims = {{5}}, .B = B, .C = 3};
        run_case(&t3, 1);
        for (int axis = 0; axis <= 1; axis++) {
            snprintf(what, sizeof what, "concatenate(a, b, a) rank 2 on axis %d, batch %d", axis,
                     B);
            cfg t4 = {.what = what, .op = PN_OP_CONCATENATE, .axis = axis, .nb = 2, .n_in = 3,
                      .src = {0, 1, 0}, .rank = 2, .dims = {{2, 3}, {2, 3}}, .B = B, .C = 3};
            if (axis == 0) t4.dims[1][0] = 4;
            else t4.dims[1][1] = 1;
            run_case(&t4, 1);
        }
        snprintf(what, sizeof what, "concatenate(x, a, x), batch %d", B);
        cfg t5 = {.what = what, .op = PN_OP_CONCATENATE, .nb = 1, .n_in = 3, .src = {-1, 0, -1},
                  .rank = 1, .dims = {{2}}, .B = B, .C = 3};
        run_case(&t5, 1);
    }
    cfg tl = {.what = "concatenate large, axis 1", .op = PN_OP_CONCATENATE, .axis = 1, .nb = 3,
              .n_in = 4, .src = {0, 1, 2, 0}, .rank = 2,
              .dims = {{33, 31}, {33, 64}, {33, 17}}, .B = 23, .C = 2};
    run_case(&tl, 0);
    cfg tl0 = {.what = "concatenate large, axis 0", .op = PN_OP_CONCATENATE, .axis = 0, .nb = 2,
               .n_in = 3, .src = {1, 0, 1}, .rank = 2, .dims = {{40, 50}, {33, 50}}, .B = 29,
               .C = 2};
    run_case(&tl0, 0);
}

/* maximum: ties go to the first input. Two branches with one kernel are equal everywhere, so the
 * first kernel gets the whole gradient and the second none. */
static void test_maximum_ties(void) {
    for (int n = 2; n <= 3; n++) {
        cfg t = {.what = "maximum ties", .op = PN_OP_MAXIMUM, .nb = n, .n_in = n,
                 .src = {0, 1, 2}, .rank = 1, .dims = {{5}, {5}, {5}}, .B = 3, .C = 4,
                 .same_kernels = 1};
        int var[MAXB];
        pn_model *m = build(&t, 99u, var);
        CHECK(m != NULL, "maximum ties: build");
        if (!m) return;
        unsigned seed = 5;
        float x[12], y[15], dx[12], loss;
        for (int i = 0; i < 12; i++) x[i] = frand(&seed);
        for (int i = 0; i < 15; i++) y[i] = frand(&seed);
        pn_tensor tx = {.ndim = 2, .dims = {3, 4}, .dtype = PN_F32, .data = x};
        pn_tensor ty = {.ndim = 2, .dims = {3, 5}, .dtype = PN_F32, .data = y};
        CHECK(pn_model_gradients(m, &tx, &ty, &loss, (float *[]){dx}) == 0,
              "maximum ties: gradients");
        double g0 = 0, g1 = 0;
        int64_t off;
        pn_model_variable(m, var[0], &off, NULL, NULL, NULL);
        for (int i = 0; i < 20; i++) g0 += fabs(pn_model_grads(m)[off + i]);
        for (int b = 1; b < n; b++) {
            pn_model_variable(m, var[b], &off, NULL, NULL, NULL);
            for (int i = 0; i < 20; i++) g1 += fabs(pn_model_grads(m)[off + i]);
        }
        CHECK(g0 > 0 && g1 == 0, "maximum ties (%d inputs): first kernel's gradient %g, the "
              "others' %g", n, g0, g1);
        pn_model_destroy(m);
    }
}

/* ---- bad inputs are refused ------------------------------------------------------------------ */

static void refused(pn_model *m, int op, int n_in, const int *ins, int n_var, const int *vars,
                    int axis, const char *must, const char *what) {
    int ia[PN_MAX_ATTRS] = {axis}, node = -1;
    int rc = pn_model_add_node(m, op, n_in, ins, n_var, vars, ia, NULL, &node);
    CHECK(rc < 0, "%s: accepted", what);
    CHECK(rc >= 0 || strstr(pn_last_error(), must) != NULL, "%s: message lacks '%s'", what, must);
}

static void test_refused(void) {
    pn_model *m;
    pn_model_create(&m);
    int vk, vk2, xn, a4, b5, r22, r23, r32, r123;
    int64_t ks[2] = {3, 4}, ks2[2] = {3, 5}, xs[1] = {3};
    pn_model_add_variable(m, 2, ks, 1, &vk);
    pn_model_add_variable(m, 2, ks2, 1, &vk2);
    pn_model_alloc(m);
    pn_model_add_input(m, 1, xs, PN_F32, &xn);
    pn_model_add_node(m, PN_OP_DENSE, 1, &xn, 1, &vk, NULL, NULL, &a4);   /* (4) */
    pn_model_add_node(m, PN_OP_DENSE, 1, &xn, 1, &vk2, NULL, NULL, &b5);  /* (5) */
    int ia22[PN_MAX_ATTRS] = {2, 2, 2}, ia23[PN_MAX_ATTRS] = {2, 2, 3}, ia32[PN_MAX_ATTRS] = {2, 3, 2}, ia123[PN_MAX_ATTRS] = {3, 1, 2, 2};
    int d6;
    pn_model_add_node(m, PN_OP_RESHAPE, 1, &a4, 0, NULL, ia22, NULL, &r22);   /* (2, 2) */
    pn_model_add_node(m, PN_OP_RESHAPE, 1, &a4, 0, NULL, ia123, NULL, &r123); /* (1, 2, 2) */
    /* (2, 3) and (3, 2) from x concatenated with itself: (6) */
    int xx[2] = {xn, xn};
    CHECK(pn_model_add_node(m, PN_OP_CONCATENATE, 2, xx, 0, NULL, NULL, NULL, &d6) == 0,
          "concatenate(x, x)");
    pn_model_add_node(m, PN_OP_RESHAPE, 1, &d6, 0, NULL, ia23, NULL, &r23);
    pn_model_add_node(m, PN_OP_RESHAPE, 1, &d6, 0, NULL, ia32, NULL, &r32);

    const int ops[6] = {PN_OP_ADD, PN_OP_SUBTRACT, PN_OP_MULTIPLY, PN_OP_AVERAGE, PN_OP_MAXIMUM,
                        PN_OP_CONCATENATE};
    for (int o = 0; o < 6; o++) {
        const int op = ops[o];
        const char *name = pn_op_name(op);
        int one[1] = {a4}, five[5] = {a4, a4, a4, a4, a4}, aa[2] = {a4, a4};
        refused(m, op, 1, one, 0, NULL, 0, name, "one input");
        refused(m, op, 5, five, 0, NULL, 0, "", "five inputs");
        refused(m, op, 2, aa, 1, &vk, 0, name, "a variable");
        if (op == PN_OP_CONCATENATE) continue;
        int ab[2] = {a4, b5}, ar[2] = {a4, r22}, rr[2] = {r23, r32};
        refused(m, op, 2, ab, 0, NULL, 0, "(4)", "shapes (4), (5)");
        refused(m, op, 2, ab, 0, NULL, 0, "(5)", "shapes (4), (5)");
        refused(m, op, 2, ab, 0, NULL, 0, name, "shapes (4), (5)");
        refused(m, op, 2, ar, 0, NULL, 0, "(2, 2)", "shapes (4), (2, 2)");
        refused(m, op, 2, rr, 0, NULL, 0, "(3, 2)", "shapes (2, 3), (3, 2)");
        if (op == PN_OP_SUBTRACT) {
            int aaa[3] = {a4, a4, a4};
            refused(m, op, 3, aaa, 0, NULL, 0, "exactly 2", "subtract of 3");
        } else {
            int aab[3] = {a4, a4, b5};
            refused(m, op, 3, aab, 0, NULL, 0, "input 2", "third input (5)");
        }
    }
    /* concatenate: axis outside the rank, rank mismatch, mismatch off the axis */
    int ab[2] = {a4, b5}, ar[2] = {r22, r123}, rr[2] = {r23, r32}, r2[2] = {r22, r23};
    refused(m, PN_OP_CONCATENATE, 2, ab, 0, NULL, 1, "axis 1", "axis 1 of rank 1");
    refused(m, PN_OP_CONCATENATE, 2, ab, 0, NULL, -1, "axis -1", "axis -1");
    refused(m, PN_OP_CONCATENATE, 2, rr, 0, NULL, 2, "axis 2", "axis 2 of rank 2");
    refused(m, PN_OP_CONCATENATE, 2, ar, 0, NULL, 0, "(1, 2, 2)", "rank 2 and 3");
    refused(m, PN_OP_CONCATENATE, 2, rr, 0, NULL, 0, "(3, 2)", "(2, 3), (3, 2) on axis 0");
    refused(m, PN_OP_CONCATENATE, 2, rr, 0, NULL, 1, "(2, 3)", "(2, 3), (3, 2) on axis 1");
    refused(m, PN_OP_CONCATENATE, 2, r2, 0, NULL, 0, "axis 0", "(2, 2), (2, 3) on axis 0");
    /* ... and what fits is accepted: (2, 2) + (2, 3) on axis 1 -> (2, 5) */
    int node;
    int ia1[PN_MAX_ATTRS] = {1};
    CHECK(pn_model_add_node(m, PN_OP_CONCATENATE, 2, r2, 0, NULL, ia1, NULL, &node) == 0,
          "(2, 2), (2, 3) on axis 1");
    int64_t shape[8];
    CHECK(pn_model_node_shape(m, node, shape) == 2 && shape[0] == 2 && shape[1] == 5,
          "(2, 2), (2, 3) on axis 1 gives (2, 5)");
    pn_model_destroy(m);

    /* int32 inputs */
    pn_model_create(&m);
    pn_model_alloc(m);
    pn_model_add_input(m, 1, xs, PN_I32, &xn);
    int xx2[2] = {xn, xn};
    for (int o = 0; o < 6; o++) {
        int rc = pn_model_add_node(m, ops[o], 2, xx2, 0, NULL, NULL, NULL, &node);
        CHECK(rc == PN_ETYPE, "%s of int32: rc %d", pn_op_name(ops[o]), rc);
    }
    pn_model_destroy(m);
}

static void test_names(void) {
    const char *names[6] = {"add", "subtract", "multiply", "average", "maximum", "concatenate"};
    const int ops[6] = {PN_OP_ADD, PN_OP_SUBTRACT, PN_OP_MULTIPLY, PN_OP_AVERAGE, PN_OP_MAXIMUM,
                        PN_OP_CONCATENATE};
    for (int i = 0; i < 6; i++) {
        CHECK(pn_op_find(names[i]) == ops[i], "pn_op_find(%s)", names[i]);
        CHECK(pn_op_name(ops[i]) && strcmp(pn_op_name(ops[i]), names[i]) == 0, "pn_op_name(%d)",
              ops[i]);
    }
}

int main(void) {
    pn_set_num_threads(4);
    test_names();
    test_elementwise();
    test_concatenate();
    test_maximum_ties();
    test_refused();
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
