"""torchvision.models' names: `import minicnn.vision as torchvision`, then
torchvision.models.resnet18(num_classes=10).

    resnet18  resnet34  resnet50                 ResNet, BasicBlock, Bottleneck
    vgg11  vgg11_bn  vgg16  vgg16_bn             VGG
    mobilenet_v2                                 MobileNetV2
    alexnet                                      AlexNet
    squeezenet1_0  squeezenet1_1                 SqueezeNet

Each builder takes torchvision's arguments and gives torchvision's architecture, state_dict keys
and initialisation, with minicnn's random numbers. weights=None is the only choice: minicnn
downloads nothing, and the error for weights=... or pretrained=True says how to load
torchvision's .pth file with minicnn.load. Inputs are (N, 3, H, W); 224x224 is ImageNet's size,
and the ResNets, VGGs and MobileNetV2 take 32x32 as well (AlexNet needs 63x63,
SqueezeNet 1.0 21x21 and 1.1 17x17).

minicnn.models' CIFAR and MNIST networks are here too, under their names (lenet5, resnet20, ...);
its vgg11_bn, the CIFAR variant, stays minicnn.models.vgg11_bn: here the name is torchvision's.
"""

from ...models import cifar_cnn, cifar_small_cnn, lenet5, lenet5_sigmoid, resnet20  # noqa: F401
from .alexnet import AlexNet, alexnet  # noqa: F401
from .mobilenet import MobileNetV2, mobilenet_v2  # noqa: F401
from .resnet import BasicBlock, Bottleneck, ResNet, resnet18, resnet34, resnet50  # noqa: F401
from .squeezenet import SqueezeNet, squeezenet1_0, squeezenet1_1  # noqa: F401
from .vgg import VGG, vgg11, vgg11_bn, vgg16, vgg16_bn  # noqa: F401
