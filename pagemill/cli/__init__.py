"""The ``pagemill`` command: OCR files from a terminal, run the services, look after the job store.

``_app`` holds the click group; each module adds its commands to it: ``ocr`` (files through the
pipeline), ``jobs`` (status, stats, search, migrate), ``service`` (serve, doctor, celery-bridge),
``dlq`` (dead letters).
"""

from pagemill.cli import dlq, jobs, ocr, service
from pagemill.cli._app import main

__all__ = ["dlq", "jobs", "main", "ocr", "service"]
