"""``image``: the Keras image utilities the notebooks use (``image.load_img``,
``image.ImageDataGenerator()``), with our fast, channels-last ``ImageDataGenerator``."""

from .backend import configure_backend

configure_backend()
from keras.utils import array_to_img, img_to_array, load_img, save_img  # noqa: E402

from .augment import ImageDataGenerator  # noqa: E402
from .batches import ArrayIterator, DirectoryIterator  # noqa: E402

NumpyArrayIterator = ArrayIterator

__all__ = ["load_img", "img_to_array", "array_to_img", "save_img", "ImageDataGenerator",
           "DirectoryIterator", "ArrayIterator", "NumpyArrayIterator"]
