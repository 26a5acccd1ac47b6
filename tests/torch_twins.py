"""The torch networks the model tests compare minicnn.models with, written as the usual CIFAR
repositories write them: ResNet-20 as akamaster/pytorch_resnet_cifar10 does (option A shortcuts
as a LambdaLayer). Used by test_resnet.py and test_onnx.py."""

import torch.nn.functional as TF
from torch import nn as tnn


class LambdaLayer(tnn.Module):
    def __init__(self, lambd):
        super().__init__()
        self.lambd = lambd

    def forward(self, x):
        return self.lambd(x)


class TorchBasicBlock(tnn.Module):
    def __init__(self, in_planes, planes, stride=1):
        super().__init__()
        self.conv1 = tnn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = tnn.BatchNorm2d(planes)
        self.conv2 = tnn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = tnn.BatchNorm2d(planes)
        self.shortcut = tnn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = LambdaLayer(
                lambda x: TF.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4), "constant", 0))

    def forward(self, x):
        out = TF.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += self.shortcut(x)
        return TF.relu(out)


class TorchResNet(tnn.Module):
    def __init__(self, num_blocks=(3, 3, 3), num_classes=10):
        super().__init__()
        self.in_planes = 16
        self.conv1 = tnn.Conv2d(3, 16, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = tnn.BatchNorm2d(16)
        self.layer1 = self._make_layer(16, num_blocks[0], 1)
        self.layer2 = self._make_layer(32, num_blocks[1], 2)
        self.layer3 = self._make_layer(64, num_blocks[2], 2)
        self.linear = tnn.Linear(64, num_classes)

    def _make_layer(self, planes, num_blocks, stride):
        layers = []
        for s in [stride] + [1] * (num_blocks - 1):
            layers.append(TorchBasicBlock(self.in_planes, planes, s))
            self.in_planes = planes
        return tnn.Sequential(*layers)

    def forward(self, x):
        out = TF.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = TF.avg_pool2d(out, out.size()[3])
        return self.linear(out.view(out.size(0), -1))
