"""torch.utils: `minicnn.utils.data` holds torch.utils.data's names."""

from . import data  # noqa: F401
