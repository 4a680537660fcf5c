/*
 * nr_names.h: the names of the C core's enum values, the one declaration of
 * the ABI between Python and C.
 *
 * Each table maps an enum value to its name ("dense", "relu", "bce_logits",
 * "adam", "index out of range" for statuses: nr_status_str). The bindings
 * export them as dicts of name -> value (neurec._core.OPS, ACTIVATIONS,
 * LOSSES, OPTIMIZERS, STATUSES) and Python reads its codes from there, never
 * writing a value by hand. A compile-time check ties each table's length to
 * its enum's count (as ggml's GGML_OP_NAME), so adding an enum value without
 * its name fails to build. Tables are static and read-only; thread-safe.
 */
#ifndef NR_NAMES_H
#define NR_NAMES_H

#define NR_OP_COUNT 12       /* enum nr_op_kind: NR_OP_INPUT .. NR_OP_AVERAGE */
#define NR_ACT_COUNT 5       /* enum nr_act: NR_ACT_LINEAR .. NR_ACT_SOFTMAX */
#define NR_LOSS_COUNT 4      /* enum nr_loss: NR_LOSS_BCE .. NR_LOSS_MAE */
#define NR_OPTIM_COUNT 4     /* enum nr_optim_kind: NR_OPTIM_SGD .. NR_OPTIM_RMSPROP */
#define NR_STATUS_COUNT 7    /* enum nr_status: NR_OK .. NR_ABORTED */

extern const char *const nr_op_names[NR_OP_COUNT];
extern const char *const nr_act_names[NR_ACT_COUNT];
extern const char *const nr_loss_names[NR_LOSS_COUNT];
extern const char *const nr_optim_names[NR_OPTIM_COUNT];
/* statuses are named by nr_status_str (nr_status.h) */

#endif /* NR_NAMES_H */
