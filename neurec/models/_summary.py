"""``Model.summary()`` in Keras 3's table format."""
import textwrap
from typing import List

from neurec.layers.base import format_shape


def _fmt_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            break
        n /= 1024.0
    return f"{n:.2f} {unit}"


def summary_text(model, line_length=None) -> str:
    connected = len(model.inputs) > 1 or any(len(n.inputs) > 1 for n in model._nodes_in_order)
    widths = [29, 26, 13, 22] if connected else [36, 28, 13]
    if line_length:
        scale = line_length / (sum(widths) + len(widths) + 1)
        widths = [max(8, int(w * scale)) for w in widths]
    heads = ["Layer (type)", "Output Shape", "Param #", "Connected to"][:len(widths)]
    rows: List[List[str]] = []
    for layer in model.layers:
        nodes = [n for n in model._nodes_in_order if n.layer is layer]
        shape = format_shape(layer.output.shape) if hasattr(layer, "output") and not nodes else \
            format_shape(nodes[0].outputs[0].shape) if nodes else ""
        conn = "-"
        if nodes:
            conn = ", ".join(f"{t.node.layer.name}[{t.node.index}][{t.index}]" for t in nodes[0].inputs)
        cells = [f"{layer.name} ({type(layer).__name__})", shape, f"{layer.count_params():,}", conn]
        rows.append(cells[:len(widths)])

    def line(l, m, r, fill):
        return l + m.join(fill * w for w in widths) + r

    def cells_line(cells, align_right=(2,)):
        wrapped = [textwrap.wrap(c, w - 2) or [""] for c, w in zip(cells, widths)]
        out = []
        for k in range(max(len(x) for x in wrapped)):
            parts = []
            for j, (wr, w) in enumerate(zip(wrapped, widths)):
                s = wr[k] if k < len(wr) else ""
                parts.append(" " + (s.rjust(w - 2) if j in align_right else s.ljust(w - 2)) + " ")
            out.append("│" + "│".join(parts) + "│")
        return out

    lines = [f'Model: "{model.name}"', line("┏", "┳", "┓", "━")]
    head = []
    for j, (h, w) in enumerate(zip(heads, widths)):
        head.append(" " + (h.rjust(w - 2) if j == 2 else h.ljust(w - 2)) + " ")
    lines.append("┃" + "┃".join(head) + "┃")
    lines.append(line("┡", "╇", "┩", "━"))
    for k, cells in enumerate(rows):
        lines.extend(cells_line(cells))
        lines.append(line("├", "┼", "┤", "─") if k < len(rows) - 1 else line("└", "┴", "┘", "─"))
    total = model.count_params()
    trainable = sum(w.size for w in model.trainable_weights)
    lines.append(f" Total params: {total:,} ({_fmt_bytes(total * 4)})")
    lines.append(f" Trainable params: {trainable:,} ({_fmt_bytes(trainable * 4)})")
    lines.append(f" Non-trainable params: {total - trainable:,} ({_fmt_bytes((total - trainable) * 4)})")
    opt = model.optimizer
    if opt is not None and opt.built and model.weights:
        # the slots (float32), not the step counts (int64)
        n_opt = sum(v.size for v in opt.variables()[1:] if v.dtype.kind == "f")
        lines.append(f" Optimizer params: {n_opt:,} ({_fmt_bytes(n_opt * 4)})")
    return "\n".join(lines)
