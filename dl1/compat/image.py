"""``image``: the Keras image utilities the notebooks use (``image.load_img``,
``image.ImageDataGenerator()``), with our fast, channels-last ``ImageDataGenerator``."""
from keras.utils import array_to_img, img_to_array, load_img, save_img

from dl1.data.batches import ArrayIterator, DirectoryIterator, ImageDataGenerator

NumpyArrayIterator = ArrayIterator

__all__ = ["load_img", "img_to_array", "array_to_img", "save_img", "ImageDataGenerator",
           "DirectoryIterator", "ArrayIterator", "NumpyArrayIterator"]
