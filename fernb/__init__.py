"""fernb: facial expression recognition on FER-2013, the package behind the notebook series."""
from fernb.data import CLASSES, DataError, FERData, load

__version__ = "0.1.0"
__all__ = ["CLASSES", "DataError", "FERData", "load", "__version__"]
