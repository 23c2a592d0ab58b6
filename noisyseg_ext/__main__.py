import sys

from noisyseg_ext.cli.main import main

sys.exit(main())
