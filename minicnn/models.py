"""The classic networks, built from minicnn.nn layers.

    lenet5()           LeCun et al. (1998), tanh and average pooling      61,706 parameters
    lenet5_sigmoid()   the LeNet of Dive into Deep Learning, chapter 7.6  61,706 parameters
    cifar_cnn()        two 3x3 conv blocks (32, 64 channels), as in many  2,122,186 parameters
                       CIFAR-10 tutorials
    cifar_small_cnn()  a CIFAR-10 CNN small enough to train on a laptop CPU  76,922 parameters
    resnet20()         He et al. (2016), section 4.2: the CIFAR-10 ResNet  269,722 parameters
                       with 20 layers (option A shortcuts)
    vgg11_bn()         VGG-11 (Simonyan and Zisserman, 2015) with batch    9,231,114 parameters
                       norm, for 32x32 images (the common CIFAR variant)

The first four return an nn.Sequential, so net[:k] is the network up to layer k (for feature
maps) and net[0] the first convolution (for its filters). resnet20 and vgg11_bn are Modules with
a forward of their own, written as the torch code of the usual CIFAR repositories, so their
state_dict keys are those of the same classes in torch (conv1.weight, layer2.0.bn1.running_mean,
features.0.weight, ...). get_model(name, **kwargs) builds one by name: that is how a
checkpoint's meta ('model', 'model_kwargs') rebuilds its network.
"""

from . import nn
from .nn import functional as F


def lenet5(num_classes=10):
    """LeNet-5 for (N, 1, 28, 28) digits -> (N, num_classes) logits.

    The 28x28 input is padded by 2 to the 32x32 of the original paper:
    (1, 28, 28) -conv5,pad2-> (6, 28, 28) -pool-> (6, 14, 14) -conv5-> (16, 10, 10)
    -pool-> (16, 5, 5) -conv5-> (120, 1, 1) -> 120 -> 84 -> num_classes.
    """
    return nn.Sequential(
        nn.Conv2d(1, 6, kernel_size=5, padding=2), nn.Tanh(), nn.AvgPool2d(2),
        nn.Conv2d(6, 16, kernel_size=5), nn.Tanh(), nn.AvgPool2d(2),
        nn.Conv2d(16, 120, kernel_size=5), nn.Tanh(),
        nn.Flatten(),
        nn.Linear(120, 84), nn.Tanh(),
        nn.Linear(84, num_classes),
    )


def lenet5_sigmoid(num_classes=10):
    """The LeNet of D2L (d2l.ai, "Convolutional Neural Networks (LeNet)"): sigmoid activations.

    (1, 28, 28) -conv5,pad2-> (6, 28, 28) -pool-> (6, 14, 14) -conv5-> (16, 10, 10)
    -pool-> (16, 5, 5) -flatten-> 400 -> 120 -> 84 -> num_classes.
    """
    return nn.Sequential(
        nn.Conv2d(1, 6, kernel_size=5, padding=2), nn.Sigmoid(), nn.AvgPool2d(2, stride=2),
        nn.Conv2d(6, 16, kernel_size=5), nn.Sigmoid(), nn.AvgPool2d(2, stride=2),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120), nn.Sigmoid(),
        nn.Linear(120, 84), nn.Sigmoid(),
        nn.Linear(84, num_classes),
    )


def cifar_cnn(num_classes=10):
    """(N, 3, 32, 32) colour images -> (N, num_classes) logits.

    (3, 32, 32) -conv3,pad1-> (32, 32, 32) -pool-> (32, 16, 16) -conv3,pad1-> (64, 16, 16)
    -pool-> (64, 8, 8) -flatten-> 4096 -> 512 -> num_classes.
    """
    return nn.Sequential(
        nn.Conv2d(3, 32, kernel_size=3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, kernel_size=3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * 8 * 8, 512), nn.ReLU(),
        nn.Linear(512, num_classes),
    )


def cifar_small_cnn(num_classes=10):
    """(N, 3, 32, 32) -> (N, num_classes): 76,922 parameters, quick on a CPU.

    (3, 32, 32) -conv5-> (8, 28, 28) -pool-> (8, 14, 14) -conv3-> (16, 12, 12)
    -pool-> (16, 6, 6) -flatten-> 576 -> 128 -> num_classes.
    """
    return nn.Sequential(
        nn.Conv2d(3, 8, kernel_size=5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, kernel_size=3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * 6 * 6, 128), nn.ReLU(),
        nn.Linear(128, num_classes),
    )


# -- ResNet for CIFAR-10 (He et al., "Deep Residual Learning for Image Recognition", 2016, 4.2) --------


class PadShortcut(nn.Module):
    """Option A of the paper: the identity, made to fit a block that halves H, W and widens C.

    (N, C, H, W) -> (N, C + 2 * pad, ceil(H / 2), ceil(W / 2)): every second pixel, and `pad`
    channels of zeros on each side of the C kept. No parameters; its gradient is the one of the
    slice (every second pixel gets dout, the others 0) and of the pad (the middle C channels).
    """

    def __init__(self, pad):
        super().__init__()
        self.pad = pad

    def forward(self, x):
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad), "constant", 0)

    def extra_repr(self):
        return f"pad={self.pad}"


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm, and the input added back: relu(F(x) + shortcut(x)).

    (N, in_planes, H, W) -> (N, planes, H / stride, W / stride). The shortcut is the identity
    when the shapes agree, else option A (PadShortcut: parameter-free).
    """

    expansion = 1

    def __init__(self, in_planes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = PadShortcut((planes - in_planes) // 2)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out = out + self.shortcut(x)  # the residual: the shortcut's gradient is dout itself
        return F.relu(out)


class ResNet(nn.Module):
    """The CIFAR ResNet of depth 6n + 2: (N, 3, 32, 32) -> (N, num_classes) logits.

    conv3x3(16) + BN + ReLU, then three stages of n BasicBlocks, (16, 32, 32) -> (32, 16, 16)
    -> (64, 8, 8) (stride 2 at the first block of stages 2 and 3), global average pooling over
    the 8x8 maps and Linear(64, num_classes). The convolutions have no bias (batch norm follows)
    and start from kaiming_normal_ (fan_in, gain sqrt(2)), as the usual CIFAR ResNet code
    (akamaster/pytorch_resnet_cifar10); batch norm starts at weight 1, bias 0, and the Linear
    at torch's default.
    """

    def __init__(self, block, num_blocks, num_classes=10):
        super().__init__()
        self.in_planes = 16
        self.conv1 = nn.Conv2d(3, 16, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = self._make_layer(block, 16, num_blocks[0], stride=1)
        self.layer2 = self._make_layer(block, 32, num_blocks[1], stride=2)
        self.layer3 = self._make_layer(block, 64, num_blocks[2], stride=2)
        self.linear = nn.Linear(64 * block.expansion, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)

    def _make_layer(self, block, planes, num_blocks, stride):
        layers = []
        for s in [stride] + [1] * (num_blocks - 1):
            layers.append(block(self.in_planes, planes, s))
            self.in_planes = planes * block.expansion
        return nn.Sequential(*layers)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer1(out)
        out = self.layer2(out)
        out = self.layer3(out)
        out = F.avg_pool2d(out, out.size()[3])  # global average pooling: (N, 64, 8, 8) -> (N, 64, 1, 1)
        out = out.view(out.size(0), -1)
        return self.linear(out)


def resnet20(num_classes=10):
    """ResNet-20 (n = 3) for (N, 3, 32, 32) CIFAR images: 269,722 parameters, the paper's 0.27 M.

    (Option B, 1x1 convolution + batch norm on the two widening shortcuts, would add 2,752: 272,474.)
    """
    return ResNet(BasicBlock, [3, 3, 3], num_classes)


# -- VGG with batch norm, for 32x32 images ----------------------------------------------------------

VGG11 = [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]  # channels, or "M": max-pool 2x2


class VGG(nn.Module):
    """VGG for 32x32 images: (N, 3, 32, 32) -> (N, num_classes) logits.

    features: for each number c of cfg, Conv2d(c, 3x3, padding 1) + BatchNorm2d + ReLU; for each
    "M", MaxPool2d(2). Five pools take 32x32 to 1x1, so (N, 512, 1, 1) -> flatten -> 512 ->
    classifier Linear(512, num_classes). This is the common CIFAR variant (kuangliu/pytorch-cifar);
    ImageNet's VGG has a 7x7 pool and three Linear layers of 4096 instead (123 M parameters more).
    """

    def __init__(self, cfg, num_classes=10):
        super().__init__()
        self.features = self._make_layers(cfg)
        self.classifier = nn.Linear(512, num_classes)

    @staticmethod
    def _make_layers(cfg):
        layers, in_channels = [], 3
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(in_channels, v, kernel_size=3, padding=1), nn.BatchNorm2d(v), nn.ReLU()]
                in_channels = v
        return nn.Sequential(*layers)

    def forward(self, x):
        out = self.features(x)
        out = out.view(out.size(0), -1)
        return self.classifier(out)


def vgg11_bn(num_classes=10):
    """VGG-11 with batch norm for (N, 3, 32, 32) images: 9,231,114 parameters (see VGG)."""
    return VGG(VGG11, num_classes)


MODELS = {
    "lenet5": lenet5,
    "lenet5_sigmoid": lenet5_sigmoid,
    "cifar_cnn": cifar_cnn,
    "cifar_small_cnn": cifar_small_cnn,
    "resnet20": resnet20,
    "vgg11_bn": vgg11_bn,
}


def get_model(name, **kwargs):
    """The network called `name` (a key of MODELS), built with kwargs (e.g. num_classes=10)."""
    if name not in MODELS:
        raise ValueError(f"get_model: unknown model {name!r}; expected one of {sorted(MODELS)}")
    try:
        return MODELS[name](**kwargs)
    except TypeError as exc:
        raise TypeError(f"get_model({name!r}): {exc}") from None
