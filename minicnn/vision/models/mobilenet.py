"""torchvision's MobileNetV2 (Sandler et al., "MobileNetV2: Inverted Residuals and Linear
Bottlenecks", 2018): 3,504,872 parameters with width_mult=1 and num_classes=1000.

(N, 3, H, W) -> features: a 3x3 stride-2 convolution (32 channels), 17 inverted residual blocks,
a 1x1 convolution to 1280 -> (N, 1280, H/32, W/32) -> global average pool -> classifier (Dropout,
Linear num_classes). Keys as torchvision's: features.0.0.weight (the convolution of the first
Conv2dNormActivation), features.1.conv.0.1.running_var, classifier.1.weight, ...
"""

from ... import nn
from ...nn import functional as F
from ._weights import refuse_weights


def _make_divisible(v, divisor, min_value=None):
    """v rounded to the nearest multiple of divisor (at least min_value, default divisor), and never
    more than 10% below v: the channel counts of a width_mult network, as TensorFlow's MobileNet."""
    min_value = divisor if min_value is None else min_value
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


class Conv2dNormActivation(nn.Sequential):
    """Conv2d -> norm_layer -> activation_layer as one Sequential (torchvision.ops.Conv2dNormActivation):
    (N, in_channels, H, W) -> (N, out_channels, OH, OW).

    padding None: (kernel_size - 1) // 2 * dilation, so stride 1 keeps H, W. bias None: a bias only
    when there is no norm layer. norm_layer or activation_layer None leaves that layer out; inplace
    is passed to the activation (None: not passed).
    """

    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, padding=None, groups=1,
                 norm_layer=nn.BatchNorm2d, activation_layer=nn.ReLU, dilation=1, inplace=True, bias=None):
        if padding is None:
            if isinstance(kernel_size, int) and isinstance(dilation, int):
                padding = (kernel_size - 1) // 2 * dilation
            else:
                ks = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
                ds = (dilation, dilation) if isinstance(dilation, int) else tuple(dilation)
                padding = tuple((k - 1) // 2 * d for k, d in zip(ks, ds))
        if bias is None:
            bias = norm_layer is None
        layers = [nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation=dilation, groups=groups,
                            bias=bias)]
        if norm_layer is not None:
            layers.append(norm_layer(out_channels))
        if activation_layer is not None:
            layers.append(activation_layer() if inplace is None else activation_layer(inplace=inplace))
        super().__init__(*layers)
        self.out_channels = out_channels


class InvertedResidual(nn.Module):
    """1x1 expand (to inp * expand_ratio, ReLU6; left out when expand_ratio is 1) -> 3x3 depthwise
    (stride, ReLU6) -> 1x1 project to oup with no activation (the "linear bottleneck"), each with
    a norm layer; x is added back when stride is 1 and inp == oup.

    (N, inp, H, W) -> (N, oup, H/stride, W/stride).
    """

    def __init__(self, inp, oup, stride, expand_ratio, norm_layer=None):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"InvertedResidual: stride should be 1 or 2, got {stride}")
        norm_layer = nn.BatchNorm2d if norm_layer is None else norm_layer
        self.stride = stride
        hidden_dim = int(round(inp * expand_ratio))
        self.use_res_connect = stride == 1 and inp == oup
        layers = []
        if expand_ratio != 1:
            layers.append(Conv2dNormActivation(inp, hidden_dim, kernel_size=1, norm_layer=norm_layer,
                                               activation_layer=nn.ReLU6))
        layers += [
            Conv2dNormActivation(hidden_dim, hidden_dim, stride=stride, groups=hidden_dim, norm_layer=norm_layer,
                                 activation_layer=nn.ReLU6),
            nn.Conv2d(hidden_dim, oup, 1, 1, 0, bias=False),
            norm_layer(oup),
        ]
        self.conv = nn.Sequential(*layers)
        self.out_channels = oup

    def forward(self, x):
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    """(N, 3, H, W) -> (N, num_classes) logits (see the module docstring).

    width_mult: scales every width (rounded to multiples of round_nearest; the last 1280 only grows).
    inverted_residual_setting: rows [t, c, n, s]: n blocks of expansion t, c channels, the first with
    stride s (default: the paper's Table 2). block: the block class (default InvertedResidual).
    norm_layer: a callable num_features -> Module (default BatchNorm2d). dropout: the classifier's.

    Init as torchvision's: kaiming_normal_(fan_out) and bias 0 for the convolutions, weight 1 and
    bias 0 for BatchNorm2d and GroupNorm, N(0, 0.01^2) and bias 0 for the Linear.
    """

    def __init__(self, num_classes=1000, width_mult=1.0, inverted_residual_setting=None, round_nearest=8,
                 block=None, norm_layer=None, dropout=0.2):
        super().__init__()
        block = InvertedResidual if block is None else block
        norm_layer = nn.BatchNorm2d if norm_layer is None else norm_layer
        if inverted_residual_setting is None:
            inverted_residual_setting = [  # t, c, n, s
                [1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2], [6, 96, 3, 1], [6, 160, 3, 2],
                [6, 320, 1, 1],
            ]
        if len(inverted_residual_setting) == 0 or len(inverted_residual_setting[0]) != 4:
            raise ValueError("MobileNetV2: inverted_residual_setting should be a non-empty list of 4-element lists "
                             f"[t, c, n, s], got {inverted_residual_setting}")
        input_channel = _make_divisible(32 * width_mult, round_nearest)
        self.last_channel = _make_divisible(1280 * max(1.0, width_mult), round_nearest)
        features = [Conv2dNormActivation(3, input_channel, stride=2, norm_layer=norm_layer,
                                         activation_layer=nn.ReLU6)]
        for t, c, n, s in inverted_residual_setting:
            output_channel = _make_divisible(c * width_mult, round_nearest)
            for i in range(n):
                features.append(block(input_channel, output_channel, s if i == 0 else 1, expand_ratio=t,
                                      norm_layer=norm_layer))
                input_channel = output_channel
        features.append(Conv2dNormActivation(input_channel, self.last_channel, kernel_size=1, norm_layer=norm_layer,
                                             activation_layer=nn.ReLU6))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(p=dropout), nn.Linear(self.last_channel, num_classes))

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.constant_(m.weight, 1)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = self.features(x)  # (N, last_channel, H/32, W/32)
        x = F.adaptive_avg_pool2d(x, (1, 1)).flatten(1)  # (N, last_channel)
        return self.classifier(x)


def mobilenet_v2(*, weights=None, progress=True, **kwargs):
    """MobileNetV2: (N, 3, H, W) -> (N, num_classes), 3,504,872 parameters with the defaults.

    kwargs go to MobileNetV2 (num_classes, width_mult, dropout, ...). weights must be None: minicnn
    downloads nothing (the error says how to load torchvision's .pth file). progress is ignored.
    """
    refuse_weights("mobilenet_v2", weights, kwargs)
    return MobileNetV2(**kwargs)
