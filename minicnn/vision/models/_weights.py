"""The `weights` and `pretrained` arguments of torchvision's builders: minicnn downloads nothing.

A builder takes weights=None (the default) or pretrained=False and returns a randomly initialised
network. Anything else stops with a message that says how to load torchvision's file by hand.
"""

# Where torchvision keeps its ImageNet weights, by model and weights name: for the message only.
_ROOT = "https://download.pytorch.org/models/"
URLS = {
    "resnet18": {"IMAGENET1K_V1": "resnet18-f37072fd.pth"},
    "resnet34": {"IMAGENET1K_V1": "resnet34-b627a593.pth"},
    "resnet50": {"IMAGENET1K_V1": "resnet50-0676ba61.pth", "IMAGENET1K_V2": "resnet50-11ad3fa6.pth"},
    "vgg11": {"IMAGENET1K_V1": "vgg11-8a719046.pth"},
    "vgg11_bn": {"IMAGENET1K_V1": "vgg11_bn-6002323d.pth"},
    "vgg16": {"IMAGENET1K_V1": "vgg16-397923af.pth"},
    "vgg16_bn": {"IMAGENET1K_V1": "vgg16_bn-6c64b313.pth"},
    "mobilenet_v2": {"IMAGENET1K_V1": "mobilenet_v2-b0353104.pth", "IMAGENET1K_V2": "mobilenet_v2-7ebf99e0.pth"},
    "alexnet": {"IMAGENET1K_V1": "alexnet-owt-7be5be79.pth"},
    "squeezenet1_0": {"IMAGENET1K_V1": "squeezenet1_0-b66bff10.pth"},
    "squeezenet1_1": {"IMAGENET1K_V1": "squeezenet1_1-b8a52dc0.pth"},
}


def refuse_weights(builder, weights, kwargs):
    """Check a builder's weights (and a legacy pretrained in kwargs, removed from it).

    Returns nothing when no trained weights were asked for (weights=None, pretrained=False); else
    raises NotImplementedError naming the file torchvision would have downloaded and the two lines
    that load it. As torchvision: pretrained=True means IMAGENET1K_V1, "DEFAULT" the newest weights.
    """
    pretrained = kwargs.pop("pretrained", False)
    if weights is None and not pretrained:
        return
    files = URLS[builder]
    if weights is None:
        asked, name = f"pretrained={pretrained!r}", "IMAGENET1K_V1"
    else:  # a string, or an enum of real torchvision, which prints as 'ResNet18_Weights.IMAGENET1K_V1'
        asked, name = f"weights={weights!r}", str(weights).rsplit(".", 1)[-1]
        if name == "DEFAULT":
            name = list(files)[-1]
    if name in files:
        fetch = f"Download {_ROOT}{files[name]} (torchvision's {name}), then"
        file = files[name]
    else:
        fetch = f"torchvision's weights for {builder} are {', '.join(files)}; download one (see its docs), then"
        file = f"{builder}.pth"
    raise NotImplementedError(
        f"{builder}({asked}): minicnn downloads no weights, so weights=None is the only choice. {fetch} load "
        f"the file into the network (`import minicnn as torch`: torch.load reads torch's .pth files):\n"
        f"    model = torchvision.models.{builder}()\n"
        f"    model.load_state_dict(torch.load({file!r}))"
    )
