"""torchvision's SqueezeNet (Iandola et al., "SqueezeNet: AlexNet-level accuracy with 50x fewer
parameters and <0.5MB model size", 2016).

    squeezenet1_0()   the paper's network                               1,248,424 parameters
    squeezenet1_1()   SqueezeNet 1.1: 3x3 first convolution, earlier    1,235,496 parameters
                      pools, 2.4x less computation, same accuracy

(N, 3, H, W) -> features (a convolution, three 3x3 stride-2 max-pools with ceil_mode, eight Fire
modules) -> (N, 512, h, w) -> classifier (Dropout, 1x1 convolution to num_classes, ReLU, global
average pool) -> flatten -> (N, num_classes). H = W = 224 gives h = w = 13; the smallest input
is 21x21 for 1.0, 17x17 for 1.1.
"""

from ... import cat, nn
from ._weights import refuse_weights


class Fire(nn.Module):
    """squeeze (1x1 conv to few channels, ReLU), then two expands side by side (1x1 and 3x3 convs, ReLU),
    their outputs joined along C: (N, inplanes, H, W) -> (N, expand1x1_planes + expand3x3_planes, H, W)."""

    def __init__(self, inplanes, squeeze_planes, expand1x1_planes, expand3x3_planes):
        super().__init__()
        self.inplanes = inplanes
        self.squeeze = nn.Conv2d(inplanes, squeeze_planes, kernel_size=1)
        self.squeeze_activation = nn.ReLU(inplace=True)
        self.expand1x1 = nn.Conv2d(squeeze_planes, expand1x1_planes, kernel_size=1)
        self.expand1x1_activation = nn.ReLU(inplace=True)
        self.expand3x3 = nn.Conv2d(squeeze_planes, expand3x3_planes, kernel_size=3, padding=1)
        self.expand3x3_activation = nn.ReLU(inplace=True)

    def forward(self, x):
        x = self.squeeze_activation(self.squeeze(x))
        return cat([self.expand1x1_activation(self.expand1x1(x)),
                    self.expand3x3_activation(self.expand3x3(x))], 1)


class SqueezeNet(nn.Module):
    """version "1_0" or "1_1": (N, 3, H, W) -> (N, num_classes) logits (see the module docstring).

    Init as torchvision's: kaiming_uniform_ (fan_in, gain sqrt(2)) for every convolution but the
    last, N(0, 0.01^2) for the last (classifier.1), biases 0. dropout: the classifier's Dropout.
    """

    def __init__(self, version="1_0", num_classes=1000, dropout=0.5):
        super().__init__()
        self.num_classes = num_classes
        pool = lambda: nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True)  # noqa: E731
        if version == "1_0":
            self.features = nn.Sequential(
                nn.Conv2d(3, 96, kernel_size=7, stride=2), nn.ReLU(inplace=True), pool(),
                Fire(96, 16, 64, 64), Fire(128, 16, 64, 64), Fire(128, 32, 128, 128), pool(),
                Fire(256, 32, 128, 128), Fire(256, 48, 192, 192), Fire(384, 48, 192, 192), Fire(384, 64, 256, 256),
                pool(),
                Fire(512, 64, 256, 256),
            )
        elif version == "1_1":
            self.features = nn.Sequential(
                nn.Conv2d(3, 64, kernel_size=3, stride=2), nn.ReLU(inplace=True), pool(),
                Fire(64, 16, 64, 64), Fire(128, 16, 64, 64), pool(),
                Fire(128, 32, 128, 128), Fire(256, 32, 128, 128), pool(),
                Fire(256, 48, 192, 192), Fire(384, 48, 192, 192), Fire(384, 64, 256, 256), Fire(512, 64, 256, 256),
            )
        else:
            raise ValueError(f"SqueezeNet: unsupported version {version!r}: '1_0' or '1_1' expected")
        final_conv = nn.Conv2d(512, num_classes, kernel_size=1)
        self.classifier = nn.Sequential(nn.Dropout(p=dropout), final_conv, nn.ReLU(inplace=True),
                                        nn.AdaptiveAvgPool2d((1, 1)))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                if m is final_conv:
                    nn.init.normal_(m.weight, mean=0.0, std=0.01)
                else:
                    nn.init.kaiming_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.constant_(m.bias, 0)

    def forward(self, x):
        x = self.classifier(self.features(x))  # (N, num_classes, 1, 1)
        return x.flatten(1)


def squeezenet1_0(*, weights=None, progress=True, **kwargs):
    """SqueezeNet 1.0: (N, 3, H, W) -> (N, num_classes), 1,248,424 parameters with num_classes=1000.

    kwargs go to SqueezeNet (num_classes, dropout). weights must be None: minicnn downloads nothing
    (the error says how to load torchvision's .pth file). progress is ignored.
    """
    refuse_weights("squeezenet1_0", weights, kwargs)
    return SqueezeNet("1_0", **kwargs)


def squeezenet1_1(*, weights=None, progress=True, **kwargs):
    """SqueezeNet 1.1: (N, 3, H, W) -> (N, num_classes), 1,235,496 parameters (see squeezenet1_0)."""
    refuse_weights("squeezenet1_1", weights, kwargs)
    return SqueezeNet("1_1", **kwargs)
