"""What a checkpoint directory (or `s3://` prefix) holds, named once.

    config.json          the model's description (pipelines/model.py, ModelConfig)
    model.safetensors    the network's weights
    gate.npz             optional: the content gate's reference embeddings (pipelines/gate.py)
    engines/             optional: exported engines (built here, per weights) and the held-out
                         checks of the reduced-precision ones (shipped: pipelines/engines.py)

And the ImageNet normalisation both the network and the gate's encoder expect.
"""

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
GATE_FILE = "gate.npz"
ENGINES_DIR = "engines"
CHECKED_ENGINES = ("onnxruntime-int8", "openvino-bf16")  # reduced precision: used only after held-out checks
REQUIRED_FILES = (CONFIG_FILE, WEIGHTS_FILE)
OPTIONAL_FILES = (GATE_FILE, *(f"{ENGINES_DIR}/{engine}.checks.json" for engine in CHECKED_ENGINES))  # fetched from a store where present

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
