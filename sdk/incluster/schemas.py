"""Small shared vocabularies of the SDK (plain enums: importing them costs nothing).

Kept apart from the tracking code so that user scripts can spell
``from incluster.schemas import ArtifactKind`` as the seed does, and so that the
operator can read the same names back without importing the writer.
"""

from __future__ import annotations

from enum import StrEnum


class ArtifactKind(StrEnum):
    """What an artifact reference points at; stored as its lower-case value.

    A ``StrEnum`` so that ``kind="csv"`` and ``kind=ArtifactKind.CSV`` are the same
    thing, and the value written to disk is the plain string. Every kind of Polyaxon's
    ``V1ArtifactKind`` is here with the same value (a seed script only changes its import
    line), plus a few of our own (``json``, ``dataset``, ``checkpoint``, ``code``, ``log``).
    """

    FILE = "file"
    DIR = "dir"
    CSV = "csv"
    TSV = "tsv"
    JSON = "json"
    TEXT = "text"
    HTML = "html"
    MARKDOWN = "markdown"
    IMAGE = "image"
    AUDIO = "audio"
    VIDEO = "video"
    MODEL = "model"
    DATAFRAME = "dataframe"
    DATASET = "dataset"
    TENSORBOARD = "tensorboard"
    CHECKPOINT = "checkpoint"
    ENV = "env"
    CODE = "code"
    LOG = "log"
    # the rest of Polyaxon's V1ArtifactKind, same values
    HISTOGRAM = "histogram"
    TENSOR = "tensor"
    CHART = "chart"
    CURVE = "curve"
    CONFUSION = "confusion"
    TABLE = "table"
    DATA = "data"
    CODEREF = "coderef"
    DOCKERFILE = "dockerfile"
    DOCKER_IMAGE = "docker_image"
    METRIC = "metric"
    PSV = "psv"
    SSV = "ssv"
    SYSTEM = "system"
    ANALYSIS = "analysis"
    ITERATION = "iteration"
    ARTIFACT = "artifact"
    SPAN = "span"


#: Seed 002 spells ``from polyaxon.schemas import V1ArtifactKind``; with the import line
#: changed to ``from incluster.schemas import V1ArtifactKind`` the script runs as is.
V1ArtifactKind = ArtifactKind
