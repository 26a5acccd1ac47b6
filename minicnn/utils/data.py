"""torch.utils.data's names, so that `from torch.utils.data import DataLoader` runs on minicnn.

Only names: the one implementation is minicnn.data (dataset.py, collate.py, loader.py).
"""

from ..data.collate import default_collate
from ..data.dataset import ConcatDataset, Dataset, Subset, TensorDataset, random_split
from ..data.loader import DataLoader

__all__ = ["Dataset", "TensorDataset", "Subset", "ConcatDataset", "random_split", "default_collate", "DataLoader"]
