"""`python -m tf_signsal`: the `tf-signsal` command line."""

import sys

from tf_signsal.cli import main

sys.exit(main())
