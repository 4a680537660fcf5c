#include "neurec/nr_names.h"

#include "neurec/nr_kernels.h"
#include "neurec/nr_optim.h"
#include "neurec/nr_plan.h"
#include "neurec/nr_status.h"

/* Designated initialisers: a reordered enum still names each value right; the
 * assertions catch a value added without its name (the last value must be
 * COUNT - 1). */
_Static_assert(NR_OP_AVERAGE + 1 == NR_OP_COUNT, "nr_op_names: a new op needs its name");
_Static_assert(NR_ACT_SOFTMAX + 1 == NR_ACT_COUNT, "nr_act_names: a new activation needs its name");
_Static_assert(NR_LOSS_MAE + 1 == NR_LOSS_COUNT, "nr_loss_names: a new loss needs its name");
_Static_assert(NR_OPTIM_RMSPROP + 1 == NR_OPTIM_COUNT,
               "nr_optim_names: a new optimizer needs its name");
_Static_assert(NR_ABORTED + 1 == NR_STATUS_COUNT, "nr_status_str: a new status needs its name");

const char *const nr_op_names[NR_OP_COUNT] = {
    [NR_OP_INPUT] = "input",     [NR_OP_EMBEDDING] = "embedding",
    [NR_OP_DENSE] = "dense",     [NR_OP_ACT] = "act",
    [NR_OP_DOT] = "dot",         [NR_OP_CONCAT] = "concat",
    [NR_OP_ADD] = "add",         [NR_OP_MUL] = "mul",
    [NR_OP_DROPOUT] = "dropout", [NR_OP_ALIAS] = "alias",
    [NR_OP_SUB] = "sub",         [NR_OP_AVERAGE] = "average",
};

const char *const nr_act_names[NR_ACT_COUNT] = {
    [NR_ACT_LINEAR] = "linear", [NR_ACT_RELU] = "relu",       [NR_ACT_SIGMOID] = "sigmoid",
    [NR_ACT_TANH] = "tanh",     [NR_ACT_SOFTMAX] = "softmax",
};

const char *const nr_loss_names[NR_LOSS_COUNT] = {
    [NR_LOSS_BCE] = "bce",
    [NR_LOSS_BCE_LOGITS] = "bce_logits",
    [NR_LOSS_MSE] = "mse",
    [NR_LOSS_MAE] = "mae",
};

const char *const nr_optim_names[NR_OPTIM_COUNT] = {
    [NR_OPTIM_SGD] = "sgd",
    [NR_OPTIM_ADAM] = "adam",
    [NR_OPTIM_ADAGRAD] = "adagrad",
    [NR_OPTIM_RMSPROP] = "rmsprop",
};
