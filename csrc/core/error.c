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
    [PN_OP_INPUT] = &pn_op_input_def,
    [PN_OP_DENSE] = &pn_op_dense_def,
    [PN_OP_LINEAR] = &pn_op_linear_def,
    [PN_OP_RELU] = &pn_op_relu_def,
    [PN_OP_SIGMOID] = &pn_op_sigmoid_def,
    [PN_OP_TANH] = &pn_op_tanh_def,
    [PN_OP_SOFTMAX] = &pn_op_softmax_def,
    [PN_OP_LEAKY_RELU] = &pn_op_leaky_relu_def,
    [PN_OP_ELU] = &pn_op_elu_def,
    [PN_OP_SELU] = &pn_op_selu_def,
    [PN_OP_GELU] = &pn_op_gelu_def,
    [PN_OP_SWISH] = &pn_op_swish_def,
    [PN_OP_SOFTPLUS] = &pn_op_softplus_def,
    [PN_OP_CONV2D] = &pn_op_conv2d_def,
    [PN_OP_MAX_POOL2D] = &pn_op_max_pool2d_def,
    [PN_OP_AVG_POOL2D] = &pn_op_avg_pool2d_def,
    [PN_OP_GLOBAL_AVG_POOL2D] = &pn_op_global_avg_pool2d_def,
    [PN_OP_GLOBAL_MAX_POOL2D] = &pn_op_global_max_pool2d_def,
    [PN_OP_ZERO_PAD2D] = &pn_op_zero_pad2d_def,
    [PN_OP_RESHAPE] = &pn_op_reshape_def,
    [PN_OP_BATCH_NORM] = &pn_op_batch_norm_def,
    [PN_OP_DROPOUT] = &pn_op_dropout_def,
    [PN_OP_EMBEDDING] = &pn_op_embedding_def,
    [PN_OP_ADD] = &pn_op_add_def,
    [PN_OP_SUBTRACT] = &pn_op_subtract_def,
    [PN_OP_MULTIPLY] = &pn_op_multiply_def,
    [PN_OP_AVERAGE] = &pn_op_average_def,
    [PN_OP_MAXIMUM] = &pn_op_maximum_def,
    [PN_OP_CONCATENATE] = &pn_op_concatenate_def,
    [PN_OP_LAYER_NORM] = &pn_op_layer_norm_def,
    [PN_OP_ATTENTION] = &pn_op_attention_def,
    [PN_OP_POSITION_EMBEDDING] = &pn_op_position_embedding_def,
    [PN_OP_SIMPLE_RNN] = &pn_op_simple_rnn_def,
    [PN_OP_LSTM] = &pn_op_lstm_def,
    [PN_OP_GRU] = &pn_op_gru_def,
    [PN_OP_SLICE] = &pn_op_slice_def,
    [PN_OP_ATTENTION_SCORES] = &pn_op_attention_scores_def,
};
_Static_assert(PN_OP_COUNT == 37, "add the new op to pn_op_table");

const char *pn_op_name(int op) {
    return (op >= 0 && op < PN_OP_COUNT) ? pn_op_table[op]->name : NULL;
}

int pn_op_find(const char *name) {
    for (int op = 0; op < PN_OP_COUNT; op++)
        if (strcmp(pn_op_table[op]->name, name) == 0) return op;
    return -1;
}
