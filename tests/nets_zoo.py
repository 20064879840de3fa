"""Small copies of the seeds' networks, for tests."""
from collections import OrderedDict

import torch
from torch import nn


class FCN32sLike(nn.Module):
    """Seed 000's FCN32s shape in miniature: conv/relu/pool blocks, 1x1 score, bilinear upscore."""

    def __init__(self, n_class: int = 3) -> None:
        super().__init__()
        self.conv1_1 = nn.Conv2d(3, 8, 3, padding=1)
        self.relu1_1 = nn.ReLU(inplace=True)
        self.pool1 = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.conv2_1 = nn.Conv2d(8, 16, 3, padding=1)
        self.relu2_1 = nn.ReLU(inplace=True)
        self.pool2 = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.fc6 = nn.Conv2d(16, 32, 1)
        self.relu6 = nn.ReLU(inplace=True)
        self.drop6 = nn.Dropout2d()
        self.score_fr = nn.Conv2d(32, n_class, 1)
        self.upscore = nn.ConvTranspose2d(n_class, n_class, 8, stride=4, bias=False)

    def forward(self, x):
        h = self.pool1(self.relu1_1(self.conv1_1(x)))
        h = self.pool2(self.relu2_1(self.conv2_1(h)))
        return self.upscore(self.score_fr(self.drop6(self.relu6(self.fc6(h)))))


class LeNet(nn.Module):
    """Seed 001's LeNet with fc1/fc2/fc3."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = torch.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = torch.max_pool2d(torch.relu(self.conv2(x)), 2)
        x = x.flatten(1)
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


def layered() -> nn.Module:
    return nn.Sequential(OrderedDict([(f"layer{i}", nn.Linear(4, 4)) for i in range(12)]))


class TinyGenerator(nn.Module):
    """A user's own generator for the digits GAN, named by class_path in a recipe."""

    def __init__(self, latent: int = 100, hidden: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, 64), nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(-1, 1, 8, 8)


class PixelStats(nn.Module):
    """A user's own feature network for ``eval.features``: 4×4 average-pooled grey levels as
    features, a fixed seeded linear map of them as logits."""

    name = "pixel-stats"

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(16, 10)
        g = torch.Generator().manual_seed(0)
        with torch.no_grad():
            self.head.weight.copy_(torch.randn(10, 16, generator=g))
            self.head.bias.zero_()

    def forward(self, x):
        f = nn.functional.adaptive_avg_pool2d(x.mean(1, keepdim=True), 4).flatten(1)
        return f, self.head(f)
