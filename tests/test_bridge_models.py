"""Every model of minicnn.models crosses to torch and back through torch's own .pth files:
minicnn.save writes what torch.load reads, torch.save writes what minicnn.load reads, the
arrays come back bit for bit, and the logits agree within float32 rounding after each crossing."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import minicnn  # noqa: E402
from minicnn import models  # noqa: E402
from test_models import CASES  # noqa: E402
from test_resnet import TWINS, randomised  # noqa: E402

MODELS = [(name, twin, shape) for name, twin, shape in CASES] + [
    (name, TWINS[name], (2, 3, 32, 32)) for name in sorted(TWINS)]


def logits(model, x):
    model.eval()
    with minicnn.no_grad():
        return model(minicnn.from_numpy(x)).numpy()


def torch_logits(model, x):
    model.eval()
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


@pytest.mark.parametrize("name, twin, shape", MODELS, ids=[m[0] for m in MODELS])
def test_minicnn_to_torch_and_back_keeps_every_array_and_the_logits(tmp_path, name, twin, shape):
    minicnn.manual_seed(0)
    ours = randomised(models.get_model(name))
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    minicnn.save(ours.state_dict(), tmp_path / "ours.pth")

    theirs = twin()
    theirs.load_state_dict(torch.load(tmp_path / "ours.pth", weights_only=True))
    np.testing.assert_allclose(torch_logits(theirs, x), logits(ours, x), rtol=1e-4, atol=1e-5)

    torch.save(theirs.state_dict(), tmp_path / "theirs.pth")
    back = models.get_model(name)
    back.load_state_dict(minicnn.load(tmp_path / "theirs.pth"))
    for (key, a), (key_back, b) in zip(ours.state_dict().items(), back.state_dict().items()):
        assert key == key_back and a.dtype == b.dtype
        assert np.array_equal(a.numpy(), b.numpy()), key
    assert np.array_equal(logits(back, x), logits(ours, x))


@pytest.mark.parametrize("name, twin, shape", MODELS, ids=[m[0] for m in MODELS])
def test_torch_to_minicnn_and_back_keeps_every_array_and_the_logits(tmp_path, name, twin, shape):
    torch.manual_seed(0)
    theirs = twin()
    with torch.no_grad():  # random batch-norm statistics, so they show in the logits
        for m in theirs.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
    x = np.random.default_rng(2).standard_normal(shape).astype(np.float32)
    torch.save(theirs.state_dict(), tmp_path / "theirs.pth")

    ours = models.get_model(name)
    ours.load_state_dict(minicnn.load(tmp_path / "theirs.pth"))
    np.testing.assert_allclose(logits(ours, x), torch_logits(theirs, x), rtol=1e-4, atol=1e-5)

    minicnn.save(ours.state_dict(), tmp_path / "ours.pth")
    back = twin()
    back.load_state_dict(torch.load(tmp_path / "ours.pth", weights_only=True))
    for (key, a), (key_back, b) in zip(theirs.state_dict().items(), back.state_dict().items()):
        assert key == key_back and a.dtype == b.dtype
        assert torch.equal(a, b), key
