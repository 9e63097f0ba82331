"""`python -m cae_keras` is the same as the `cae-keras` command."""

import sys

from cae_keras.cli import main

sys.exit(main())
