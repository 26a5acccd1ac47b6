"""Pictures of what a network does: training curves, filters, feature maps, predictions,
the confusion matrix, and benchmark timings. Each function saves one PNG and returns its path.

matplotlib is an optional extra (`pip install matplotlib` or `pip install "minicnn[viz]"`):
importing this module never needs it, drawing a picture does. The figures are drawn on
matplotlib's Agg canvas directly (matplotlib.figure.Figure, not pyplot), so they work with
no screen and never change the pyplot backend or the figures of a notebook you are in.

Every array argument may be a NumPy or a CuPy array.
"""

import math

import numpy as np

from .backend import to_numpy

INSTALL_HINT = 'pip install matplotlib  (or: pip install "minicnn[viz]")'
WRONG = "#c62828"   # red: a wrong prediction
RIGHT = "#2e7d32"   # green: a right one


def _figure(figsize):
    """A matplotlib Figure on the Agg (file-only) canvas, or an ImportError that says what to install."""
    try:
        import matplotlib  # noqa: F401  (first: a missing matplotlib shows even if submodules were loaded)
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(f"minicnn.viz draws with matplotlib, which is not installed: {INSTALL_HINT}") from exc
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path, dpi):
    """Write the figure as a PNG of exactly figsize * dpi pixels (no 'tight' cropping) and return path."""
    fig.savefig(path, dpi=dpi, format="png")
    return path


# -- benchmark timings ---------------------------------------------------------------------


def plot_timings(rows, path, title=None, ylabel="seconds per call", log=True, figsize=None, dpi=100):
    """Grouped bar chart of benchmark timings: one group of bars per case, one bar per method.

    rows: a list of dicts, one per measurement, with exactly these keys:
        'case'    str    what was timed, the x-axis group, e.g. 'LeNet conv1 (64, 1, 28, 28)'
        'method'  str    how, one bar colour per method, e.g. 'naive', 'im2col', 'torch'
        'seconds' float  the time of one call (e.g. the median of repeats)
    for example
        [{'case': 'LeNet conv1', 'method': 'naive',  'seconds': 1.93},
         {'case': 'LeNet conv1', 'method': 'im2col', 'seconds': 0.0123},
         {'case': 'LeNet conv2', 'method': 'im2col', 'seconds': 0.0081}]
    Cases and methods appear in the order they first occur; a (case, method) pair that is
    missing leaves a gap. Each bar is labelled with its time (s, ms or us).
    log: a logarithmic y axis (default), since naive loops can be 1000x slower than im2col.
    Returns path.
    """
    rows = list(rows)
    for i, row in enumerate(rows):
        missing = {"case", "method", "seconds"} - set(row)
        if missing:
            raise ValueError(f"plot_timings: row {i} {row!r} lacks the keys {sorted(missing)}; "
                             "each row needs 'case', 'method' and 'seconds'")
        if not float(row["seconds"]) > 0:
            raise ValueError(f"plot_timings: row {i} has seconds={row['seconds']!r}; times must be positive")
    if not rows:
        raise ValueError("plot_timings: no rows to plot")
    cases = list(dict.fromkeys(str(r["case"]) for r in rows))
    methods = list(dict.fromkeys(str(r["method"]) for r in rows))
    seconds = {(str(r["case"]), str(r["method"])): float(r["seconds"]) for r in rows}

    fig = _figure(figsize or (max(6.0, 1.0 + 0.5 * len(cases) * (len(methods) + 1)), 4.5))
    ax = fig.add_subplot()
    width = 0.8 / len(methods)
    colours = _colours(len(methods))
    for m, method in enumerate(methods):
        xs = [c + (m - (len(methods) - 1) / 2) * width for c, case in enumerate(cases) if (case, method) in seconds]
        ys = [seconds[case, method] for case in cases if (case, method) in seconds]
        bars = ax.bar(xs, ys, width, label=method, color=colours[m])
        ax.bar_label(bars, [_format_seconds(y) for y in ys], fontsize=7, padding=1)
    if log:
        ax.set_yscale("log")
    ax.margins(y=0.15)
    ax.set_xticks(range(len(cases)))
    ax.set_xticklabels(cases, rotation=15 if len(cases) > 3 else 0, ha="right" if len(cases) > 3 else "center")
    ax.set_xlabel("case")
    ax.set_ylabel(ylabel + (" (log scale)" if log else ""))
    ax.set_title(title or "Timings (lower is faster)")
    ax.legend(title="method", fontsize=8)
    ax.grid(axis="y", alpha=0.3, which="both")
    fig.tight_layout()
    return _save(fig, path, dpi)


def _format_seconds(s):
    if s >= 1:
        return f"{s:.3g} s"
    if s >= 1e-3:
        return f"{s * 1e3:.3g} ms"
    return f"{s * 1e6:.3g} us"


def _colours(n):
    """n distinct colours from matplotlib's default cycle (tab10)."""
    from matplotlib import colormaps
    cmap = colormaps["tab10"]
    return [cmap(i % 10) for i in range(n)]


# -- training curves -----------------------------------------------------------------------


def plot_history(history, path, title=None, figsize=None, dpi=100):
    """Loss, accuracy and learning-rate curves from a fit history.

    history: dict of equal-length lists, one entry per epoch, as minicnn.train.fit returns:
        'epoch', 'train_loss', 'val_loss', 'train_acc', 'val_acc', 'lr'.
    Any key may be missing and any entry None (e.g. no validation set, or validation only
    every few epochs): those points are left out. A panel is drawn for each of loss,
    accuracy and learning rate that has any data. Accuracies are plotted as given
    (fractions or percent). Returns path.
    """
    panels = [(name, [(key, label) for key, label in curves if _has_values(history.get(key))])
              for name, curves in (("loss", (("train_loss", "train"), ("val_loss", "validation"))),
                                   ("accuracy", (("train_acc", "train"), ("val_acc", "validation"))),
                                   ("learning rate", (("lr", "lr"),)))]
    panels = [(name, curves) for name, curves in panels if curves]
    if not panels:
        raise ValueError(f"plot_history: nothing to plot; the history has the keys {sorted(history)} but none of "
                         "'train_loss', 'val_loss', 'train_acc', 'val_acc', 'lr' has a value")
    longest = max(len(history[key]) for _, curves in panels for key, _ in curves)
    epochs = history.get("epoch") or list(range(1, longest + 1))

    fig = _figure(figsize or (4.0 * len(panels), 3.6))
    for i, (name, curves) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        for key, label in curves:
            points = [(e, float(v)) for e, v in zip(epochs, history[key]) if v is not None]
            ax.plot(*zip(*points), marker="o", markersize=3, label=label)
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.set_title(name)
        ax.grid(alpha=0.3)
        if name == "learning rate":
            ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
        else:
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path, dpi)


def _has_values(values):
    return bool(values) and any(v is not None for v in values)


# -- filters and feature maps ----------------------------------------------------------------


def plot_filters(weight_or_conv, path, max_filters=64, title=None, figsize=None, dpi=100):
    """A grid of convolution filters, one tile per output channel.

    weight_or_conv: a weight array (OC, C, KH, KW), a Conv2d, or a model (its first Conv2d
    is used). When C == 3 each tile shows the filter in colour (its three input channels
    as RGB); otherwise it shows input channel 0 in grey. Each tile is scaled on its own
    (its minimum black, its maximum white), so filters of any size are visible. At most
    max_filters tiles. Returns path.
    """
    weight, name = _conv_weight(weight_or_conv)
    OC, C, KH, KW = weight.shape
    n = min(OC, max_filters)
    rows, cols = _grid(n)
    fig = _figure(figsize or (max(3.0, 1.1 * cols), 1.1 * rows + 0.7))
    for k in range(n):
        ax = fig.add_subplot(rows, cols, k + 1)
        f = weight[k]
        if C == 3:
            ax.imshow(_unit(f).transpose(1, 2, 0), interpolation="nearest")
        else:
            ax.imshow(_unit(f[0]), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(str(k), fontsize=7, pad=2)
        ax.set_axis_off()
    shown = "RGB" if C == 3 else ("input channel 0" if C > 1 else "")
    fig.suptitle(title or f"{name}: {OC} filters {KH}x{KW}" + (f", {shown}" if shown else "")
                 + (f" (first {n})" if n < OC else ""), fontsize=10)
    fig.tight_layout()
    return _save(fig, path, dpi)


def _conv_weight(obj):
    """(weight as a NumPy (OC, C, KH, KW) array, a name for the title) from an array, a Conv2d or a model."""
    from .nn import Conv2d, Module
    if isinstance(obj, Module) and not isinstance(obj, Conv2d):
        conv = next((m for m in obj.modules() if isinstance(m, Conv2d)), None)
        if conv is None:
            raise ValueError(f"plot_filters: the model {type(obj).__name__} has no Conv2d layer")
        obj = conv
    if isinstance(obj, Conv2d):
        return to_numpy(obj.weight.data).astype(np.float64), f"Conv2d({obj.in_channels}, {obj.out_channels})"
    weight = to_numpy(obj).astype(np.float64)
    if weight.ndim != 4:
        raise ValueError(f"plot_filters: expected a weight of shape (OC, C, KH, KW), a Conv2d or a model, "
                         f"got an array of shape {weight.shape}")
    return weight, "filters"


def plot_feature_maps(model, x, layer, path, max_maps=32, title=None, figsize=None, dpi=100):
    """The output of model[:layer+1] for one image: one grey tile per channel.

    model: a Sequential; x: one image (C, H, W) or (1, C, H, W); layer: an index into the
    Sequential (negative counts from the end). A (1, C, H, W) output is shown as C tiles
    (at most max_maps), each scaled on its own; a (1, K) output (after Flatten or Linear)
    as K bars. The forward runs in eval mode under no_grad (it records nothing, so a forward
    waiting for its backward is not disturbed); every module's mode is restored after.
    Returns path.
    """
    from .nn import Sequential
    from .summary import preserved
    if not isinstance(model, Sequential):
        raise TypeError(f"plot_feature_maps: expected a Sequential (layer indexes it), got {type(model).__name__}")
    if not -len(model) <= layer < len(model):
        raise IndexError(f"plot_feature_maps: layer {layer} is out of range for a Sequential of {len(model)} layers")
    layer = layer % len(model)
    x = _one_image(x, model)
    from .autograd import no_grad
    with preserved(model), no_grad():
        model.eval()
        out = to_numpy(model[:layer + 1](x))[0].astype(np.float64)
    name = f"({layer}) {type(model[layer]).__name__}"

    if out.ndim == 1:
        fig = _figure(figsize or (6.0, 3.0))
        ax = fig.add_subplot()
        ax.bar(range(out.size), out, color="#1565c0")
        ax.set_xlabel("feature")
        ax.set_ylabel("value")
        ax.set_title(title or f"output of layer {name}, {out.size} features")
        fig.tight_layout()
        return _save(fig, path, dpi)
    if out.ndim != 3:
        raise ValueError(f"plot_feature_maps: layer {name} gives an output of shape {(1,) + out.shape}; "
                         "expected (1, C, H, W) or (1, K)")
    n = min(out.shape[0], max_maps)
    rows, cols = _grid(n)
    fig = _figure(figsize or (max(3.0, 1.1 * cols), 1.1 * rows + 0.7))
    for k in range(n):
        ax = fig.add_subplot(rows, cols, k + 1)
        ax.imshow(_unit(out[k]), cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(str(k), fontsize=7, pad=2)
        ax.set_axis_off()
    fig.suptitle(title or f"feature maps after layer {name}: {out.shape[0]} x {out.shape[1]}x{out.shape[2]}"
                 + (f" (first {n})" if n < out.shape[0] else ""), fontsize=10)
    fig.tight_layout()
    return _save(fig, path, dpi)


def _one_image(x, model):
    """x as (1, C, H, W) in the array module and dtype of the model's parameters."""
    from .summary import model_input
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(f"plot_feature_maps: expected one image (C, H, W) or (1, C, H, W), got shape {tuple(x.shape)}")
    return model_input(model, x)


# -- predictions and confusion matrix ---------------------------------------------------------


def plot_predictions(images, labels, preds, classes, path, max_images=32, ncols=8, title=None, figsize=None,
                     dpi=100):
    """A grid of images titled with the predicted and the true class; wrong ones in red with a red frame.

    images (N, C, H, W), C = 1 (grey) or 3 (RGB), uint8 or float (floats outside [0, 1], e.g.
    normalised inputs, are rescaled per image for display); labels (N,) and preds (N,) class
    indices; classes: a list of class names, or None for the indices. At most max_images.
    Returns path.
    """
    images, labels, preds = to_numpy(images), to_numpy(labels).astype(int), to_numpy(preds).astype(int)
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"plot_predictions: expected images of shape (N, 1 or 3, H, W), got {images.shape}")
    if not len(images) == len(labels) == len(preds):
        raise ValueError(f"plot_predictions: {len(images)} images, {len(labels)} labels and {len(preds)} "
                         "predictions; they must be as many")
    n = min(len(images), max_images)
    cols = min(ncols, n)
    rows = math.ceil(n / cols)
    fig = _figure(figsize or (1.3 * cols, 1.6 * rows + 0.5))
    name = (lambda k: str(classes[k])) if classes is not None else str
    for k in range(n):
        ax = fig.add_subplot(rows, cols, k + 1)
        img = _display_image(images[k])
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
        wrong = preds[k] != labels[k]
        colour = WRONG if wrong else RIGHT
        ax.set_title(f"pred: {name(preds[k])}\ntrue: {name(labels[k])}", fontsize=8, color=colour, pad=2,
                     fontweight="bold" if wrong else "normal")
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_color(colour)
            spine.set_linewidth(2.5 if wrong else 0.8)
    errors = int((preds[:n] != labels[:n]).sum())
    fig.suptitle(title or f"predictions: {n - errors} of {n} right (wrong ones in red)", fontsize=10)
    fig.tight_layout()
    return _save(fig, path, dpi)


def _display_image(img):
    """(C, H, W) -> (H, W) or (H, W, 3) floats in [0, 1]."""
    img = img.astype(np.float64)
    if img.max() > 1.0 or img.min() < 0.0:
        img = img / 255.0 if img.min() >= 0 and img.max() <= 255 and img.max() > 1.0 else _unit(img)
    return img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0)


def plot_confusion_matrix(cm, classes, path, title=None, figsize=None, dpi=100):
    """The confusion matrix as a heatmap with the count in every cell.

    cm (K, K) counts, rows the true class, columns the predicted one (as minicnn.train.evaluate
    gives it); classes: K names, or None for the indices. Returns path.
    """
    cm = to_numpy(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"plot_confusion_matrix: expected a square (K, K) matrix, got shape {cm.shape}")
    K = cm.shape[0]
    names = [str(c) for c in classes] if classes is not None else [str(k) for k in range(K)]
    if len(names) != K:
        raise ValueError(f"plot_confusion_matrix: {len(names)} class names for a {K}x{K} matrix")
    side = max(4.5, 0.55 * K + 2.0)
    fig = _figure(figsize or (side + 1.0, side))
    ax = fig.add_subplot()
    image = ax.imshow(cm, cmap="Blues", interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="count")
    ax.set_xticks(range(K))
    ax.set_yticks(range(K))
    long_names = max(map(len, names)) > 2
    ax.set_xticklabels(names, rotation=45 if long_names else 0, ha="right" if long_names else "center")
    ax.set_yticklabels(names)
    ax.set_xlabel("predicted", fontsize=11)
    ax.set_ylabel("true", fontsize=11)
    threshold = cm.max() / 2 if cm.size else 0
    fontsize = 8 if K <= 10 else 6
    for i in range(K):
        for j in range(K):
            value = cm[i, j]
            text = f"{value:d}" if np.issubdtype(cm.dtype, np.integer) else f"{value:.2g}"
            ax.text(j, i, text, ha="center", va="center", fontsize=fontsize,
                    color="white" if value > threshold else "black")
    total = cm.sum()
    accuracy = f", accuracy {np.trace(cm) / total:.1%}" if total else ""
    ax.set_title(title or f"confusion matrix: {total:,} samples{accuracy}", fontsize=11)
    fig.tight_layout()
    return _save(fig, path, dpi)


# -- helpers ---------------------------------------------------------------------------------


def _grid(n):
    """(rows, cols) of a grid for n tiles: one row up to 8, then rows of 8."""
    cols = max(1, min(8, n))
    return math.ceil(n / cols), cols


def _unit(a):
    """a scaled to [0, 1] by its own minimum and maximum (all 0.5 when constant)."""
    lo, hi = a.min(), a.max()
    return np.full_like(a, 0.5, dtype=np.float64) if hi == lo else (a - lo) / (hi - lo)


# -- the recorded graph ----------------------------------------------------------------------

GRAPH_COLOURS = {  # kind of box: (fill, edge)
    "op": ("#e3f2fd", "#1565c0"),        # an op the tape recorded
    "root": ("#ffebee", "#c62828"),      # the tensor plotted: backward() starts there
    "param": ("#fff3e0", "#e65100"),     # a Parameter: a leaf that gets a .grad
    "input": ("#e8f5e9", "#2e7d32"),     # a leaf that needs no gradient (the images)
    "leaf": ("#f3e5f5", "#6a1b9a"),      # any other leaf that requires a gradient
}
BACKWARD = "#c62828"


def plot_graph(tensor, path, model=None, title=None, engine="auto", figsize=None, dpi=100, max_nodes=400):
    """Draw the graph the tape recorded behind `tensor` (a loss, or any output) as a PNG.

    Every op is a box with its name ('conv2d'), the layer whose forward ran it ('conv1 (Conv2d)',
    or 'in layer1.0 (BasicBlock)' for an op written in a custom forward such as the residual
    add) and the shape of its output. The leaves are boxes too: the Parameters (named as in
    model.named_parameters() when `model` is given, e.g. 'layer1.0.conv1.weight') and the
    inputs. Arrows run in the forward direction, from the inputs down to `tensor`;
    backward() runs against them, from `tensor` up to every leaf (the red arrow at the side).
    An arrow into an input that needs no gradient is grey and dashed: no gradient flows there.

    Layout (engine='matplotlib'): layers from top to bottom by depth from the inputs, each
    Parameter one layer above the op that uses it; long edges (a shortcut) are routed around
    the boxes between. engine='graphviz' lays it out with graphviz's `dot` instead; 'auto'
    (the default) uses graphviz only when both its Python package and the `dot` program are
    installed, else matplotlib. figsize (matplotlib only): default, the size the layout needs
    (about 1 inch per layer); a given figsize scales the drawing to fit it.
    The graph is only read: nothing is freed or changed, so tensor.backward() may follow.
    Raises RuntimeError when nothing was recorded (a leaf, or computed under no_grad) or when
    backward() has freed the graph already. Returns path.
    """
    if engine not in ("auto", "matplotlib", "graphviz"):
        raise ValueError(f"plot_graph: engine must be 'auto', 'matplotlib' or 'graphviz', got {engine!r}")
    if engine == "graphviz" and not _graphviz_available():
        raise ImportError("plot_graph(engine='graphviz') needs graphviz's Python package and its `dot` program: "
                          "pip install graphviz, and apt-get install graphviz (or brew install graphviz); "
                          "engine='matplotlib' needs neither")
    boxes, edges = _recorded_graph(tensor, model, max_nodes)
    if engine == "graphviz" or (engine == "auto" and _graphviz_available()):
        return _graph_with_graphviz(boxes, edges, path, title or _graph_title(boxes), dpi)
    return _graph_with_matplotlib(boxes, edges, path, title or _graph_title(boxes), figsize, dpi)


def _graphviz_available():
    import importlib.util
    import shutil
    return importlib.util.find_spec("graphviz") is not None and shutil.which("dot") is not None


def _recorded_graph(tensor, model, max_nodes):
    """The boxes and edges behind tensor, read off the tape without changing it.

    boxes: {key: {'kind': 'op' | 'root' | 'param' | 'input' | 'leaf', 'lines': [text lines]}}, in
    forward order (each box after the boxes it reads); edges: [(source key, target key, carries a
    gradient)], from an input of an op to the op."""
    from . import autograd
    node = getattr(tensor, "_node", None)
    if node is None:
        raise RuntimeError("plot_graph: nothing was recorded behind this tensor (it is a leaf, or was computed "
                           "under no_grad() or from tensors that do not require grad); pass the output of a "
                           "forward run with gradients enabled, e.g. the loss before loss.backward()")
    nodes = autograd._order(node)[::-1]          # forward order: inputs first
    freed = next((n for n in nodes if n.freed), None)
    if freed is not None:
        raise RuntimeError(f"plot_graph: the graph behind this tensor was freed by backward() (at {freed.where()}); "
                           "draw it before calling backward(), or call backward(retain_graph=True)")
    if len(nodes) > max_nodes:
        raise ValueError(f"plot_graph: the graph has {len(nodes)} ops, more than max_nodes={max_nodes} would "
                         "make a legible picture; plot a part of the network (the output of one block), or "
                         "raise max_nodes")
    module_names = {id(m): name for name, m in model.named_modules()} if model is not None else {}
    param_names = {id(p): name for name, p in model.named_parameters()} if model is not None else {}
    boxes, edges, leaves = {}, [], {}
    for n in nodes:
        for p, need in zip(n.inputs, n.needs):
            if p is None or isinstance(p, autograd.Node) or id(p) in leaves:
                continue
            leaves[id(p)] = True
            shape = _shape_text(p.shape, p.dtype)
            if id(p) in param_names:
                boxes[id(p)] = {"kind": "param", "lines": [param_names[id(p)], shape]}
            elif type(p).__name__ == "Parameter":
                boxes[id(p)] = {"kind": "param", "lines": ["Parameter", shape]}
            elif p.requires_grad:
                boxes[id(p)] = {"kind": "leaf", "lines": ["tensor (requires grad)", shape]}
            else:
                boxes[id(p)] = {"kind": "input", "lines": ["input", shape]}
        lines = [n.op]
        if n.module is not None:
            name = module_names.get(id(n.module), "")
            kind = type(n.module).__name__
            if any(True for _ in n.module.children()):
                lines.append(f"in {name} ({kind})" if name else f"in {kind}.forward")
            else:
                lines.append(f"{name} ({kind})" if name else kind)
        lines.append(_shape_text(n.shape, n.dtype))
        boxes[id(n)] = {"kind": "root" if n is node else "op", "lines": lines}
        seen = set()
        for p, need in zip(n.inputs, n.needs):
            if p is not None and id(p) not in seen:   # x * x: one arrow
                seen.add(id(p))
                edges.append((id(p), id(n), bool(need)))
    return boxes, edges


def _shape_text(shape, dtype):
    text = str(tuple(int(s) for s in shape))
    return text if str(dtype) == "float32" else f"{text} {dtype}"


def _graph_title(boxes):
    ops = sum(b["kind"] in ("op", "root") for b in boxes.values())
    params = sum(b["kind"] == "param" for b in boxes.values())
    return f"the recorded graph: {ops} ops, {params} parameters"


def _graph_with_graphviz(boxes, edges, path, title, dpi):
    """The same boxes and arrows, laid out by graphviz's dot."""
    import graphviz
    g = graphviz.Digraph(graph_attr={"rankdir": "TB", "dpi": str(dpi), "label": title + "\n(arrows: forward; "
                                     "backward() runs against them, from the red box up)", "labelloc": "t",
                                     "fontname": "Helvetica"},
                         node_attr={"shape": "box", "style": "rounded,filled", "fontname": "Helvetica",
                                    "fontsize": "10"})
    for key, box in boxes.items():
        fill, edge = GRAPH_COLOURS[box["kind"]]
        g.node(str(key), "\n".join(box["lines"]), fillcolor=fill, color=edge,
               penwidth="2.5" if box["kind"] == "root" else "1")
    for source, target, grad in edges:
        g.edge(str(source), str(target), **({} if grad else {"style": "dashed", "color": "grey"}))
    with open(path, "wb") as f:
        f.write(g.pipe(format="png"))
    return path


# the layout, in inches of the natural-size figure
_FONT, _TITLE_FONT = 8.0, 8.5          # points: the box text; its first line (bold)
_PAD_X, _PAD_Y, _LINE = 0.10, 0.07, 0.15
_GAP_X, _GAP_Y = 0.22, 0.36            # between boxes of a layer; between layers
_LEFT, _RIGHT, _TOP, _BOTTOM = 0.75, 0.25, 1.05, 0.25


def _text_width(text, size, bold=False):
    """Width in inches of text in matplotlib's default font."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextToPath
    width, _, _ = TextToPath().get_text_width_height_descent(
        text, FontProperties(size=size, weight="bold" if bold else "normal"), ismath=False)
    return width / 72.0


def _graph_with_matplotlib(boxes, edges, path, title, figsize, dpi):
    """The boxes and arrows in the layered layout of _layered_layout, drawn with matplotlib alone."""
    fig = _figure((1, 1))   # first: without matplotlib this says what to install
    from matplotlib.lines import Line2D
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Patch
    from matplotlib.path import Path
    sizes = {}
    for key, box in boxes.items():
        first = box["kind"] in ("op", "root")
        width = max(_text_width(line, _TITLE_FONT if first and i == 0 else _FONT, bold=first and i == 0)
                    for i, line in enumerate(box["lines"]))
        sizes[key] = (width + 2 * _PAD_X, len(box["lines"]) * _LINE + 2 * _PAD_Y)
    _, x, y, routes = _layered_layout(list(boxes), edges, sizes)

    # the drawing spans y from 0 (its top) down to `bottom`; a band of _TOP above holds the title and legend
    left = min(x[k] - sizes[k][0] / 2 for k in boxes)
    right = max(x[k] + sizes[k][0] / 2 for k in boxes)
    bottom = min(y[k] - sizes[k][1] / 2 for k in boxes)
    width = max(right - left + _LEFT + _RIGHT, 6.4)
    height = _TOP - bottom + _BOTTOM
    shift = _LEFT + (width - _LEFT - _RIGHT - (right - left)) / 2 - left    # centred right of the red arrow
    fw, fh = figsize or (width, height)
    scale = min(fw / width, fh / height)     # a figsize of its own scales everything, text included

    def pt(size):   # a font size, scaled; at least 1.5 pixels (FreeType refuses less than one)
        return max(size * scale, 108.0 / dpi)

    fig.set_size_inches(fw, fh)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_axis_off()
    middle = (_TOP + bottom - _BOTTOM) / 2
    ax.set_xlim(width / 2 - fw / scale / 2, width / 2 + fw / scale / 2)
    ax.set_ylim(middle - fh / scale / 2, middle + fh / scale / 2)

    for (source, target, grad), points in zip(edges, routes):
        points = [(px + shift, py) for px, py in points]
        verts, codes = [points[0]], [Path.MOVETO]
        for (x0, y0), (x1, y1) in zip(points, points[1:]):   # vertical tangents: smooth S-curves
            dy = (y0 - y1) / 2
            verts += [(x0, y0 - dy), (x1, y1 + dy), (x1, y1)]
            codes += [Path.CURVE4] * 3
        ax.add_patch(FancyArrowPatch(path=Path(verts, codes), arrowstyle="-|>", mutation_scale=9 * scale,
                                     linewidth=1.0 * scale, color="#424242" if grad else "#9e9e9e",
                                     linestyle="-" if grad else "--", shrinkA=0, shrinkB=0, zorder=1))
    for key, box in boxes.items():
        w, h = sizes[key]
        cx, cy = x[key] + shift, y[key]
        fill, edge = GRAPH_COLOURS[box["kind"]]
        ax.add_patch(FancyBboxPatch((cx - w / 2, cy - h / 2), w, h, boxstyle="round,pad=0,rounding_size=0.06",
                                    facecolor=fill, edgecolor=edge, linewidth=(2.2 if box["kind"] == "root" else 1.0)
                                    * scale, zorder=2))
        first = box["kind"] in ("op", "root")
        top = cy + h / 2 - _PAD_Y - _LINE / 2
        for i, line in enumerate(box["lines"]):
            ax.text(cx, top - i * _LINE, line, ha="center", va="center", zorder=3,
                    fontsize=pt(_TITLE_FONT if first and i == 0 else _FONT),
                    fontweight="bold" if first and i == 0 else "normal",
                    color="#212121" if first and i == 0 else "#424242")

    # the backward direction: a red arrow up the left side, from the plotted tensor to the top leaves
    top_y = max(y[k] + sizes[k][1] / 2 for k in boxes)
    ax.add_patch(FancyArrowPatch((_LEFT * 0.45, bottom), (_LEFT * 0.45, top_y), arrowstyle="-|>",
                                 mutation_scale=16 * scale, linewidth=2.2 * scale, color=BACKWARD, zorder=1))
    ax.text(_LEFT * 0.45 - 0.08, (bottom + top_y) / 2, "backward(): gradients flow up, against every arrow",
            rotation=90, ha="right", va="center", color=BACKWARD, fontsize=pt(8))
    handles = [Patch(facecolor=GRAPH_COLOURS["op"][0], edgecolor=GRAPH_COLOURS["op"][1],
                     label="op: name, layer that ran it, output shape"),
               Patch(facecolor=GRAPH_COLOURS["param"][0], edgecolor=GRAPH_COLOURS["param"][1],
                     label="Parameter (leaf: gets .grad)"),
               Patch(facecolor=GRAPH_COLOURS["input"][0], edgecolor=GRAPH_COLOURS["input"][1],
                     label="input (leaf: needs no gradient)"),
               Patch(facecolor=GRAPH_COLOURS["root"][0], edgecolor=GRAPH_COLOURS["root"][1], linewidth=2,
                     label="the tensor plotted: backward() starts here"),
               Line2D([], [], color="#424242", marker=">", markersize=5, label="forward: data flows along the arrows"),
               Line2D([], [], color=BACKWARD, linewidth=2, marker="^", markersize=5,
                      label="backward: gradients flow against them"),
               Line2D([], [], color="#9e9e9e", linestyle="--", label="no gradient flows (the input needs none)")]
    ax.text(width / 2, _TOP - 0.1, title, ha="center", va="top", fontsize=pt(10))
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(width / 2, _TOP - 0.3), ncol=2,
              fontsize=pt(7), frameon=False, handlelength=1.6, columnspacing=1.2,
              bbox_transform=ax.transData)
    return _save(fig, path, dpi)


def _layered_layout(keys, edges, sizes):
    """A layered (Sugiyama-style) layout, top to bottom: (layer of each key, x, y, one route per edge).

    keys: the boxes in forward order; edges: (source, target, _); sizes: key -> (width, height) in
    inches. An op sits one layer below the deepest op it reads, a leaf one layer above the first op
    that reads it. An edge that spans several layers passes through a thin placeholder in each
    layer between, so it is routed beside the boxes, not through them. The order within a layer
    comes from barycentre sweeps (fewest crossings kept); x from repeated least-squares placement
    (each box as near as it can be to the mean of its neighbours, boxes never closer than _GAP_X).
    y: the centre of each layer, the top of the first layer at 0. A route: the points an edge
    passes, from the bottom of its source to the top of its target."""
    preds, succs = {k: [] for k in keys}, {k: [] for k in keys}
    for s, t, _ in edges:
        preds[t].append(s)
        succs[s].append(t)
    layer = {}
    for k in keys:                       # forward order: the ops a box reads are placed first
        if preds[k]:
            layer[k] = 1 + max((layer[p] for p in preds[k] if preds[p]), default=0)
    for k in keys:
        if not preds[k]:
            layer[k] = min(layer[t] for t in succs[k]) - 1
    width = {k: sizes[k][0] for k in keys}
    pull = {k: 0.0 if not preds[k] else 1.0 for k in keys}       # a leaf follows its op, not the reverse
    up, down, chains = {k: [] for k in keys}, {k: [] for k in keys}, []
    for i, (s, t, _) in enumerate(edges):
        chain = [s]
        for L in range(layer[s] + 1, layer[t]):
            d = ("through", i, L)
            layer[d], width[d], pull[d], up[d], down[d] = L, 0.12, 1.0, [], []
            chain.append(d)
        chain.append(t)
        for a, b in zip(chain, chain[1:]):
            down[a].append(b)
            up[b].append(a)
        chains.append(chain)

    first_seen = {k: i for i, k in enumerate(keys)}
    for i, chain in enumerate(chains):
        for d in chain[1:-1]:
            first_seen[d] = first_seen[chain[0]] + 0.5
    rows = [[] for _ in range(max(layer.values()) + 1)]
    for v in sorted(layer, key=lambda v: first_seen[v]):
        rows[layer[v]].append(v)
    rows = _order_rows(rows, up, down)

    x = {}
    for row in rows:
        x.update(zip(row, _place(row, [0.0] * len(row), [1.0] * len(row), width)))
    for sweep in range(24):
        for order, neighbours in ((range(1, len(rows)), up), (range(len(rows) - 2, -1, -1), down)):
            for L in order:
                row = rows[L]
                desired, weights = [], []
                for v in row:
                    near = [u for u in neighbours[v] if pull[u] > 0] or neighbours[v]
                    if near:   # an op follows the ops and long edges beside it; its parameters follow it
                        desired.append(sum(x[u] for u in near) / len(near))
                    else:
                        desired.append(x[v])
                    weights.append(10.0 if preds.get(v) else 0.1 if v in preds else 3.0)   # op, leaf, long edge
                x.update(zip(row, _place(row, desired, weights, width)))

    heights = [max((sizes[v][1] for v in row if v in sizes), default=0.0) for row in rows]
    centres, top = [], 0.0
    for h in heights:
        centres.append(top - h / 2)
        top -= h + _GAP_Y
    y = {v: centres[layer[v]] for v in layer}

    routes = [[(x[v], y[v]) for v in chain] for chain in chains]
    for key in keys:                   # spread the arrows that leave / enter one box along its edge
        for end, others in ((0, [i for i, c in enumerate(chains) if c[0] == key]),
                            (-1, [i for i, c in enumerate(chains) if c[-1] == key])):
            others.sort(key=lambda i: routes[i][1 if end == 0 else -2][0])
            step = min(0.22, width[key] / (len(others) + 1))
            for j, i in enumerate(others):
                px, py = routes[i][end]
                dy = -sizes[key][1] / 2 if end == 0 else sizes[key][1] / 2
                routes[i][end] = (px + (j - (len(others) - 1) / 2) * step, py + dy)
    return layer, {k: x[k] for k in keys}, {k: y[k] for k in keys}, routes


def _order_rows(rows, up, down, sweeps=12):
    """Reorder each layer by the mean position of its neighbours in the layer above (then below),
    keeping the order with the fewest crossings seen."""
    def crossings(rows):
        count = 0
        for upper, lower in zip(rows, rows[1:]):
            pos = {v: i for i, v in enumerate(lower)}
            ends = [(i, pos[w]) for i, v in enumerate(upper) for w in down[v] if w in pos]
            count += sum(1 for a in range(len(ends)) for b in range(a + 1, len(ends))
                         if (ends[a][0] - ends[b][0]) * (ends[a][1] - ends[b][1]) < 0)
        return count

    best, fewest = [list(r) for r in rows], crossings(rows)
    for _ in range(sweeps):
        for order, neighbours, other in ((range(1, len(rows)), up, -1), (range(len(rows) - 2, -1, -1), down, 1)):
            for L in order:
                pos = {v: i / max(1, len(rows[L + other]) - 1) for i, v in enumerate(rows[L + other])}
                own = {v: i / max(1, len(rows[L]) - 1) for i, v in enumerate(rows[L])}
                centre = {v: (sum(pos[u] for u in neighbours[v]) / len(neighbours[v]) if neighbours[v]
                              else own[v]) for v in rows[L]}
                rows[L] = sorted(rows[L], key=lambda v: centre[v])
            count = crossings(rows)
            if count < fewest:
                best, fewest = [list(r) for r in rows], count
    return best


def _place(row, desired, weights, width):
    """x of the boxes of one layer, in their order, nearest (weighted least squares) to `desired`
    while each pair of neighbours stays (w_i + w_j) / 2 + _GAP_X apart: with the offsets o_i of a
    tight packing, y_i = x_i - o_i must not decrease, which pool-adjacent-violators solves exactly."""
    offsets = [0.0]
    for a, b in zip(row, row[1:]):
        offsets.append(offsets[-1] + (width[a] + width[b]) / 2 + _GAP_X)
    blocks = []                           # [mean, weight, count]
    for d, o, w in zip(desired, offsets, weights):
        blocks.append([d - o, w, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, w2, n2 = blocks.pop()
            m1, w1, n1 = blocks.pop()
            blocks.append([(m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2, n1 + n2])
    values = [m for m, _, n in blocks for _ in range(n)]
    return [v + o for v, o in zip(values, offsets)]


# -- gradient flow and activation statistics ---------------------------------------------------


def _layers_with_parameters(model):
    """(name, layer, [(parameter name, Parameter)]) for every leaf layer that holds parameters, in order."""
    from .summary import named_leaves
    names = {id(p): name for name, p in model.named_parameters()}
    for name, layer in named_leaves(model):
        params = [(names[id(p)], p) for p in layer.parameters() if id(p) in names]
        if params:
            yield name, layer, params


def plot_grad_flow(model, path, title=None, figsize=None, dpi=100):
    """How big the gradients are in each layer, after a backward: bars of the mean and the maximum
    of |grad| over each layer's parameters, layers in forward order, on a log scale.

    Gradients that shrink from the last layer to the first (by orders of magnitude) mean the
    first layers hardly learn: vanishing gradients (sigmoids, no normalisation, bad init). A
    layer whose parameters have no gradient (frozen, or not used in the forward) is marked
    'no grad'; an all-zero gradient is marked '0' (a log scale has no zero).
    Raises RuntimeError when no parameter has a gradient (call loss.backward() first). Returns path.
    """
    rows = []
    for name, layer, params in _layers_with_parameters(model):
        grads = [to_numpy(p.grad.array) for _, p in params if p.grad is not None]
        if not grads:
            rows.append((name, layer, None, None))
            continue
        size = sum(g.size for g in grads)
        mean = sum(float(np.abs(g, dtype=np.float64).sum()) for g in grads) / size
        rows.append((name, layer, mean, max(float(np.abs(g).max()) for g in grads)))
    if all(r[2] is None for r in rows):
        raise RuntimeError(f"plot_grad_flow: no parameter of the {type(model).__name__} has a gradient; call "
                           "loss.backward() first (optimizer.zero_grad() sets every .grad to None)")
    fig = _figure(figsize or (max(6.0, 0.55 * len(rows) + 2.0), 4.2))
    ax = fig.add_subplot()
    positives = [v for r in rows for v in r[2:] if v]
    floor = min(positives) / 10 if positives else 1e-12
    xs = range(len(rows))
    for key, colour, label in ((3, "#90caf9", "max |grad|"), (2, "#1565c0", "mean |grad|")):
        heights = [r[key] if r[key] else np.nan for r in rows]
        ax.bar(xs, heights, 0.7 if key == 3 else 0.45, color=colour, label=label, zorder=2)
    for i, (_, _, mean, biggest) in enumerate(rows):
        if mean is None or not biggest:
            ax.text(i, floor * 1.5, "no grad" if mean is None else "0", ha="center", va="bottom", fontsize=7,
                    rotation=90, color="#616161")
    means = [r[2] for r in rows if r[2]]
    ratio = f" (mean |grad|, last / first: {means[-1] / means[0]:.3g})" if len(means) > 1 else ""
    ax.set_yscale("log")
    ax.set_ylim(bottom=floor)
    ax.set_xticks(list(xs))
    ax.set_xticklabels([f"{name}\n{type(layer).__name__}" if name else type(layer).__name__
                        for name, layer, _, _ in rows], fontsize=7, rotation=30 if len(rows) > 8 else 0)
    ax.set_xlabel(f"layer, in forward order: the input is on the left{ratio}", fontsize=9)
    ax.set_ylabel("|gradient| (log scale)")
    ax.set_title(title or "gradient flow: |grad| of each layer's parameters", fontsize=10)
    ax.grid(axis="y", alpha=0.3, which="both", zorder=0)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path, dpi)


def saturation_rule(layer):
    """(text, function of the output array giving a boolean array) for a layer whose units can
    saturate, or None. The layer gives its own rule (principle 6: layers describe themselves): a
    method saturated(y) -> bool array, and optionally its text as saturation_text (Sigmoid, Tanh
    and ReLU have both; a layer of your own may add them)."""
    own = getattr(layer, "saturated", None)
    if callable(own):
        return getattr(layer, "saturation_text", f"{type(layer).__name__}.saturated(y)"), own
    return None


class ActivationRecorder:
    """Per-layer statistics of a network while it trains, every `every` steps, cheaply: a few
    reductions of each leaf layer's output (no copy of it is kept) and one norm per parameter.

        recorder = ActivationRecorder(model, every=10)
        for x, y in loader:
            optimizer.zero_grad()
            loss = criterion(model(x), y)   # on a recorded step the leaf layers' outputs are measured
            loss.backward()
            recorder.step(loss)             # then the gradient norms, and on to the next step
            optimizer.step()
        recorder.remove()                   # or use it as a context manager: `with ActivationRecorder(...)`

    Steps are counted by step() from 0; steps 0, every, 2*every, ... are recorded. Only forwards
    in training mode are measured (an evaluation forward between steps is not), so the numbers
    are those of the batches the network learns from. Rows, one per layer call / parameter:
        .activations  {'step', 'layer' (dotted name; 'relu#2' for a second call in one step),
                       'type' (class name), 'mean', 'std', 'saturated'}: mean and std of all the
                       output's values; 'saturated' the fraction of saturated units (Sigmoid
                       y < 0.03 or y > 0.97, Tanh |y| > 0.97, ReLU y == 0: dead for this batch),
                       None for a layer without such a rule (Conv2d, pools); 'rule' the text of
                       the layer's own rule (its saturation_text), or None
        .grad_norms   {'step', 'param' (its name in the model), 'norm' (L2 norm of its .grad)}
        .batch_metrics {'step', 'loss', 'accuracy'} (what step() was given, None if not)
    Only leaf layers are watched: an op of a custom forward (F.relu) is not a layer and has no row.
    The hooks only read: training is bit for bit the same with and without a recorder.
    """

    def __init__(self, model, every=1, start_step=0):
        import numbers
        if isinstance(every, bool) or not isinstance(every, numbers.Integral) or every < 1:
            raise ValueError(f"ActivationRecorder: every must be a positive int (record every N steps), got {every!r}")
        from .summary import named_leaves
        self.model, self.every, self.steps_done = model, int(every), int(start_step)
        self.activations, self.grad_norms, self.batch_metrics = [], [], []
        self._calls = {}
        self._handles = [layer.register_forward_hook(self._hook(name, layer)) for name, layer in named_leaves(model)]

    @property
    def due(self):
        """Whether the step now running is one that is recorded."""
        return self.steps_done % self.every == 0

    def _hook(self, name, layer):
        rule = saturation_rule(layer)

        def hook(module, inputs, out):
            if not (self.due and module.training and hasattr(out, "array")):
                return None
            y = out.array
            calls = self._calls[name] = self._calls.get(name, 0) + 1
            self.activations.append({
                "step": self.steps_done, "layer": name if calls == 1 else f"{name}#{calls}",
                "type": type(module).__name__, "mean": float(y.mean()), "std": float(y.std()),
                "saturated": float(rule[1](y).mean()) if rule is not None else None,
                "rule": rule[0] if rule is not None else None})
            return None
        return hook

    def step(self, loss=None, accuracy=None):
        """End of a training step (after backward): on a recorded step, note every parameter's
        gradient norm and the loss / accuracy given (a Tensor or a number); then count the step."""
        if self.due:
            from .backend import get_array_module
            for name, p in self.model.named_parameters():
                if p.grad is not None:
                    g = p.grad.array.ravel()
                    self.grad_norms.append({"step": self.steps_done, "param": name,
                                            "norm": math.sqrt(float(get_array_module(g).vdot(g, g)))})
            if loss is not None or accuracy is not None:
                self.batch_metrics.append({"step": self.steps_done, "loss": _number(loss), "accuracy": _number(accuracy)})
        self.steps_done += 1
        self._calls = {}

    def remove(self):
        """Take the hooks off the model (the rows recorded stay)."""
        for h in self._handles:
            h.remove()
        self._handles = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()
        return False

    def __repr__(self):
        return (f"<ActivationRecorder every {self.every} steps, {self.steps_done} steps done: "
                f"{len(self.activations)} activation rows, {len(self.grad_norms)} gradient-norm rows>")


def _number(value):
    if value is None:
        return None
    return float(value.item() if hasattr(value, "item") else value)


def plot_activation_stats(records, path, layers=None, params=None, title=None, figsize=None, dpi=100):
    """How each layer's outputs and gradients evolve over training steps, from an ActivationRecorder.

    records: an ActivationRecorder, or a dict with its rows under 'activations' and optionally
    'grad_norms' and 'batch_metrics' (the history of fit(..., record_every=N) is one).
    Panels: the batch loss and accuracy (when recorded); the gradient norm of each parameter
    (log scale); the fraction of saturated units; the mean and the std of each layer's output.
    layers: the layer names to show (default: those with a saturation rule, the activations,
    when there are any, else all); params: the parameter names (default: the weights, every
    name ending in 'weight', else all). One colour per layer in every panel; a parameter
    takes the colour of its layer. Returns path.
    """
    if isinstance(records, ActivationRecorder):
        records = {"activations": records.activations, "grad_norms": records.grad_norms,
                   "batch_metrics": records.batch_metrics}
    activations = list(records.get("activations") or [])
    grad_norms = list(records.get("grad_norms") or [])
    metrics = list(records.get("batch_metrics") or [])
    if not activations:
        raise ValueError("plot_activation_stats: no activation rows; record them with "
                         "ActivationRecorder(model, every=N) or fit(..., record_every=N)")
    names = list(dict.fromkeys(r["layer"] for r in activations))
    if layers is None:
        saturating = [n for n in names if any(r["saturated"] is not None for r in activations if r["layer"] == n)]
        layers = saturating or names
    unknown = [n for n in layers if n not in names]
    if unknown:
        raise ValueError(f"plot_activation_stats: no rows for the layers {unknown}; recorded: {names}")
    param_names = list(dict.fromkeys(r["param"] for r in grad_norms))
    if params is None:
        params = [p for p in param_names if p.endswith("weight")] or param_names
    types = {r["layer"]: r["type"] for r in activations}
    fig = _figure(figsize or (12.0, 6.4))    # first: without matplotlib this says what to install
    order = list(dict.fromkeys(layers + [p.rpartition(".")[0] for p in params]))
    if len(order) <= 10:
        colours = dict(zip(order, _colours(len(order))))
    else:                                    # tab20: twice as many distinct colours, then round again
        from matplotlib import colormaps
        colours = {name: colormaps["tab20"](i % 20) for i, name in enumerate(order)}

    def series(rows, key, value, name):
        points = [(r["step"], r[value]) for r in rows if r[key] == name and r[value] is not None]
        return zip(*points) if points else ((), ())

    axes = [fig.add_subplot(2, 3, k + 1) for k in range(6)]
    ax = axes[0]
    loss = [(m["step"], m["loss"]) for m in metrics if m["loss"] is not None]
    accuracy = [(m["step"], m["accuracy"]) for m in metrics if m["accuracy"] is not None]
    if loss:
        ax.plot(*zip(*loss), color="#424242")
        ax.set_ylabel("batch loss", fontsize=8)
    if accuracy:
        twin = ax.twinx()
        twin.plot(*zip(*accuracy), color="#2e7d32")
        twin.set_ylabel("batch accuracy", color="#2e7d32", fontsize=8)
        twin.set_ylim(0, 1)
        twin.tick_params(labelsize=7)
    if not (loss or accuracy):
        ax.text(0.5, 0.5, "no loss recorded\n(pass it to recorder.step(loss))", ha="center", va="center",
                transform=ax.transAxes, fontsize=8, color="#616161")
    ax.set_title("batch loss" + (" and accuracy (green)" if accuracy else ""), fontsize=9)
    ax = axes[1]
    for p in params:
        ax.plot(*series(grad_norms, "param", "norm", p), color=colours[p.rpartition(".")[0]], label=p)
    ax.set_yscale("log")
    ax.set_title("gradient norm ||grad|| of each weight (log)", fontsize=9)
    if params:
        ax.legend(fontsize=6, ncol=2)
    panels = ((axes[2], "saturated", "fraction of saturated units"), (axes[3], "mean", "mean of the layer's output"),
              (axes[4], "std", "std of the layer's output"))
    for ax, value, label in panels:
        for name in layers:
            ax.plot(*series(activations, "layer", value, name), color=colours[name],
                    label=f"{name} {types[name]}" if name else types[name])
        ax.set_title(label, fontsize=9)
    axes[2].set_ylim(-0.03, 1.03)
    if not any(r["saturated"] for r in activations if r["layer"] in layers):
        axes[2].text(0.5, 0.5, "no unit saturated at any step\n(every line at 0)", ha="center", va="center",
                     transform=axes[2].transAxes, fontsize=8, color="#616161")
    for ax in axes[:5]:
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    handles, labels = axes[3].get_legend_handles_labels()
    axes[5].set_axis_off()
    rules = sorted({f"{r['type']}: {r['rule']}" for r in activations if r["layer"] in layers and r.get("rule")})
    axes[5].legend(handles, labels, loc="upper left", fontsize=8, title="layer (output of)", frameon=False)
    if rules:
        axes[5].text(0.0, 0.02, "saturated:\n" + "\n".join(rules), transform=axes[5].transAxes, fontsize=7,
                     va="bottom", color="#424242")
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return _save(fig, path, dpi)
