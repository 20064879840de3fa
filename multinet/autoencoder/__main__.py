"""python -m multinet.autoencoder [RECIPE] [key=value ...] [--out DIR] [--steps N] [--seed S] [--device D] [--resume [CKPT]]"""
from __future__ import annotations

import sys

from .. import cli
from .recipe import AeRecipe, build


def main(argv: list[str] | None = None) -> int:
    return cli.main("autoencoder", AeRecipe, "ae_7_4", build, argv)


if __name__ == "__main__":
    sys.exit(main())
