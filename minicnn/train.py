"""Training and evaluation loops, metrics, and checkpoints.

    history = fit(model, CrossEntropyLoss(), optimizer, train_loader, val_loader, epochs=10,
                  checkpoint_dir="runs/lenet", meta={"model": "lenet5", ...})
    result = evaluate(model, CrossEntropyLoss(), test_loader)
    result["accuracy"], result["per_class_accuracy"], result["confusion_matrix"]

One training step is the whole of backpropagation, written as in torch:

    optimizer.zero_grad()              # forget the last batch's gradients
    loss = criterion(model(x), y)      # forward: logits (B, K), mean loss over the batch (recorded)
    loss.backward()                    # backward: the tape fills every Parameter.grad
    optimizer.step()                   # update: p -= lr * (some function of) p.grad

Checkpoints are .npz files (NumPy's zip of arrays), read with allow_pickle=False:
every array under a prefixed key ('model/0.weight', 'optim/state/3/momentum_buffer'),
everything else (epoch, history, meta, the random generator's state) as one JSON
string under the key 'json'. They are written to a temporary file and renamed, so a
crash while saving leaves the previous checkpoint whole.
"""

import json
import math
import os
import sys
import time
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np

from ._tensor import Tensor
from .autograd import no_grad
from .backend import default_rng, to_numpy

FORMAT = "minicnn-checkpoint"
VERSION = 1
HISTORY_KEYS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "images_per_sec")
RECORD_KEYS = ("activations", "grad_norms", "batch_metrics")  # with fit(record_every=N): rows every N steps


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite: training diverged."""


class CheckpointError(ValueError):
    """A checkpoint file cannot be used: damaged, not a checkpoint, or for another network."""


# -- metrics ---------------------------------------------------------------------------------


def confusion_matrix(labels, predictions, num_classes):
    """Counts (K, K) int64: row = true class, column = predicted class.

    labels, predictions: int arrays (N,) with values in [0, K).
    """
    labels, predictions = to_numpy(labels).astype(np.int64), to_numpy(predictions).astype(np.int64)
    flat = labels * num_classes + predictions  # one bin per (true, predicted) pair
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def per_class_accuracy(cm):
    """Recall of each class from a confusion matrix (K, K): correct / seen, NaN for a class never seen."""
    seen = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(seen > 0, np.diag(cm) / np.maximum(seen, 1), np.nan)


def evaluate(model, loss, loader):
    """Loss and accuracy of the model over every batch of the loader, in eval mode.

    Returns a dict:
        loss                float, mean over all N samples
        accuracy            float, fraction of the N samples whose argmax logit is the label
        per_class_accuracy  (K,) float64, accuracy among the samples of each true class
        confusion_matrix    (K, K) int64, rows true class, columns predicted class
        n                   N, the number of samples
    K is the number of logits the model outputs. The model's train/eval mode is restored after.
    """
    was_training = model.training
    model.eval()
    total_loss, n, labels, predictions, K = 0.0, 0, [], [], None
    try:
        with no_grad():  # no graph, no caches: only the layer running holds activations
            for x, y in loader:
                logits = model(x)
                total_loss += loss(logits, y).item() * len(y)
                n += len(y)
                K = logits.shape[1]
                labels.append(_host(y))
                predictions.append(_host(logits.argmax(dim=1)))
    finally:
        model.train(was_training)
    if n == 0:
        raise ValueError("evaluate: the loader gave no samples")
    labels, predictions = np.concatenate(labels), np.concatenate(predictions)
    cm = confusion_matrix(labels, predictions, K)
    return {
        "loss": total_loss / n,
        "accuracy": float(np.mean(labels == predictions)),
        "per_class_accuracy": per_class_accuracy(cm),
        "confusion_matrix": cm,
        "n": n,
    }


# -- the training loop -----------------------------------------------------------------------


def fit(model, loss, optimizer, train_loader, val_loader=None, epochs=1, scheduler=None,
        checkpoint_dir=None, save_best=True, resume=False, progress=True, meta=None, record_every=None):
    """Train for `epochs` epochs in all (counting those of a resumed run); returns the history.

    model          an nn.Module giving logits (B, K); train() mode while training
    loss           e.g. nn.CrossEntropyLoss(): loss(logits, y) -> a 0-d Tensor
    optimizer      from minicnn.optim; scheduler (optional) is stepped once after each epoch
    train_loader   a DataLoader; epoch e is served with train_loader.set_epoch(e), so the batch
                   order (and augmentation) of each epoch depends only on (loader seed, e)
    val_loader     evaluated after each epoch (val_loss, val_acc; None without one)
    checkpoint_dir when given, <dir>/last.npz is written after every epoch and, with save_best
                   and a val_loader, <dir>/best.npz whenever val_acc is the best so far
    resume         True: continue from <checkpoint_dir>/last.npz if it exists; or a checkpoint's
                   path. Model, optimizer, scheduler, history, loader seed and minicnn's random
                   generator are restored, so the result equals one uninterrupted run bit for bit.
    progress       a tqdm bar per epoch when tqdm is installed and the output is a terminal,
                   and one summary line per epoch; False for silence
    meta           JSON-able dict stored in checkpoints (model name and kwargs, dataset,
                   classes, normalisation), so that a checkpoint can rebuild its model alone
    record_every   N: every N training steps (counted over all epochs from 0), record each leaf
                   layer's output statistics and each parameter's gradient norm with a
                   minicnn.viz.ActivationRecorder (it only reads: training is unchanged); off by
                   default. Draw them with minicnn.viz.plot_activation_stats(history, path).

    history: dict of lists, one entry per epoch, keys 'epoch' (1-based), 'train_loss',
    'train_acc', 'val_loss', 'val_acc', 'lr' (the rate used during the epoch), 'images_per_sec';
    with record_every, also the recorder's rows (lists of dicts, one per recorded step and layer
    or parameter): 'activations' ({'step', 'layer', 'type', 'mean', 'std', 'saturated'}),
    'grad_norms' ({'step', 'param', 'norm'}) and 'batch_metrics' ({'step', 'loss', 'accuracy'}).
    Raises NonFiniteLossError (naming the epoch and step) when the loss becomes NaN or infinite.
    """
    keys = HISTORY_KEYS + (RECORD_KEYS if record_every is not None else ())
    history = {key: [] for key in keys}
    start = 0
    checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    resume_path = _resume_path(resume, checkpoint_dir)
    if resume_path is not None:
        state = load_checkpoint(resume_path, model, optimizer, scheduler)
        start = state["epoch"]
        history = {key: list(state["history"].get(key, [])) for key in keys}
        if state["loader"] is not None and hasattr(train_loader, "load_state_dict"):
            train_loader.load_state_dict(state["loader"])
        default_rng().bit_generator.state = state["rng"]
        if progress:
            print(f"resumed from {resume_path} after epoch {start}")
    best = max((a for a in history["val_acc"] if a is not None), default=-1.0)
    recorder = None
    if record_every is not None:
        from .viz import ActivationRecorder
        recorder = ActivationRecorder(model, every=record_every, start_step=start * len(train_loader))
        recorder.activations, recorder.grad_norms, recorder.batch_metrics = (history[k] for k in RECORD_KEYS)
    try:
        _epochs(model, loss, optimizer, train_loader, val_loader, epochs, scheduler, checkpoint_dir, save_best,
                progress, meta, history, start, best, recorder)
    finally:
        if recorder is not None:
            recorder.remove()
    return history


def _epochs(model, loss, optimizer, train_loader, val_loader, epochs, scheduler, checkpoint_dir, save_best,
            progress, meta, history, start, best, recorder):
    """fit's loop over the epochs start..epochs-1, filling history."""
    for epoch in range(start, epochs):
        if hasattr(train_loader, "set_epoch"):
            train_loader.set_epoch(epoch)
        lr = optimizer.lr
        train_loss, train_acc, seconds, n = _train_one_epoch(model, loss, optimizer, train_loader,
                                                             epoch, epochs, progress, recorder)
        val = evaluate(model, loss, val_loader) if val_loader is not None else None
        if scheduler is not None:
            scheduler.step()

        for key, value in zip(HISTORY_KEYS, (
                epoch + 1, train_loss, train_acc,
                val["loss"] if val else None, val["accuracy"] if val else None,
                lr, n / seconds if seconds > 0 else None)):
            history[key].append(value)
        if progress:
            print(_summary_line(history, epochs, seconds), flush=True)

        if checkpoint_dir is not None:
            state = dict(model=model, optimizer=optimizer, epoch=epoch + 1, history=history, meta=meta,
                         scheduler=scheduler, loader=train_loader)
            save_checkpoint(checkpoint_dir / "last.npz", **state)
            if save_best and val and val["accuracy"] > best:
                best = val["accuracy"]
                save_checkpoint(checkpoint_dir / "best.npz", **state)


def _train_one_epoch(model, loss, optimizer, loader, epoch, epochs, progress, recorder=None):
    """One pass over the loader: (mean loss, accuracy, seconds, number of images).
    recorder: an ActivationRecorder told the end of each step (after backward, before the update)."""
    model.train()
    total_loss, correct, n = 0.0, 0, 0
    bar = _progress_bar(len(loader), f"epoch {epoch + 1}/{epochs}") if progress else None
    start = time.perf_counter()
    try:
        for step, (x, y) in enumerate(loader):
            optimizer.zero_grad()
            logits = model(x)
            batch_loss = loss(logits, y)
            value = batch_loss.item()
            if not math.isfinite(value):
                raise NonFiniteLossError(
                    f"the loss became {value} at epoch {epoch + 1}, step {step + 1} of {len(loader)} "
                    f"(lr {optimizer.lr:g}): training diverged. The learning rate is probably too high: "
                    f"try a smaller one, e.g. --lr {optimizer.lr / 10:g}. Also check that the inputs "
                    "are normalised and contain no NaN."
                )
            batch_loss.backward()
            batch_correct = int((logits.argmax(dim=1) == y).sum().item())
            if recorder is not None:
                recorder.step(value, batch_correct / len(y))
            optimizer.step()
            total_loss += value * len(y)
            correct += batch_correct
            n += len(y)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{total_loss / n:.4f}", acc=f"{correct / n:.4f}", refresh=False)
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - start
    if n == 0:
        raise ValueError("fit: the training loader gave no samples")
    return total_loss / n, correct / n, seconds, n


def _progress_bar(total, description):
    """A tqdm bar on a terminal when tqdm is installed (an optional extra), else None."""
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=description, leave=False, disable=None, file=sys.stderr)


def _summary_line(history, epochs, seconds):
    h = {key: history[key][-1] for key in HISTORY_KEYS}
    line = (f"epoch {h['epoch']:>3}/{epochs}  train loss {h['train_loss']:.4f} acc {h['train_acc']:.4f}")
    if h["val_acc"] is not None:
        line += f"  val loss {h['val_loss']:.4f} acc {h['val_acc']:.4f}"
    return line + f"  lr {h['lr']:.3g}  {h['images_per_sec'] or 0:.0f} img/s  {seconds:.1f} s"


def _resume_path(resume, checkpoint_dir):
    if resume is False or resume is None:
        return None
    if resume is True:
        if checkpoint_dir is None:
            raise ValueError("fit: resume=True needs checkpoint_dir (or pass the checkpoint's path as resume)")
        path = checkpoint_dir / "last.npz"
        return path if path.exists() else None
    return Path(resume)


# -- checkpoints -----------------------------------------------------------------------------


def save_checkpoint(path, model, optimizer=None, epoch=0, history=None, meta=None, scheduler=None, loader=None):
    """Write a checkpoint .npz atomically: to a temporary file in the same folder, flushed to
    disk, then renamed over `path`. If anything fails midway, `path` keeps its previous content.

    Stores the model's state_dict, the optimizer's and scheduler's state, `epoch` (epochs done),
    the history, `meta` (JSON-able dict), the loader's seed and minicnn's host random generator.
    """
    path = Path(path)
    model_state = model.state_dict()
    arrays = OrderedDict((f"model/{name}", _host(value).copy()) for name, value in model_state.items())
    info = {
        "format": FORMAT,
        "version": VERSION,
        "epoch": int(epoch),
        "model_keys": list(model_state),
        "optimizer": _split(optimizer.state_dict(), "optim", arrays) if optimizer is not None else None,
        "scheduler": _split(scheduler.state_dict(), "sched", arrays) if scheduler is not None else None,
        "loader": loader.state_dict() if hasattr(loader, "state_dict") else None,
        "history": _to_json(history or {}),
        "meta": _to_json(meta or {}),
        "rng": default_rng().bit_generator.state,
    }
    arrays["json"] = np.array(json.dumps(info))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # same folder: the rename is atomic
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):  # only when something failed before the rename
            os.remove(tmp)
    return path


def load_checkpoint(path, model=None, optimizer=None, scheduler=None):
    """Read a checkpoint written by save_checkpoint; restore it into the objects given.

    Returns a dict: model_state (OrderedDict name -> array), optimizer_state, scheduler_state,
    epoch, history, meta, loader (its seed), rng (the generator state). The random generator
    is not touched here: fit(resume=...) restores it.
    Raises CheckpointError (a ValueError) for a damaged file, a file that is not a checkpoint,
    or a checkpoint of another architecture than `model`.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}  # reads every entry: truncation shows here
        info = json.loads(str(arrays.pop("json")))
        if info.get("format") != FORMAT:
            raise KeyError("format")
        model_state = OrderedDict((name, arrays[f"model/{name}"]) for name in info["model_keys"])
        state = {
            "model_state": model_state,
            "optimizer_state": _join(info["optimizer"], arrays),
            "scheduler_state": _join(info["scheduler"], arrays),
            "epoch": info["epoch"],
            "history": info["history"],
            "meta": info["meta"],
            "loader": info["loader"],
            "rng": info["rng"],
        }
    except (zipfile.BadZipFile, ValueError, KeyError, EOFError, OSError) as exc:
        raise CheckpointError(
            f"{path} is not a readable minicnn checkpoint ({type(exc).__name__}: {exc}). "
            "It may be truncated or damaged (e.g. a copy that did not finish); use another "
            "checkpoint, such as best.npz or last.npz of the same run, or train again."
        ) from None
    if model is not None:
        try:
            model.load_state_dict(model_state)
        except (ValueError, RuntimeError) as exc:
            saved = state["meta"].get("model", "an unknown model")
            raise CheckpointError(
                f"{path} holds the weights of another architecture ({saved}): {exc}. "
                "Build the model the checkpoint was made with: "
                "minicnn.train.load_model(path) does it from the checkpoint's meta."
            ) from None
    for obj, key in ((optimizer, "optimizer_state"), (scheduler, "scheduler_state")):
        if obj is not None:
            if state[key] is None:
                raise CheckpointError(f"{path} holds no {key.split('_')[0]} state to resume from")
            try:
                obj.load_state_dict(state[key])
            except (ValueError, KeyError) as exc:
                raise CheckpointError(f"{path}: cannot restore the {key.split('_')[0]}: {exc}") from None
    return state


def load_model(path):
    """(model, checkpoint dict): the network rebuilt from the checkpoint's meta alone
    (meta['model'], meta['model_kwargs']), with its saved weights loaded."""
    from .models import get_model

    state = load_checkpoint(path)
    name = state["meta"].get("model")
    if name is None:
        raise CheckpointError(f"{path} does not say which model it holds (no 'model' in its meta); "
                              "build the model yourself and call load_checkpoint(path, model)")
    model = get_model(name, **state["meta"].get("model_kwargs", {}))
    load_checkpoint(path, model)
    return model, state


def _split(obj, prefix, arrays):
    """obj with every array moved into `arrays` under a key like 'optim/state/3/momentum_buffer',
    and replaced by {'__array__': key}: what is left is JSON."""
    if hasattr(obj, "shape") and hasattr(obj, "dtype"):
        arrays[prefix] = _host(obj)
        return {"__array__": prefix}
    if isinstance(obj, dict):
        return {str(k): _split(v, f"{prefix}/{k}", arrays) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_split(v, f"{prefix}/{i}", arrays) for i, v in enumerate(obj)]
    return obj


def _join(obj, arrays):
    """The inverse of _split: {'__array__': key} replaced by arrays[key]."""
    if isinstance(obj, dict):
        if set(obj) == {"__array__"}:
            return arrays[obj["__array__"]]
        return {k: _join(v, arrays) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_join(v, arrays) for v in obj]
    return obj


def _to_json(obj):
    """Plain Python numbers, lists and dicts for NumPy scalars and arrays (for history and meta)."""
    if isinstance(obj, dict):
        return {str(k): _to_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_json(v) for v in obj]
    if hasattr(obj, "shape") and hasattr(obj, "dtype"):  # NumPy or CuPy array or scalar, or a Tensor
        return _host(obj).tolist()
    return obj


def _host(value):
    """A NumPy array of a Tensor's, a CuPy array's or a NumPy value's data."""
    return to_numpy(value.array if isinstance(value, Tensor) else value)
