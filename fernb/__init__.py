"""fernb: facial expression recognition on FER-2013, the package behind the notebook series."""
from fernb.data import CLASSES, FERData, load
from fernb.errors import DataError, FernbError

__version__ = "0.1.0"
__url__ = "https://github.com/fernb/fernb"  # the one place the project's address is written: badges and install cells follow it
__all__ = ["CLASSES", "DataError", "FERData", "FernbError", "load", "__version__"]
