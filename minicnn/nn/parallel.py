"""torch.nn.parallel's names for one device: scripts wrap their network in DataParallel when a
GPU is there (`net = torch.nn.DataParallel(net)`). minicnn runs on one device, so the wrapper
runs the module as it is; it keeps torch's layout, the module under `.module` (state_dict keys
'module.conv1.weight', ...), so checkpoints move between the two."""

from .module import Module


class DataParallel(Module):
    """module(*inputs) on one device. device_ids, output_device and dim are accepted; more than one
    device id is an error (minicnn does not split a batch across GPUs)."""

    def __init__(self, module, device_ids=None, output_device=None, dim=0):
        super().__init__()
        if device_ids is not None and len(list(device_ids)) > 1:
            raise ValueError(f"DataParallel: device_ids={list(device_ids)}: minicnn runs on one device; "
                             "leave device_ids out")
        self.module = module
        self.dim = dim

    def forward(self, *inputs, **kwargs):
        return self.module(*inputs, **kwargs)


def data_parallel(module, inputs, device_ids=None, output_device=None, dim=0, module_kwargs=None):
    """module(*inputs) on one device (see DataParallel)."""
    if device_ids is not None and len(list(device_ids)) > 1:
        raise ValueError(f"data_parallel: device_ids={list(device_ids)}: minicnn runs on one device")
    inputs = inputs if isinstance(inputs, tuple) else (inputs,)
    return module(*inputs, **(module_kwargs or {}))
