"""The classic small networks, built from minicnn.nn layers as a Sequential.

    lenet5()           LeCun et al. (1998), tanh and average pooling      61,706 parameters
    lenet5_sigmoid()   the LeNet of Dive into Deep Learning, chapter 7.6  61,706 parameters
    cifar_cnn()        two 3x3 conv blocks (32, 64 channels), as in many  2,122,186 parameters
                       CIFAR-10 tutorials
    cifar_small_cnn()  a CIFAR-10 CNN small enough to train on a laptop CPU  76,922 parameters

Each returns an nn.Sequential, so net[:k] is the network up to layer k (for feature maps)
and net[0] the first convolution (for its filters). get_model(name, **kwargs) builds one by
name: that is how a checkpoint's meta ('model', 'model_kwargs') rebuilds its network.
"""

from . import nn


def lenet5(num_classes=10):
    """LeNet-5 for (N, 1, 28, 28) digits -> (N, num_classes) logits.

    The 28x28 input is padded by 2 to the 32x32 of the original paper:
    (1, 28, 28) -conv5,pad2-> (6, 28, 28) -pool-> (6, 14, 14) -conv5-> (16, 10, 10)
    -pool-> (16, 5, 5) -conv5-> (120, 1, 1) -> 120 -> 84 -> num_classes.
    """
    return nn.Sequential(
        nn.Conv2d(1, 6, kernel_size=5, padding=2), nn.Tanh(), nn.AvgPool2d(2),
        nn.Conv2d(6, 16, kernel_size=5), nn.Tanh(), nn.AvgPool2d(2),
        nn.Conv2d(16, 120, kernel_size=5), nn.Tanh(),
        nn.Flatten(),
        nn.Linear(120, 84), nn.Tanh(),
        nn.Linear(84, num_classes),
    )


def lenet5_sigmoid(num_classes=10):
    """The LeNet of D2L (d2l.ai, "Convolutional Neural Networks (LeNet)"): sigmoid activations.

    (1, 28, 28) -conv5,pad2-> (6, 28, 28) -pool-> (6, 14, 14) -conv5-> (16, 10, 10)
    -pool-> (16, 5, 5) -flatten-> 400 -> 120 -> 84 -> num_classes.
    """
    return nn.Sequential(
        nn.Conv2d(1, 6, kernel_size=5, padding=2), nn.Sigmoid(), nn.AvgPool2d(2, stride=2),
        nn.Conv2d(6, 16, kernel_size=5), nn.Sigmoid(), nn.AvgPool2d(2, stride=2),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120), nn.Sigmoid(),
        nn.Linear(120, 84), nn.Sigmoid(),
        nn.Linear(84, num_classes),
    )


def cifar_cnn(num_classes=10):
    """(N, 3, 32, 32) colour images -> (N, num_classes) logits.

    (3, 32, 32) -conv3,pad1-> (32, 32, 32) -pool-> (32, 16, 16) -conv3,pad1-> (64, 16, 16)
    -pool-> (64, 8, 8) -flatten-> 4096 -> 512 -> num_classes.
    """
    return nn.Sequential(
        nn.Conv2d(3, 32, kernel_size=3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, kernel_size=3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * 8 * 8, 512), nn.ReLU(),
        nn.Linear(512, num_classes),
    )


def cifar_small_cnn(num_classes=10):
    """(N, 3, 32, 32) -> (N, num_classes): 76,922 parameters, quick on a CPU.

    (3, 32, 32) -conv5-> (8, 28, 28) -pool-> (8, 14, 14) -conv3-> (16, 12, 12)
    -pool-> (16, 6, 6) -flatten-> 576 -> 128 -> num_classes.
    """
    return nn.Sequential(
        nn.Conv2d(3, 8, kernel_size=5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, kernel_size=3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * 6 * 6, 128), nn.ReLU(),
        nn.Linear(128, num_classes),
    )


MODELS = {
    "lenet5": lenet5,
    "lenet5_sigmoid": lenet5_sigmoid,
    "cifar_cnn": cifar_cnn,
    "cifar_small_cnn": cifar_small_cnn,
}


def get_model(name, **kwargs):
    """The network called `name` (a key of MODELS), built with kwargs (e.g. num_classes=10)."""
    if name not in MODELS:
        raise ValueError(f"get_model: unknown model {name!r}; expected one of {sorted(MODELS)}")
    try:
        return MODELS[name](**kwargs)
    except TypeError as exc:
        raise TypeError(f"get_model({name!r}): {exc}") from None
