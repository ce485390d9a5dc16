"""Framework-free building blocks of the serving path: decoding, tiling, the model and its engines, rendering.

Nothing in this package imports Ray, Starlette/FastAPI or boto3 (a test keeps it so).
"""

__version__ = "0.1.0"  # the project's one version string (pyproject.toml reads it)
