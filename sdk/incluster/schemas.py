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
    thing, and the value written to disk is the plain string.
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
