from .conversion_util import ConversionUtil as ConversionUtil
from .validation_util import ValidationUtil as ValidationUtil
