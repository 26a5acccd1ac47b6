"""torchvision's names: `import minicnn.vision as torchvision`, then torchvision.datasets.MNIST,
torchvision.transforms.ToTensor, torchvision.utils.make_grid.

Only names: the one implementation is minicnn.data.
"""

from . import datasets, transforms, utils  # noqa: F401
