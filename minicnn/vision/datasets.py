"""torchvision.datasets' names: MNIST, FashionMNIST, CIFAR10 (implemented in minicnn.data.datasets).

    MNIST(root, train=True, transform=None, target_transform=None, download=None)

ds[i] is (image, label): the image a PIL Image when Pillow is installed, otherwise a uint8 array
(H, W) or (H, W, C), through `transform`. root is searched in torchvision's layout
(root/MNIST/raw/, root/FashionMNIST/raw/, root/cifar-10-batches-py/) and minicnn's; a root that
holds no data is an error. download=None means False when a root is given, as torchvision.
"""

from ..data.datasets import CIFAR10, MNIST, FashionMNIST

__all__ = ["MNIST", "FashionMNIST", "CIFAR10"]
