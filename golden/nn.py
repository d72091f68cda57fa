"""``golden.nn`` is :mod:`hwtorch.nn`: the torch drop-ins moved out of golden/ (which stays free of
torch) into the package :mod:`hwtorch`; this alias keeps ``import golden.nn`` and
``golden.nn.patch_model`` working. Importing it imports torch.
"""

import sys

from hwtorch import nn as _nn

sys.modules[__name__] = _nn
