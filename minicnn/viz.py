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
