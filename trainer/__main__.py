"""``python -m trainer``: the same commands as ``registry-train``."""

import sys

from trainer.cli import main

sys.exit(main(prog_name="registry-train"))
