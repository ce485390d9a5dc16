"""Framework-free building blocks of lithoseg: decoding, tiling, the model, rendering, data, training.

Nothing in this package imports Ray, Starlette/FastAPI or boto3 (a test keeps it so).
"""

__version__ = "0.1.0"  # the project's one version string (pyproject.toml reads it)
