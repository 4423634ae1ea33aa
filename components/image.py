"""The container image every component runs in: `LETHE_IMAGE`, or lethe's published CPU/CUDA image."""

from lethe.config import settings

IMAGE: str = settings().image
