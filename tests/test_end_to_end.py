"""The whole backward chain works: a small CNN (conv, pool, linear) learns a tiny
generated dataset of four stroke patterns until its loss is near zero."""

import numpy as np

import minicnn
from minicnn import nn, optim


def stroke_images(n=64, size=8, seed=0):
    """n images (n, 1, size, size) of four classes: a horizontal bar, a vertical bar, the
    diagonal, the anti-diagonal; at random positions, with a little noise."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 4
    images = rng.normal(0, 0.1, (n, 1, size, size))
    for img, label in zip(images, labels):
        k = rng.integers(1, size - 1)
        if label == 0:
            img[0, k, :] += 1
        elif label == 1:
            img[0, :, k] += 1
        elif label == 2:
            img[0] += np.eye(size)
        else:
            img[0] += np.eye(size)[::-1]
    return images.astype(np.float32), labels


def small_cnn():
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(8 * 2 * 2, 4),
    )


def test_a_small_cnn_drives_its_training_loss_near_zero(backend):
    minicnn.seed(0)
    images, labels = stroke_images()
    device = "cuda" if backend.__name__ == "cupy" else "cpu"
    x, y = minicnn.from_numpy(images).to(device), minicnn.from_numpy(labels).to(device)
    model, loss_fn = small_cnn().to(device), nn.CrossEntropyLoss()
    opt = optim.Adam(model.parameters(), lr=0.02)
    losses = []
    for _ in range(40):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[0] > 1.0  # chance level is log(4) = 1.39
    assert losses[-1] < 0.05, f"loss went from {losses[0]:.3f} to only {losses[-1]:.3f}"
    with minicnn.no_grad():
        predictions = model.eval()(x).argmax(dim=1)
    assert (predictions.cpu().numpy() == labels).all()
    assert all(p.dtype == minicnn.float32 and p.device == x.device for p in model.parameters())


def test_the_trained_model_generalises_to_fresh_images_of_the_same_patterns():
    minicnn.seed(1)
    images, labels = stroke_images(seed=1)
    model, loss_fn = small_cnn(), nn.CrossEntropyLoss()
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x, y = minicnn.from_numpy(images), minicnn.from_numpy(labels)
    for _ in range(60):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
    test_images, test_labels = stroke_images(n=64, seed=2)
    with minicnn.no_grad():
        predictions = model(minicnn.from_numpy(test_images)).argmax(dim=1).numpy()
    assert (predictions == test_labels).mean() >= 0.9
