"""fernb: facial expression recognition on FER-2013, the package behind the notebook series."""
from fernb.data import CLASSES, FERData, load
from fernb.errors import DataError, FernbError

__version__ = "0.1.0"
__all__ = ["CLASSES", "DataError", "FERData", "FernbError", "load", "__version__"]
