"""python -m multinet train SYSTEM [RECIPE] [key=value ...] | evaluate CKPT | sample CKPT | export CKPT"""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
