"""torchvision's ImageNet ResNets (He et al., "Deep Residual Learning for Image Recognition", 2016).

    resnet18()   BasicBlock x [2, 2, 2, 2]   11,689,512 parameters
    resnet34()   BasicBlock x [3, 4, 6, 3]   21,797,672 parameters
    resnet50()   Bottleneck x [3, 4, 6, 3]   25,557,032 parameters

(N, 3, H, W) -> conv7x7 stride 2 + BN + ReLU -> max-pool 3x3 stride 2 -> layer1..layer4 (64, 128,
256, 512 planes, each stage after the first halving H and W) -> global average pool -> fc ->
(N, num_classes). With H = W = 224: (64, 56, 56) after the pool, (512 * expansion, 7, 7) after
layer4, and with 32x32 (CIFAR) (512 * expansion, 1, 1). The pool is adaptive, so any H, W works.
The state_dict keys are torchvision's (conv1.weight, layer1.0.bn1.running_mean,
layer2.0.downsample.0.weight, fc.bias, ...).

This is the ImageNet ResNet: minicnn.models.resnet20 is the CIFAR one of the same paper (section 4.2).
"""

from ... import nn
from ._weights import refuse_weights


def conv3x3(in_planes, out_planes, stride=1, groups=1, dilation=1):
    """3x3 convolution, padding = dilation (so stride 1 keeps H, W), no bias (a norm layer follows)."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=dilation, groups=groups,
                     bias=False, dilation=dilation)


def conv1x1(in_planes, out_planes, stride=1):
    """1x1 convolution, no bias: mixes channels, (N, in_planes, H, W) -> (N, out_planes, H/stride, W/stride)."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """relu(bn2(conv2(relu(bn1(conv1(x))))) + downsample(x)): two 3x3 convolutions and the input added back.

    (N, inplanes, H, W) -> (N, planes, H/stride, W/stride). downsample (None: the identity) makes
    the input fit when the stride or the width changes; in torchvision it is conv1x1 + norm.
    """

    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None, groups=1, base_width=64, dilation=1,
                 norm_layer=None):
        super().__init__()
        norm_layer = nn.BatchNorm2d if norm_layer is None else norm_layer
        if groups != 1 or base_width != 64:
            raise ValueError(f"BasicBlock: only groups=1 and base_width=64 are supported, got groups={groups}, "
                             f"base_width={base_width} (use Bottleneck for ResNeXt and wide ResNets)")
        if dilation > 1:
            raise NotImplementedError(f"BasicBlock: dilation > 1 is not supported, got dilation={dilation}")
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = norm_layer(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = norm_layer(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)  # the sum passes dout unchanged to both branches


class Bottleneck(nn.Module):
    """conv1x1 (reduce to width) -> conv3x3 (stride here, as torchvision's "ResNet v1.5") -> conv1x1
    (expand to planes * 4), each with a norm layer, ReLU after the first two, then + downsample(x), ReLU.

    (N, inplanes, H, W) -> (N, planes * 4, H/stride, W/stride); width = planes * base_width / 64 * groups
    (64 and 1 for ResNet-50; ResNeXt and wide ResNets change them).
    """

    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None, groups=1, base_width=64, dilation=1,
                 norm_layer=None):
        super().__init__()
        norm_layer = nn.BatchNorm2d if norm_layer is None else norm_layer
        width = int(planes * (base_width / 64.0)) * groups
        self.conv1 = conv1x1(inplanes, width)
        self.bn1 = norm_layer(width)
        self.conv2 = conv3x3(width, width, stride, groups, dilation)
        self.bn2 = norm_layer(width)
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = norm_layer(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """torchvision's ResNet: (N, 3, H, W) -> (N, num_classes) logits (see the module docstring).

    block: BasicBlock or Bottleneck; layers: the number of blocks in each of the 4 stages.
    zero_init_residual: start the last norm of each block at weight 0, so each block starts as the
    identity (Goyal et al., 2017). groups, width_per_group: Bottleneck's width (ResNeXt, wide ResNet).
    replace_stride_with_dilation: 3 bools, for layer2..layer4: keep H, W there and dilate instead.
    norm_layer: a callable num_features -> Module (default BatchNorm2d).

    Init as torchvision's: kaiming_normal_(fan_out, relu) for every convolution, weight 1 and bias 0
    for every BatchNorm2d and GroupNorm, torch's default for fc.
    """

    def __init__(self, block, layers, num_classes=1000, zero_init_residual=False, groups=1, width_per_group=64,
                 replace_stride_with_dilation=None, norm_layer=None):
        super().__init__()
        self._norm_layer = nn.BatchNorm2d if norm_layer is None else norm_layer
        self.inplanes = 64
        self.dilation = 1
        if replace_stride_with_dilation is None:
            replace_stride_with_dilation = [False, False, False]
        if len(replace_stride_with_dilation) != 3:
            raise ValueError("ResNet: replace_stride_with_dilation should be None or a 3-element tuple, got "
                             f"{replace_stride_with_dilation}")
        self.groups = groups
        self.base_width = width_per_group
        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = self._norm_layer(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2, dilate=replace_stride_with_dilation[0])
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2, dilate=replace_stride_with_dilation[1])
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2, dilate=replace_stride_with_dilation[2])
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
        if zero_init_residual:
            for m in self.modules():
                last = m.bn3 if isinstance(m, Bottleneck) else m.bn2 if isinstance(m, BasicBlock) else None
                if last is not None and last.weight is not None:
                    nn.init.constant_(last.weight, 0)

    def _make_layer(self, block, planes, blocks, stride=1, dilate=False):
        """One stage: `blocks` blocks, the first one taking the stride (or, with dilate, a dilation)
        and a conv1x1 + norm downsample when the shape of its input changes."""
        norm_layer = self._norm_layer
        previous_dilation = self.dilation
        if dilate:
            self.dilation *= stride
            stride = 1
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(conv1x1(self.inplanes, planes * block.expansion, stride),
                                       norm_layer(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample, self.groups, self.base_width, previous_dilation,
                        norm_layer)]
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            layers.append(block(self.inplanes, planes, groups=self.groups, base_width=self.base_width,
                                dilation=self.dilation, norm_layer=norm_layer))
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # (N, 64, H/4, W/4)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))  # (N, 512 * expansion, H/32, W/32)
        x = self.avgpool(x).flatten(1)  # (N, 512 * expansion)
        return self.fc(x)


def _resnet(name, block, layers, weights, kwargs):
    refuse_weights(name, weights, kwargs)
    return ResNet(block, layers, **kwargs)


def resnet18(*, weights=None, progress=True, **kwargs):
    """ResNet-18: (N, 3, H, W) -> (N, num_classes), 11,689,512 parameters with num_classes=1000.

    kwargs go to ResNet (num_classes, zero_init_residual, norm_layer, ...). weights must be None:
    minicnn downloads nothing (the error says how to load torchvision's .pth file). progress is ignored.
    """
    return _resnet("resnet18", BasicBlock, [2, 2, 2, 2], weights, kwargs)


def resnet34(*, weights=None, progress=True, **kwargs):
    """ResNet-34: (N, 3, H, W) -> (N, num_classes), 21,797,672 parameters (see resnet18 for the arguments)."""
    return _resnet("resnet34", BasicBlock, [3, 4, 6, 3], weights, kwargs)


def resnet50(*, weights=None, progress=True, **kwargs):
    """ResNet-50: (N, 3, H, W) -> (N, num_classes), 25,557,032 parameters (see resnet18 for the arguments)."""
    return _resnet("resnet50", Bottleneck, [3, 4, 6, 3], weights, kwargs)
