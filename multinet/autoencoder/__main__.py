"""python -m multinet.autoencoder [RECIPE] [key=value ...] [--out DIR] [--steps N] [--seed S] [--device D] [--resume [CKPT]]
python -m multinet.autoencoder evaluate CKPT [channel.eval_db=[...] channel.fading=rayleigh eval.key=value ...]

The same as ``python -m multinet train autoencoder ...``."""
from __future__ import annotations

import sys

from ..cli import system_main


def main(argv: list[str] | None = None) -> int:
    return system_main("autoencoder", argv)


if __name__ == "__main__":
    sys.exit(main())
