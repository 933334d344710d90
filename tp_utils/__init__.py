"""Helpers for the course "Visualizing and Understanding CNNs"."""
from . import checks, notebook, regularizers, widgets
from .assets import AssetError, cache_dir, data_dir, fetch, fetch_all
from .device import get_device, seed_everything
from .images import (IMAGENET_MEAN, IMAGENET_STD, PAINTINGS, SAMPLE_IMAGES, clamp_normalized,
                     crop_bank, deprocess, load_image, preprocess, resize_crop, sample_images)
from .labels import class_index, class_name, imagenet_classes
from .models import (WeightsUnavailableError, capture_activations, get_layer, layer_names,
                     load_model)
from .plotting import overlay_heatmap, plot_topk, show_images
from .progress import progress

__version__ = "0.1.0"
