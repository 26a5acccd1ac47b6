"""torchvision's names: `import minicnn.vision as torchvision`, then torchvision.datasets.MNIST,
torchvision.transforms.ToTensor, torchvision.utils.make_grid, torchvision.models.resnet18.

Only names: the one implementation of datasets and transforms is minicnn.data; models holds
torchvision's ImageNet networks (their one implementation) and re-exports minicnn.models' ones.
"""

from . import datasets, models, transforms, utils  # noqa: F401
