# The image every Ray node of the KubeRay RayService runs (k8s/rayservice.yaml).
#   docker build -t registry.example.com/lithoseg:0.1.0 .
# torch from PyPI carries its CUDA libraries, so the same image serves on GPU and CPU nodes.
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PYTHONPATH=/app PIP_NO_CACHE_DIR=1
RUN apt-get update && apt-get install -y --no-install-recommends wget && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 1000 ray
WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt
COPY pipelines/ pipelines/
COPY training/ training/
COPY storage/ storage/
COPY deployments/ deployments/
COPY models/ models/
COPY serve_config.yaml pyproject.toml ./
USER 1000
EXPOSE 8000
