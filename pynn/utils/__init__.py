"""Utilities, as keras.utils: random seeding, label encoding, sequence padding, batched datasets
from arrays and folders, images, downloading files, the registry of user objects, progress bars,
plots of models and training, sampling from autoregressive models."""

from . import legacy
from .backend_utils import (
    clear_session,
    get_source_inputs,
    is_keras_tensor,
    pack_x_y_sample_weight,
    standardize_dtype,
    unpack_x_y_sample_weight,
)
from .config import Config
from .dataset import PyDataset, Sequence
from .dataset_utils import (
    BatchDataset,
    image_dataset_from_directory,
    split_dataset,
    text_dataset_from_directory,
)
from .file_utils import get_file
from .generation import generate
from .image_utils import array_to_img, img_to_array, load_img, save_img
from .io_utils import (
    disable_interactive_logging,
    enable_interactive_logging,
    is_interactive_logging_enabled,
)
from .numerical_utils import normalize, to_categorical
from .object_registration import (
    CustomObjectScope,
    custom_object_scope,
    deserialize_keras_object,
    get_custom_objects,
    get_registered_name,
    get_registered_object,
    register_keras_serializable,
    serialize_keras_object,
)
from .plotting import model_to_dot, plot_history, plot_model
from .progbar import Progbar
from .random import set_random_seed
from .sequence_utils import pad_sequences
from .timeseries_dataset_utils import timeseries_dataset_from_array

__all__ = ["BatchDataset", "Config", "CustomObjectScope", "Progbar", "PyDataset", "Sequence",
           "array_to_img", "clear_session", "custom_object_scope", "deserialize_keras_object",
           "disable_interactive_logging", "enable_interactive_logging", "generate",
           "get_custom_objects", "get_file", "get_registered_name", "get_registered_object",
           "get_source_inputs", "image_dataset_from_directory", "img_to_array",
           "is_interactive_logging_enabled", "is_keras_tensor", "legacy", "load_img",
           "model_to_dot", "normalize", "pack_x_y_sample_weight", "pad_sequences",
           "plot_history", "plot_model", "register_keras_serializable", "save_img",
           "serialize_keras_object", "set_random_seed", "split_dataset", "standardize_dtype",
           "text_dataset_from_directory", "timeseries_dataset_from_array", "to_categorical",
           "unpack_x_y_sample_weight"]
