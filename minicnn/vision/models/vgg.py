"""torchvision's VGG (Simonyan and Zisserman, "Very Deep Convolutional Networks for Large-Scale
Image Recognition", 2015), configurations A (11 layers) and D (16 layers), with and without batch norm.

    vgg11()      132,863,336 parameters      vgg11_bn()   132,868,840
    vgg16()      138,357,544 parameters      vgg16_bn()   138,365,992

(N, 3, H, W) -> features (3x3 convolutions, padding 1, each + ReLU, or + BatchNorm2d + ReLU; five
2x2 max-pools: (N, 512, H/32, W/32)) -> avgpool to 7x7 -> flatten 25088 -> classifier (Linear 4096,
ReLU, Dropout, Linear 4096, ReLU, Dropout, Linear num_classes). Any H, W >= 32 works: the adaptive
pool repeats a 1x1 map 49 times. Keys as torchvision's: features.0.weight, classifier.6.bias, ...

This is the ImageNet VGG; minicnn.models.vgg11_bn is the small CIFAR variant (one Linear head).
"""

from ... import nn
from ._weights import refuse_weights

# the channels of each 3x3 convolution, "M" a 2x2 max-pool (the columns of the paper's Table 1)
cfgs = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


def make_layers(cfg, batch_norm=False):
    """The features Sequential of a cfg: (N, 3, H, W) -> (N, last channels, H / 2^pools, W / 2^pools)."""
    layers, in_channels = [], 3
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            conv = nn.Conv2d(in_channels, v, kernel_size=3, padding=1)
            layers += [conv, nn.BatchNorm2d(v), nn.ReLU(inplace=True)] if batch_norm else [conv, nn.ReLU(inplace=True)]
            in_channels = v
    return nn.Sequential(*layers)


class VGG(nn.Module):
    """features (N, 3, H, W) -> (N, 512, h, w), then avgpool (N, 512, 7, 7) -> classifier -> (N, num_classes).

    init_weights (torchvision's): kaiming_normal_(fan_out, relu) and bias 0 for the convolutions,
    weight 1 and bias 0 for BatchNorm2d, N(0, 0.01^2) and bias 0 for the Linear layers.
    dropout: the probability of both Dropout layers of the classifier.
    """

    def __init__(self, features, num_classes=1000, init_weights=True, dropout=0.5):
        super().__init__()
        self.features = features
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096), nn.ReLU(True), nn.Dropout(p=dropout),
            nn.Linear(4096, 4096), nn.ReLU(True), nn.Dropout(p=dropout),
            nn.Linear(4096, num_classes),
        )
        if init_weights:
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                    if m.bias is not None:
                        nn.init.constant_(m.bias, 0)
                elif isinstance(m, nn.BatchNorm2d):
                    nn.init.constant_(m.weight, 1)
                    nn.init.constant_(m.bias, 0)
                elif isinstance(m, nn.Linear):
                    nn.init.normal_(m.weight, 0, 0.01)
                    nn.init.constant_(m.bias, 0)

    def forward(self, x):
        x = self.avgpool(self.features(x)).flatten(1)  # (N, 512 * 7 * 7)
        return self.classifier(x)


def _vgg(name, cfg, batch_norm, weights, kwargs):
    refuse_weights(name, weights, kwargs)
    return VGG(make_layers(cfgs[cfg], batch_norm=batch_norm), **kwargs)


def vgg11(*, weights=None, progress=True, **kwargs):
    """VGG-11 (configuration A): (N, 3, H, W) -> (N, num_classes), 132,863,336 parameters.

    kwargs go to VGG (num_classes, init_weights, dropout). weights must be None: minicnn downloads
    nothing (the error says how to load torchvision's .pth file). progress is ignored.
    """
    return _vgg("vgg11", "A", False, weights, kwargs)


def vgg11_bn(*, weights=None, progress=True, **kwargs):
    """VGG-11 with batch norm after each convolution: 132,868,840 parameters (see vgg11)."""
    return _vgg("vgg11_bn", "A", True, weights, kwargs)


def vgg16(*, weights=None, progress=True, **kwargs):
    """VGG-16 (configuration D): (N, 3, H, W) -> (N, num_classes), 138,357,544 parameters (see vgg11)."""
    return _vgg("vgg16", "D", False, weights, kwargs)


def vgg16_bn(*, weights=None, progress=True, **kwargs):
    """VGG-16 with batch norm after each convolution: 138,365,992 parameters (see vgg11)."""
    return _vgg("vgg16_bn", "D", True, weights, kwargs)
