"""minicnn's public functions and classes take torch's arguments: the same names, in the same
order, of the same kind (positional, keyword-only), with the same defaults.

The check walks every public callable of minicnn's torch-named modules that torch also has,
and compares inspect.signature of both (a class by its __init__; annotations are not compared).
Where torch gives no signature (its C functions, and (*args, **kwargs) wrappers) nothing can
be compared, and the count of those is printed. Every difference found is listed; the ones
that are deliberate are in KNOWN with the reason, and the test fails on any other difference,
and on a KNOWN entry that is no longer a difference (so the table stays true).
"""

import importlib
import inspect

import pytest

torch = pytest.importorskip("torch")

PAIRS = [("minicnn", "torch"), ("minicnn.nn", "torch.nn"), ("minicnn.nn.functional", "torch.nn.functional"),
         ("minicnn.nn.init", "torch.nn.init"), ("minicnn.nn.utils", "torch.nn.utils"),
         ("minicnn.optim", "torch.optim"), ("minicnn.optim.lr_scheduler", "torch.optim.lr_scheduler"),
         ("minicnn.utils.data", "torch.utils.data"), ("minicnn.autograd", "torch.autograd"),
         ("minicnn.backends.cudnn", "torch.backends.cudnn"), ("minicnn.backends.mps", "torch.backends.mps")]

KNOWN = {
    "torch.norm": "minicnn's torch.norm passes its arguments on to Tensor.norm (input, p, dim, keepdim, dtype); "
                  "out= is not taken",
    "torch.save": "minicnn.save(obj, f) picks the format from the path; torch's pickle_module, pickle_protocol "
                  "and zipfile switches have no meaning for minicnn's writer",
    "torch.seed": "minicnn.seed(s) also seeds (minicnn's own programs call it so); with no argument it does what "
                  "torch.seed() does: seeds from the OS and returns the seed",
    "torch.utils.data.DataLoader": "minicnn adds seed= and transform= (a batch transform) after torch's arguments",
    "torch.utils.data.random_split": "torch's default is its default Generator object; minicnn's None means "
                                     "minicnn's generator (seeded by manual_seed)",
}


def _signature(obj):
    try:
        return inspect.signature(obj.__init__ if inspect.isclass(obj) else obj)
    except (TypeError, ValueError):
        return None


def _parameters(sig):
    """(name, kind, default) of each parameter but self; None when the signature says nothing."""
    params = [p for p in sig.parameters.values() if p.name != "self"]
    if params and all(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params):
        return None  # (*args, **kwargs): a wrapper, or a class whose __init__ is object's
    return [(p.name, p.kind.name, p.default) for p in params]


def _same_default(a, b):
    if a is inspect.Parameter.empty or b is inspect.Parameter.empty:
        return a is b
    try:
        return type(a) is type(b) and bool(a == b)
    except Exception:
        return False


def _differences():
    """{torch's qualified name: (minicnn's signature, torch's)} and the counts compared and skipped."""
    found, compared, unchecked = {}, 0, []
    import minicnn
    walks = [(importlib.import_module(m), importlib.import_module(t), t) for m, t in PAIRS]
    walks.append((minicnn.Tensor, torch.Tensor, "torch.Tensor"))  # the methods torch writes in Python
    for mine, theirs, theirs_name in walks:
        names = getattr(mine, "__all__", None) or [n for n in dir(mine) if not n.startswith("_")]
        for name in sorted(set(names)):
            a, b = getattr(mine, name, None), getattr(theirs, name, None)
            if b is None or not callable(a) or inspect.ismodule(a) or not callable(b):
                continue
            sa, sb = _signature(a), _signature(b)
            pa, pb = (_parameters(s) if s is not None else None for s in (sa, sb))
            if pb is None or pa is None:
                unchecked.append(f"{theirs_name}.{name}")
                continue
            compared += 1
            same = len(pa) == len(pb) and all(x[:2] == y[:2] and _same_default(x[2], y[2]) for x, y in zip(pa, pb))
            if not same:
                found[f"{theirs_name}.{name}"] = (str(sa), str(sb))
    return found, compared, unchecked


def test_public_signatures_are_torchs_except_the_known_differences(capsys):
    found, compared, unchecked = _differences()
    with capsys.disabled():
        print(f"\nsignatures compared with torch {torch.__version__}: {compared}; differing: {len(found)}; "
              f"torch gives none for {len(unchecked)}")
        for name, (mine, theirs) in sorted(found.items()):
            print(f"  {name}\n    minicnn {mine}\n    torch   {theirs}\n    why: {KNOWN.get(name, 'NOT KNOWN')}")
    assert compared >= 130, f"only {compared} signatures compared: the walk lost its modules"
    new = sorted(set(found) - set(KNOWN))
    assert not new, "signatures that differ from torch's: " + "; ".join(
        f"{n}: minicnn {found[n][0]} but torch {found[n][1]}" for n in new)
    stale = sorted(set(KNOWN) - set(found))
    assert not stale, f"KNOWN lists differences that are gone (take them out): {stale}"


def test_the_comparison_catches_a_renamed_argument_and_a_changed_default():
    def torchs(input, dim=None, *, keepdim=False):
        pass

    def renamed(x, dim=None, *, keepdim=False):
        pass

    def other_default(input, dim=0, *, keepdim=False):
        pass

    def positional(input, dim=None, keepdim=False):
        pass

    reference = _parameters(inspect.signature(torchs))
    assert _parameters(inspect.signature(torchs)) == reference
    for changed in (renamed, other_default, positional):
        pa = _parameters(inspect.signature(changed))
        assert not all(x[:2] == y[:2] and _same_default(x[2], y[2]) for x, y in zip(pa, reference))


def test_vision_models_take_torchvisions_arguments():
    """minicnn.vision.models against torchvision.models, where torchvision imports (see
    test_vision_models for how); every builder and class minicnn has is compared."""
    from test_vision_models import NO_TV, TV
    if TV is None:
        pytest.skip(NO_TV)
    import minicnn.vision.models as ours
    compared, found = 0, {}
    for name in [n for n in dir(ours) if not n.startswith("_")]:
        a, b = getattr(ours, name), getattr(TV.models, name, None)
        if b is None or not callable(a):
            continue
        pa, pb = _parameters(_signature(a)), _parameters(_signature(b))
        assert pa is not None and pb is not None, name
        compared += 1
        if not (len(pa) == len(pb) and all(x[:2] == y[:2] and _same_default(x[2], y[2]) for x, y in zip(pa, pb))):
            found[name] = (pa, pb)
    print(f"\nvision.models signatures compared with torchvision {TV.__version__}: {compared}")
    assert compared >= 15
    assert not found, found
