"""python -m multinet.gan [RECIPE] [key=value ...] [--out DIR] [--steps N] [--seed S] [--device D] [--resume [CKPT]]
python -m multinet.gan sample CKPT --n N --out FILE.npy [--rejection drs]
python -m multinet.gan evaluate CKPT [eval.key=value ...]

The same as ``python -m multinet train gan ...`` / ``python -m multinet sample CKPT ...``."""
from __future__ import annotations

import sys

from ..cli import system_main


def main(argv: list[str] | None = None) -> int:
    return system_main("gan", argv)


if __name__ == "__main__":
    sys.exit(main())
