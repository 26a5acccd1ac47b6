"""The `minicnn` command (also `python -m minicnn`).

    minicnn train --model lenet5 --dataset mnist --epochs 10 --out runs/lenet5_mnist
    minicnn evaluate runs/lenet5_mnist/best.npz
    minicnn convert runs/lenet5_mnist/best.npz lenet5.pth      # torch.load + load_state_dict read it
    minicnn convert runs/lenet5_mnist/best.npz lenet5.onnx     # needs onnx (pip install minicnn[onnx])
    minicnn convert lenet5.pth lenet5.npz --model lenet5 --dataset mnist

`train` writes best.npz and last.npz into --out; `evaluate` rebuilds the network, the data set
and its normalisation from what the checkpoint's meta records, and prints the test accuracy.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from . import backend, data, nn, optim
from .data import (ArrayDataset, Compose, CorruptDatasetError, DataLoader, DatasetNotFoundError, Normalize,
                   RandomCrop, RandomHorizontalFlip)
from .models import MODELS, get_model
from .train import CheckpointError, NonFiniteLossError, evaluate, fit, load_checkpoint, load_model

# name -> (data set class name in minicnn.data, default model, channel means, channel stds)
DATASETS = {
    "mnist": ("MNIST", "lenet5", (0.1307,), (0.3081,)),
    "fashion_mnist": ("FashionMNIST", "lenet5", (0.2860,), (0.3530,)),
    "cifar10": ("CIFAR10", "cifar_small_cnn", (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
}
ALIASES = {"fashion-mnist": "fashion_mnist", "fashionmnist": "fashion_mnist", "cifar-10": "cifar10"}
DEFAULT_LR = {"adam": 1e-3, "sgd": 0.05}


def build_parser():
    parser = argparse.ArgumentParser(prog="minicnn", description="Train and evaluate small CNNs written in NumPy.")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a model; writes best.npz and last.npz into --out")
    train.add_argument("--model", choices=sorted(MODELS), default=None,
                       help="default: lenet5 for MNIST and Fashion-MNIST, cifar_small_cnn for CIFAR-10")
    train.add_argument("--dataset", type=_dataset_name, default="mnist", help=f"one of {sorted(DATASETS)}")
    train.add_argument("--epochs", type=int, default=10)
    train.add_argument("--batch-size", type=int, default=64)
    train.add_argument("--optimizer", choices=["sgd", "adam"], default="sgd", help="sgd: with --momentum")
    train.add_argument("--lr", type=float, default=None,
                       help="default: 0.05 for sgd, 1e-3 for adam; annealed to 0 on a cosine")
    train.add_argument("--momentum", type=float, default=0.9, help="for sgd")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--data-dir", default=None, help="folder holding the data set's files")
    train.add_argument("--limit", type=int, default=None, help="train on the first N training images only")
    train.add_argument("--out", default=None, help="default: runs/<model>_<dataset>")
    train.add_argument("--resume", action="store_true", help="continue from <out>/last.npz")
    train.add_argument("--backend", choices=list(backend.BACKENDS), default="numpy")

    ev = commands.add_parser("evaluate", help="print the test accuracy of a checkpoint")
    ev.add_argument("checkpoint")
    ev.add_argument("--dataset", type=_dataset_name, default=None, help="default: the one it was trained on")
    ev.add_argument("--data-dir", default=None)
    ev.add_argument("--batch-size", type=int, default=1000)
    ev.add_argument("--backend", choices=list(backend.BACKENDS), default="numpy")

    conv = commands.add_parser("convert", help="convert a model between .npz (checkpoint), .pth/.pt (state dict) "
                                               "and .onnx, chosen by the file names")
    conv.add_argument("input", help="the file to read: .npz, .pth, .pt or .onnx")
    conv.add_argument("output", help="the file to write: .npz, .pth, .pt or .onnx")
    conv.add_argument("--model", choices=sorted(MODELS), default=None,
                      help="the architecture, when the input does not say (a .pth state dict, an .onnx from elsewhere)")
    conv.add_argument("--input-shape", type=_shape, default=None,
                      help="example input for .onnx, e.g. 1,1,28,28 (default: 1,1,28,28 for the LeNets, "
                           "1,3,32,32 for the CIFAR models); axis 0 stays a variable batch size")
    conv.add_argument("--opset", type=int, default=17, help="ONNX opset of a written .onnx")
    conv.add_argument("--dataset", type=_dataset_name, default=None,
                      help="recorded in a written .npz, so that `minicnn evaluate` knows the data")
    conv.set_defaults(backend="numpy")
    return parser


def main(argv=None):
    """Run the command line `argv` (default: sys.argv[1:]); returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        backend.use(args.backend)
        return {"train": train_command, "evaluate": evaluate_command, "convert": convert_command}[args.command](args)
    except (DatasetNotFoundError, CorruptDatasetError, CheckpointError, NonFiniteLossError,
            backend.BackendError, FileNotFoundError) as exc:
        print(f"minicnn: error: {exc}", file=sys.stderr)
        return 1


def train_command(args):
    class_name, default_model, mean, std = DATASETS[args.dataset]
    model_name = args.model or default_model
    out = Path(args.out or f"runs/{model_name}_{args.dataset}")
    backend.seed(args.seed)

    train_set, test_set = _load(args.dataset, args.data_dir, train=True), _load(args.dataset, args.data_dir)
    if args.limit is not None:
        train_set = ArrayDataset(train_set.images[:args.limit], train_set.labels[:args.limit], train_set.classes)
    print(f"train: {train_set}\ntest:  {test_set}")
    train_loader = DataLoader(train_set, args.batch_size, shuffle=True, seed=args.seed,
                              transform=_transform(args.dataset, augment=True))
    test_loader = DataLoader(test_set, 1000, transform=_transform(args.dataset))

    model_kwargs = {"num_classes": len(train_set.classes)}
    model = get_model(model_name, **model_kwargs)
    print(f"{model_name}: {model.num_parameters():,} parameters")
    lr = args.lr if args.lr is not None else DEFAULT_LR[args.optimizer]
    if args.optimizer == "adam":
        optimizer = optim.Adam(model.parameters(), lr=lr)
    else:
        optimizer = optim.SGD(model.parameters(), lr=lr, momentum=args.momentum)
    scheduler = optim.CosineAnnealingLR(optimizer, T_max=max(args.epochs, 1))
    criterion = nn.CrossEntropyLoss()
    meta = {"model": model_name, "model_kwargs": model_kwargs, "dataset": args.dataset,
            "classes": list(train_set.classes), "normalize": {"mean": list(mean), "std": list(std)},
            "optimizer": args.optimizer, "lr": lr, "batch_size": args.batch_size, "seed": args.seed}

    start = time.perf_counter()
    fit(model, criterion, optimizer, train_loader, test_loader, epochs=args.epochs, scheduler=scheduler,
        checkpoint_dir=out, resume=args.resume, meta=meta)
    print(f"trained in {time.perf_counter() - start:.0f} s")
    best = out / "best.npz"
    load_checkpoint(best, model)
    result = evaluate(model, criterion, test_loader)
    print(f"test accuracy (best epoch): {result['accuracy']:.4f}")
    print(f"checkpoints: {best} and {out / 'last.npz'}; try `minicnn evaluate {best}`")
    return 0


def evaluate_command(args):
    model, state = load_model(args.checkpoint)
    meta = state["meta"]
    dataset = args.dataset or meta.get("dataset")
    if dataset is None:
        raise CheckpointError(f"{args.checkpoint} does not say which data set it was trained on; pass --dataset")
    dataset = _dataset_name(dataset)
    norm = meta.get("normalize") or dict(zip(("mean", "std"), DATASETS[dataset][2:]))
    test_set = _load(dataset, args.data_dir)
    loader = DataLoader(test_set, args.batch_size, transform=Normalize(norm["mean"], norm["std"]))
    result = evaluate(model, nn.CrossEntropyLoss(), loader)
    print(f"checkpoint: {args.checkpoint} ({meta.get('model')}, epoch {state['epoch']})")
    print(f"test set:   {test_set}")
    print(f"test loss {result['loss']:.4f}  test accuracy {result['accuracy']:.4f}")
    classes = meta.get("classes") or test_set.classes
    for name, accuracy in zip(classes, result["per_class_accuracy"]):
        print(f"  {name:>12}: {accuracy:.3f}")
    return 0


# -- convert -----------------------------------------------------------------------------------------

FORMATS = {".npz": "checkpoint", ".pth": "state dict", ".pt": "state dict", ".onnx": "onnx"}
INPUT_SHAPES = {"lenet5": (1, 1, 28, 28), "lenet5_sigmoid": (1, 1, 28, 28)}  # the others: (1, 3, 32, 32)


class ConvertError(ValueError):
    """The conversion asked for cannot be done; the message says what to pass or use instead."""


def convert_command(args):
    """Read a model from one format and write it in another (see FORMATS): a .npz checkpoint
    (train.save_checkpoint: weights and meta), a .pth/.pt state dict (minicnn.save: what
    torch.load and load_state_dict read) or an .onnx graph (minicnn.onnx.export)."""
    from .io import LoadError

    try:
        source, target = _format(args.input), _format(args.output)
        if source == target:
            raise ConvertError(f"{args.input} and {args.output} are both {source} files: nothing to convert "
                               "(copy the file instead)")
        model, name, meta, kwargs = _read_model(args, source)
        wrote = _write_model(args, target, model, name, meta, kwargs)
    except (ConvertError, LoadError, ImportError) as exc:
        print(f"minicnn: error: {exc}", file=sys.stderr)
        return 1
    print(f"{args.input} ({source}{', ' + name if name else ''}) -> {args.output} ({wrote})")
    return 0


def _format(path):
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ConvertError(f"{path}: unknown kind of file {suffix or '(no extension)'!r}; convert reads and writes "
                           f"{', '.join(f'{s} ({k})' for s, k in FORMATS.items())}")
    return FORMATS[suffix]


def _read_model(args, source):
    """(model, model name or None, meta to carry over, model kwargs) from the input file."""
    if source == "checkpoint":
        state = load_checkpoint(args.input)
        meta = state["meta"]
        name = _model_name(args, meta.get("model"), args.input)
        kwargs = meta.get("model_kwargs", {})
        model = get_model(name, **kwargs)
        load_checkpoint(args.input, model)
        return model, name, meta, kwargs
    if source == "state dict":
        from .io import load

        obj = load(args.input)
        state, meta = _state_dict_of(obj, args.input)
        name = _model_name(args, meta.get("model"), args.input, state)
        kwargs = meta.get("model_kwargs") or _kwargs_for(state)
        model = get_model(name, **kwargs)
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            raise ConvertError(f"{args.input} does not hold the weights of {name}: {exc}") from None
        return model, name, meta, kwargs
    from . import onnx as mo

    try:
        net = mo.load(args.input)
    except mo.LoadError as exc:
        raise ConvertError(str(exc)) from None
    props = net.metadata
    if args.model is None and "minicnn.model" not in props:
        return net, None, {}, {}  # only its initializers can go on: into a state dict
    name = _model_name(args, props.get("minicnn.model"), args.input)
    kwargs = json.loads(props.get("minicnn.model_kwargs", "{}")) if name == props.get("minicnn.model") else \
        _kwargs_for(net.state_dict())
    model = get_model(name, **kwargs)
    _take_onnx_weights(model, net, name, args)
    return model, name, {}, kwargs


def _model_name(args, recorded, path, state=None):
    if args.model is not None and recorded is not None and args.model != recorded:
        raise ConvertError(f"{path} says it holds {recorded}, but --model says {args.model}")
    name = args.model or recorded
    if name is None:
        fits = [n for n in sorted(MODELS) if state is not None and _fits(n, state)]
        hint = f" (its keys and shapes fit {', '.join(fits)})" if fits else ""
        raise ConvertError(f"{path} does not say which model it holds: pass --model NAME, one of "
                           f"{', '.join(sorted(MODELS))}{hint}")
    if name not in MODELS:
        raise ConvertError(f"{path} holds a model minicnn does not know ({name!r}); minicnn builds "
                           f"{', '.join(sorted(MODELS))}")
    return name


def _state_dict_of(obj, path):
    """(state dict, meta) from what a .pth holds: a state dict, or a dict with one under 'state_dict'
    or 'model_state_dict' (and perhaps a 'meta' dict saying which model)."""
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict"):
            if isinstance(obj.get(key), dict):
                meta = obj.get("meta") if isinstance(obj.get("meta"), dict) else {}
                if isinstance(obj.get("model"), str):
                    meta = {"model": obj["model"], **meta}
                return obj[key], meta
        if obj and all(hasattr(v, "shape") for v in obj.values()):
            return obj, {}
    raise ConvertError(f"{path} holds no state dict (a dict of name -> tensor, or one under 'state_dict'); "
                       f"got {type(obj).__name__}")


def _kwargs_for(state):
    """num_classes read from the last Linear's weight (OUT, IN): the models of MODELS end with one."""
    weights = [v for k, v in state.items() if k.endswith("weight") and len(v.shape) == 2]
    return {"num_classes": int(weights[-1].shape[0])} if weights else {}


def _fits(name, state):
    try:
        own = get_model(name, **_kwargs_for(state)).state_dict()
    except (TypeError, ValueError):
        return False
    return set(own) == set(state) and all(tuple(own[k].shape) == tuple(state[k].shape) for k in own)


def _take_onnx_weights(model, net, name, args):
    """model's parameters and buffers from the graph's initializers, checked by running both."""
    _check_same_keys(model, net, name, args)
    model.load_state_dict(net.state_dict(), strict=False)
    x = backend.default_rng().standard_normal(_input_shape(args, name)).astype("float32")
    from ._tensor import from_numpy
    from .autograd import no_grad

    model.eval()
    with no_grad():
        a, b = model(from_numpy(x)).numpy(), net(from_numpy(x)).numpy()
    if a.shape != b.shape or not np.allclose(a, b, rtol=1e-4, atol=1e-4 * max(1.0, float(np.abs(a).max()))):
        raise ConvertError(f"{args.input}: the graph and {name} with its weights give different outputs; it is not "
                           f"{name} (convert it to a .pth without --model to keep its weights under their ONNX names)")


def _check_same_keys(model, net, name, args):
    own, theirs = model.state_dict(), net.state_dict()
    missing = [k for k in own if k not in theirs and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in theirs if k not in own]
    if missing or unexpected:
        raise ConvertError(f"{args.input}: the graph's initializers are not the state dict of {name} (missing "
                           f"{missing[:5]}{'...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}"
                           f"{'...' if len(unexpected) > 5 else ''}); was it exported from {name} by minicnn? "
                           "Convert it to a .pth without --model to keep its weights under their ONNX names")


def _input_shape(args, name):
    if args.input_shape is not None:
        return args.input_shape
    if name is None:
        raise ConvertError("pass --input-shape, e.g. 1,3,32,32: the model is not one minicnn knows")
    return INPUT_SHAPES.get(name, (1, 3, 32, 32))


def _write_model(args, target, model, name, meta, kwargs):
    """Write model in the target format; returns a few words on what was written."""
    if target == "state dict":
        from .io import save

        save(model.state_dict(), args.output)
        return f"state dict, {len(model.state_dict())} tensors"
    if name is None:
        raise ConvertError(f"{args.input} does not say which model it holds: pass --model NAME, one of "
                           f"{', '.join(sorted(MODELS))} (a .pth takes its weights as they are, without it)")
    if target == "checkpoint":
        from .train import save_checkpoint

        meta = {**{k: v for k, v in meta.items() if k in ("dataset", "classes", "normalize")},
                "model": name, "model_kwargs": kwargs}
        if args.dataset is not None:
            meta["dataset"] = args.dataset
        save_checkpoint(args.output, model, meta=meta)
        return f"checkpoint of {name}" + (f" for {meta['dataset']}" if "dataset" in meta else "")
    from . import onnx as mo
    from ._tensor import from_numpy

    shape = _input_shape(args, name)
    x = backend.default_rng().standard_normal(shape).astype("float32")
    try:
        mo.export(model, from_numpy(x), args.output, opset_version=args.opset,
                  metadata={"minicnn.model": name, "minicnn.model_kwargs": json.dumps(kwargs)})
    except (mo.ExportError, ValueError) as exc:
        raise ConvertError(str(exc)) from None
    return f"ONNX opset {args.opset}, input (N, {', '.join(map(str, shape[1:]))})"


def _shape(text):
    try:
        shape = tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        shape = ()
    if not shape or any(n < 1 for n in shape):
        raise argparse.ArgumentTypeError(f"expected positive ints separated by commas, like 1,1,28,28; got {text!r}")
    return shape


def _dataset_name(name):
    name = ALIASES.get(name.lower(), name.lower())
    if name not in DATASETS:
        raise argparse.ArgumentTypeError(f"unknown dataset {name!r}; expected one of {sorted(DATASETS)}")
    return name


def _load(dataset, data_dir, train=False):
    return getattr(data, DATASETS[dataset][0])(data_dir, train=train)


def _transform(dataset, augment=False):
    """Normalisation, and for CIFAR-10 training, random crops and flips first."""
    normalize = Normalize(*DATASETS[dataset][2:])
    if augment and dataset == "cifar10":
        return Compose([RandomCrop(32, padding=4), RandomHorizontalFlip(), normalize])
    return normalize


if __name__ == "__main__":
    sys.exit(main())
