"""Entry point: python -m training.synth --out DIR --studies N --seed S."""
import sys

from .cli import main

sys.exit(main())
