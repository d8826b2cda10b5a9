/* error.c: the thread-local error message and the op table. */
#include <stdarg.h>
#include <stdio.h>

#include "internal.h"

static _Thread_local char pn_errbuf[512];

int pn_error(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pn_errbuf, sizeof pn_errbuf, fmt, ap);
    va_end(ap);
    return code;
}

const char *pn_last_error(void) { return pn_errbuf; }

const pn_op_def *const pn_op_table[PN_OP_COUNT] = {
#define PN_OP(e, d) [PN_OP_##e] = &pn_op_##d##_def,
#include "ops.def"
#undef PN_OP
};

const char *pn_op_name(int op) {
    return (op >= 0 && op < PN_OP_COUNT) ? pn_op_table[op]->name : NULL;
}

int pn_op_find(const char *name) {
    for (int op = 0; op < PN_OP_COUNT; op++)
        if (strcmp(pn_op_table[op]->name, name) == 0) return op;
    return -1;
}
