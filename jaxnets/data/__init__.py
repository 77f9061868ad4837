"""Datasets and preprocessing: MNIST (built-in sample, IDX, Kaggle CSV, tfds), Fashion-MNIST,
UCI occupancy, a word list (the US Census first names, `text`); the documents' preprocessing steps and the one pixel transform; input
validation.

    from jaxnets.data import load_dataset, scale_pixels, flatten
    ds = load_dataset("sample+mnist-test")      # or "sample", "occupancy", "idx:DIR", ...
    x = flatten(scale_pixels(ds.x_train))

Every malformed input raises `DataError` (a ValueError) naming the file and the problem.
"""
from .csvfiles import OCCUPANCY_FEATURES, read_kaggle_csv, read_occupancy
from .errors import DataError, DataUnavailableError
from .idx import read_idx, read_idx_images, read_idx_labels, read_idx_pair, write_idx
from .pixels import STYLES, PixelDecoder, PixelTransform, fit_pixel_transform
from .preprocess import (add_channel, flatten, head_split, mean_image, normalize_features,
                         scale_pixels, shuffle_split, subtract_mean_image,
                         subtract_mean_image_uint8)
from .sources import (FASHION_MNIST_DIR, SOURCES, Dataset, load_dataset, load_idx_dir,
                      load_mnist_test, load_occupancy, load_sample, shared_data_dir, source_name,
                      default_data_dir)
from .text import Corpus, Split, encode, load_names, read_word_list, split_by_item
from .tfds import load_tfds
from .validate import check_arrays

__all__ = [
    "DataError", "DataUnavailableError", "Dataset", "SOURCES", "FASHION_MNIST_DIR",
    "OCCUPANCY_FEATURES", "load_dataset", "load_sample", "load_idx_dir", "load_mnist_test",
    "load_occupancy", "load_tfds", "shared_data_dir", "default_data_dir", "source_name", "read_idx", "read_idx_images",
    "read_idx_labels", "read_idx_pair", "write_idx", "read_kaggle_csv", "read_occupancy",
    "scale_pixels", "mean_image", "subtract_mean_image", "subtract_mean_image_uint8", "flatten",
    "add_channel", "normalize_features", "shuffle_split", "head_split", "check_arrays",
    "STYLES", "PixelTransform", "PixelDecoder", "fit_pixel_transform",
    "Corpus", "Split", "encode", "load_names", "read_word_list", "split_by_item",
]
