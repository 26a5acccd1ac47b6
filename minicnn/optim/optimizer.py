"""Optimizer: what every minicnn optimizer shares, with torch.optim.Optimizer's names and behaviour.

    opt = SGD(model.parameters(), lr=0.1)                          # one parameter group
    opt = SGD([{"params": body.parameters()},                      # or several, each with its own
               {"params": head.parameters(), "lr": 1e-2}], lr=1e-3)  # options (the rest: the defaults)
    opt.zero_grad(); loss.backward(); opt.step()

    param_groups   list of dicts: 'params' (a list of Parameters) and every option ('lr', 'momentum', ...);
                   schedulers change these between steps, and step() reads them each time
    state          dict Parameter -> its buffers (momentum buffer, Adam's moments), filled by step()
    step()         updates p.array in place for each parameter with a gradient (p.grad is not None and
                   p.requires_grad), and bumps p._version: a backward() through a graph recorded
                   before the step then stops with an error instead of using the changed weights
    state_dict()   {'state': {index: buffers}, 'param_groups': [{options..., 'params': [indices]}]},
                   a snapshot (copies), indices counting the parameters across groups in order
    load_state_dict(state_dict)   copies it back (indices as ints or as strings, as JSON leaves them)

Subclasses give their defaults, a _check of the options and an _update(p, grad, group) on arrays.
"""

import copy
import numbers
import warnings
from collections import defaultdict

from ..autograd import enable_grad, no_grad
from ..backend import get_array_module
from .._tensor import Tensor, _move


class Optimizer:
    """Base class: holds the parameter groups and the state; see the module docstring."""

    def __init__(self, params, defaults):
        self._check(defaults, "")
        self.defaults = dict(defaults)
        if isinstance(params, Tensor):
            raise TypeError("params argument given to the optimizer should be an iterable of Tensors or dicts, "
                            f"but got {_typename(params)}: pass model.parameters() or a list [tensor]")
        self.state = defaultdict(dict)
        self.param_groups = []
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list: does the model assign its layers as "
                             "attributes (after super().__init__())? model.parameters() is a generator, used up "
                             "once iterated: call it again for a second optimizer")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def _check(self, options, where):
        """Raise ValueError for an invalid option value; `where` names the group in the message."""

    def _update(self, p, grad, group):
        """Update p.array in place from the gradient array `grad`, with the options of `group`."""
        raise NotImplementedError

    def add_param_group(self, param_group):
        """Add a group {'params': [...], option: value, ...}; missing options take the defaults."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group).__name__}")
        if "params" not in param_group:
            raise KeyError("param_group needs a 'params' entry, e.g. {'params': model.parameters(), 'lr': 0.01}")
        group = dict(param_group)  # the caller's dict is left as it was
        params = group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError("optimizer parameters need to be organized in ordered collections, but the ordering "
                            "of tensors in sets will change between runs. Please use a list instead.")
        params = list(params)
        if any(isinstance(p, tuple) for p in params):  # named_parameters(): (name, Parameter) pairs
            if not all(isinstance(p, tuple) for p in params):
                raise ValueError("all optimizer params should be with/without names. Some param names are missing")
            group["param_names"] = [name for name, _ in params]
            params = [p for _, p in params]
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizer can only optimize Tensors, but one of the params is {_typename(p)}")
            if not p.is_leaf:
                raise ValueError("can't optimize a non-leaf Tensor: optimize the Parameters it was computed from")
        for group_now in self.param_groups:
            if ("param_names" in group) != ("param_names" in group_now):
                raise ValueError("all optimizer param groups should be with/without names. cannot add param group "
                                 f"{'with' if 'param_names' in group else 'without'} names to the optimizer")
        for name, default in self.defaults.items():
            group.setdefault(name, default)
        self._check(group, f" (in parameter group {len(self.param_groups)})")
        if len({id(p) for p in params}) != len(params):
            # torch keeps the duplicate (it is stepped once per listing) and warns: so does minicnn
            warnings.warn("optimizer contains a parameter group with duplicate parameters; in future, this will "
                          "cause an error; see github.com/pytorch/pytorch/issues/40967 for more information",
                          UserWarning, stacklevel=3)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in params):
            raise ValueError("some parameters appear in more than one parameter group")
        group["params"] = params
        self.param_groups.append(group)

    @property
    def lr(self):
        """The learning rate of the first group; setting it sets every group's (minicnn's shortcut)."""
        return self.param_groups[0]["lr"]

    @lr.setter
    def lr(self, value):
        for i, group in enumerate(self.param_groups):
            self._check(dict(group, lr=value), f" (in parameter group {i})")
        for group in self.param_groups:
            group["lr"] = value

    def zero_grad(self, set_to_none=True):
        """Forget the gradients: p.grad = None, or (set_to_none=False) p.grad zeroed in place, as torch
        (a reference held to p.grad sees the zeros)."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    if set_to_none:
                        p.grad = None
                    else:
                        with no_grad():
                            p.grad.zero_()

    def step(self, closure=None):
        """One update of every parameter that has a gradient. closure (optional): a function that
        recomputes the loss (run with gradients enabled); its value is returned."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                grad = _gradient(p)
                if grad is not None:
                    self._update(p, grad, group)
                    p._bump()
        return loss

    # -- state ---------------------------------------------------------------------------------

    def state_dict(self):
        """{'state': {index: {name: buffer}}, 'param_groups': [{option: value, ..., 'params': [index]}]}:
        torch's layout, as a snapshot (buffers are copies: later steps do not change it)."""
        index, groups, position = {}, [], 0
        for group in self.param_groups:
            packed = {k: copy.copy(v) for k, v in group.items() if k != "params"}
            for p in group["params"]:
                index.setdefault(id(p), position)
                position += 1
            packed["params"] = [index[id(p)] for p in group["params"]]
            groups.append(packed)
        params = {id(p): p for group in self.param_groups for p in group["params"]}
        state = {index[key]: {k: _copy(v) for k, v in self.state[params[key]].items()}
                 for key in sorted(index, key=index.get) if params[key] in self.state}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restore a state_dict() of the same optimizer over the same parameters. Every buffer is
        copied (the caller's arrays are never written by later steps), moved to its parameter's
        device and cast to its dtype. Indices may be ints or strings (after JSON). Raises
        ValueError, before changing anything, for a state of another optimizer or model."""
        name = type(self).__name__
        if not isinstance(state_dict, dict) or "state" not in state_dict or "param_groups" not in state_dict:
            got = sorted(map(str, state_dict)) if isinstance(state_dict, dict) else type(state_dict).__name__
            raise ValueError(f"{name}.load_state_dict: expected what state_dict() returns, a dict with 'state' "
                             f"and 'param_groups', got {got}")
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"loaded state dict has a different number of parameter groups: {len(saved_groups)} "
                             f"in the state, {len(self.param_groups)} in this {name}")
        id_map = {}
        for i, (group, saved) in enumerate(zip(self.param_groups, saved_groups)):
            if len(group["params"]) != len(saved["params"]):
                raise ValueError(f"loaded state dict contains a parameter group that doesn't match the size of "
                                 f"optimizer's group: group {i} has {len(saved['params'])} parameters in the state, "
                                 f"{len(group['params'])} here (is it the state of another model?)")
            missing = [k for k in self.defaults if k not in saved]
            if missing:
                raise ValueError(f"{name}.load_state_dict: parameter group {i} of the state lacks the options "
                                 f"{missing}: is it the state of another optimizer?")
            id_map.update(zip((int(k) for k in saved["params"]), group["params"]))
        state = defaultdict(dict)
        for key, buffers in state_dict["state"].items():
            index = int(key)
            if index not in id_map:
                raise ValueError(f"{name}.load_state_dict: the state has buffers for parameter {index}, but its "
                                 f"parameter groups list only {sorted(id_map)}")
            p = id_map[index]
            state[p] = {k: _cast(v, p, k, index) for k, v in buffers.items()}
        groups = []
        for group, saved in zip(self.param_groups, saved_groups):
            # JSON turns tuples (betas) into lists: back to tuples
            new = {k: tuple(v) if isinstance(v, list) else copy.copy(v) for k, v in saved.items()
                   if k not in ("params", "param_names")}
            new["params"] = group["params"]
            names = saved.get("param_names", group.get("param_names"))
            if names is not None:
                new["param_names"] = list(names)
            groups.append(new)
        for i, group in enumerate(groups):
            self._check(group, f" (in parameter group {i} of the loaded state)")
        self.state, self.param_groups = state, groups

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {group[k]}" for k in sorted(group) if k != "params"]
        return "\n".join(lines) + "\n)"


def _gradient(p):
    """p's gradient array, or None when p is not stepped (no gradient, or frozen)."""
    if p.grad is None or not p.requires_grad:
        return None
    if not isinstance(p.grad, Tensor):
        raise TypeError(f"assigned grad expected to be a Tensor or None but got grad of type "
                        f"{type(p.grad).__name__}: set p.grad = minicnn.tensor(array), or let backward() fill it")
    grad = p.grad.array
    if grad.shape != p.array.shape or grad.dtype != p.array.dtype or type(grad) is not type(p.array):
        raise RuntimeError(f"a parameter of shape {tuple(p.array.shape)} ({p.array.dtype}, {p.device}) has a "
                           f"gradient of shape {tuple(grad.shape)} ({grad.dtype}, {p.grad.device}): they must "
                           "match; was .grad assigned by hand?")
    return grad


def _copy(value):
    if isinstance(value, Tensor):
        return Tensor._wrap(value.array.copy())
    return copy.deepcopy(value)


_SCALAR_STATE = ("step", "mu_product")  # one number per parameter, not an array of its shape


def _cast(value, p, key, index):
    """A copy of a loaded state value for parameter p: arrays on p's device and, when p is floating
    point, in p's dtype; 'step' (and NAdam's 'mu_product') stays a Python number."""
    if isinstance(value, Tensor):
        value = value.array
    if not (hasattr(value, "shape") and hasattr(value, "dtype")):
        return copy.deepcopy(value)
    if key in _SCALAR_STATE:
        number = value.item()
        return int(number) if float(number).is_integer() else number
    if tuple(value.shape) != tuple(p.array.shape):
        raise ValueError(f"loaded state dict: the {key!r} of parameter {index} has shape {tuple(value.shape)}, the "
                         f"parameter has shape {tuple(p.array.shape)}: is it the state of another model?")
    value = _move(value, p.device)
    return Tensor._wrap(value.astype(p.array.dtype if p.array.dtype.kind == "f" else value.dtype))  # a copy


def _typename(x):
    return f"minicnn.{type(x).__name__}" if isinstance(x, Tensor) else type(x).__name__


def _check_number(options, name, where):
    """ValueError unless options[name] >= 0, in torch's words ('Invalid learning rate: -1')."""
    words = {"lr": "learning rate", "eps": "epsilon value"}.get(name, f"{name} value")
    value = options[name]
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r}{where}")
    if not value >= 0:
        raise ValueError(f"Invalid {words}: {value}{where}: {name} must be >= 0")


def _check_betas(options, where):
    """ValueError unless options['betas'] is a pair in [0, 1), in torch's words."""
    betas = options["betas"]
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}{where}")
    for i, beta in enumerate(betas):
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"Invalid beta parameter at index {i}: {beta}{where}: betas must be in [0, 1)")


# torch's switches for its other code paths; minicnn has one plain path on arrays
_TORCH_ONLY = {
    "capturable": "capturing the step in a CUDA graph",
    "differentiable": "autograd through the step itself",
    "fused": "torch's fused kernel",
}


def _check_one_path(optimizer, options, where):
    """foreach is accepted and ignored (minicnn steps one parameter at a time either way);
    capturable=True, differentiable=True and fused=True are refused: minicnn has no such path."""
    for flag, what in _TORCH_ONLY.items():
        if options.get(flag):
            raise ValueError(f"{type(optimizer).__name__}: {flag}=True ({what}) is not supported by minicnn, "
                             f"which has one plain path{where}: leave {flag} out (or set it to "
                             f"{None if flag == 'fused' else False})")


def _first_state(state, p, *names):
    """On a parameter's first step: state['step'] = 0 and, for each name, a zero Tensor of p's
    shape (the optimizer's own buffer, updated in place). Later steps: state as it is."""
    if not state:
        xp = get_array_module(p.array)
        state["step"] = 0
        for name in names:
            state[name] = Tensor._wrap(xp.zeros_like(p.array))
    return state


def _check_adam_family(optimizer, options, where):
    """The options the Adam family shares: lr, eps, betas, weight_decay, and one code path."""
    for name in ("lr", "eps"):
        _check_number(options, name, where)
    _check_betas(options, where)
    _check_number(options, "weight_decay", where)
    _check_one_path(optimizer, options, where)
