"""torchvision's AlexNet: the "one weird trick" variant (Krizhevsky, 2014) of the 2012 network,
one tower, 64-192-384-256-256 channels. 61,100,840 parameters.

(N, 3, H, W) -> features (five convolutions with ReLU, three 3x3 stride-2 max-pools) -> (N, 256, h, w)
-> avgpool to 6x6 -> flatten 9216 -> classifier (Dropout, Linear 4096, ReLU, Dropout, Linear 4096,
ReLU, Linear num_classes). H = W = 224 gives h = w = 6; the smallest input is 63x63 (h = w = 1).
"""

from ... import nn
from ._weights import refuse_weights


class AlexNet(nn.Module):
    """(N, 3, H >= 63, W >= 63) -> (N, num_classes) logits; dropout: both Dropout layers' probability.
    Every layer keeps torch's default init, as in torchvision."""

    def __init__(self, num_classes=1000, dropout=0.5):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout), nn.Linear(256 * 6 * 6, 4096), nn.ReLU(inplace=True),
            nn.Dropout(p=dropout), nn.Linear(4096, 4096), nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x):
        x = self.avgpool(self.features(x)).flatten(1)  # (N, 256 * 6 * 6)
        return self.classifier(x)


def alexnet(*, weights=None, progress=True, **kwargs):
    """AlexNet: (N, 3, H, W) -> (N, num_classes), 61,100,840 parameters with num_classes=1000.

    kwargs go to AlexNet (num_classes, dropout). weights must be None: minicnn downloads nothing
    (the error says how to load torchvision's .pth file). progress is ignored.
    """
    refuse_weights("alexnet", weights, kwargs)
    return AlexNet(**kwargs)
